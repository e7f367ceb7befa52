"""`edgeplace plan / predict / calibrate / bench`: the cost model and the planner."""
from __future__ import annotations

import math

import click
from rich.table import Table

from common.errors import EdgeplaceError
from common.files import write_atomic
from experiments.cli.output import NON_NEGATIVE, POSITIVE, console, dumps, say, yes_no


@click.command("plan")
@click.option("--problem", "problem_file", help="planning-problem JSON")
@click.option("--policy", required=True, help="cloud-only | edge-max | greedy | exhaustive | optimal")
@click.option("--target-rate", type=POSITIVE, help="with optimal: fewest WAN bytes among placements sustaining R")
@click.option("--out", required=True, help="placement JSON to write")
@click.option("--rank", is_flag=True, help="print the offload ranking with reasons")
@click.option("--job", "job_id", help="instead of --problem: profile this running job on the testbed")
@click.option("--seconds", default=25.0, show_default=True, type=POSITIVE, help="with --job: profiling window")
@click.option("--warmup", default=10.0, show_default=True, type=NON_NEGATIVE,
              help="with --job: seconds sampled but not used (a fresh job's first metrics are empty or stale)")
@click.option("--mbit", type=POSITIVE, help="with --job: plan for this link rate (default: the testbed's current)")
@click.option("--write-problem", help="with --job: also write the planning problem JSON here")
@click.option("--speeds", help="with --job: node speed factors measured by `edgeplace calibrate --out`")
@click.option("--inventory", "-i", help="with --job: an Ansible cluster's inventory (default: the local testbed)")
def plan_cmd(problem_file, policy, target_rate, out, rank, job_id, seconds, warmup, mbit, write_problem,
             speeds, inventory) -> None:
    """Search a placement for a planning problem (--problem FILE, or --job ID profiled live) and write it as
    placement JSON that `deploy`/`redeploy` accept."""
    from costmodel import problem as pb
    from costmodel.predict import predict
    from costmodel.ranking import offload_ranking
    from placement.model import Placement
    from placement.policies import cloud_only, plan
    if bool(problem_file) == bool(job_id):
        raise EdgeplaceError("give either --problem FILE or --job ID")
    if job_id:
        step = _plan_job(job_id, policy, target_rate, seconds, warmup, mbit, speeds, inventory)
        p, placement, pred = step.problem, step.placement, step.prediction
        if write_problem:
            write_atomic(write_problem, dumps(pb.to_json(p)), "problem")
    else:
        p = pb.load(problem_file)
        asg = plan(p, policy, target_rate)
        pred = predict(p, asg)
        placement = Placement(asg, meta={"policy": policy, "problem": str(problem_file), "predicted": pred.to_json()})
    placement.write(out)
    say(f"{policy}: λ* = {pred.max_rate:.6g} (bottleneck {pred.bottleneck}), "
        f"WAN bytes per unit rate {pred.wan_bytes_per_unit_rate:.6g}; wrote {out}")
    if rank:
        t = Table("operator", "score", "eligible", "why")
        for e in offload_ranking(p, cloud_only(p)):
            t.add_row(e.op, f"{e.score:.4g}", yes_no(e.eligible), e.reason)
        console.print(t)


def _plan_job(job_id: str, policy: str, target_rate: float | None, seconds: float, warmup: float,
              mbit: float | None, speeds: str | None, inventory: str | None):
    """The spine without realize, for a job edgeplace deployed, priced on the nodes of its cluster."""
    from collectors.profiling import MIN_PROFILE_S
    from common import paths
    from costmodel.pricing import with_speeds
    from experiments.calibration import read_speeds
    from experiments.environments import environment
    from experiments.spine import step
    from placement import records
    from placement.realize import operators
    rec = records.load_record(paths.home(), job_id)
    if rec is None:
        raise EdgeplaceError(f"job {job_id} was not deployed by edgeplace here (no record of its query)")
    env = environment(inventory, say)
    rates = mbit if mbit is not None else env.link_rates
    nodes = with_speeds(env.nodes, read_speeds(speeds)) if speeds else env.nodes
    say(f"profiling job {job_id} ({rec['query']}) for {warmup:.0f} s warm-up + {max(MIN_PROFILE_S, seconds):.0f} s")
    return step(env, job_id, operators(rec["query"], rec["args"]), policy, rates, seconds, warmup, nodes, target_rate)


@click.command("calibrate")
@click.option("--out", default="speeds.json", show_default=True, help="where to write the speed factors")
@click.option("--loops", default=40_000, show_default=True, type=int, help="Python loop steps per record")
@click.option("--rate", default=40.0, show_default=True, type=POSITIVE, help="records/s (keep every node far from busy)")
@click.option("--seconds", default=25.0, show_default=True, type=POSITIVE, help="profiling window per node")
@click.option("--node", "only", multiple=True, help="measure only this node (and the reference); repeatable")
@click.option("--inventory", "-i", help="an Ansible cluster's inventory (default: the local testbed)")
def calibrate_cmd(out, loops, rate, seconds, only, inventory) -> None:
    """Measure each testbed node's speed: the same fixed work per record on each TaskManager in turn,
    relative to the first cloud node. `plan --job --speeds FILE` and `calibrate_speeds = true` use it."""
    from experiments.calibration import measure_speeds, write_speeds
    from experiments.environments import environment
    if loops < 1:
        raise EdgeplaceError("--loops must be >= 1")
    env = environment(inventory, say)
    ms = measure_speeds(env, say, loops=loops, rate=rate, seconds=seconds, only=list(only))
    t = Table("node", "CPU s per record", "speed")
    for m in ms:
        t.add_row(m.node, f"{m.cost_s_per_record:.3e}", f"{m.speed:.2f}")
    console.print(t)
    write_speeds(out, ms)
    say(f"wrote {out}")


@click.group()
def bench() -> None:
    """Benchmarks that print numbers (not tests)."""


@bench.command("query")
@click.argument("name")
@click.option("--opt", "opts", multiple=True, help="job option k=v (e.g. query=q5 for nexmark)")
@click.option("--seconds", default=20.0, show_default=True, type=POSITIVE, help="measured window")
@click.option("--warmup", default=15.0, show_default=True, type=NON_NEGATIVE, help="discarded warm-up")
def bench_query(name, opts, seconds, warmup) -> None:
    """Records/s per core of query NAME (or `all`) with every operator on the local cloud TaskManager.
    Uses the testbed that is up, or starts one (1 cloud TaskManager, 8 slots) and takes it down after."""
    from experiments.bench import CATALOGUE, bench_all
    from queries import registry
    if name != "all":
        registry.load(name)  # unknown query → one clear error before anything starts
    todo = CATALOGUE if name == "all" else [(name, [a for o in opts for a in ("--opt", o)])]
    table = Table(title="records/s per core, all operators on one cloud TaskManager, source unthrottled")
    for col in ("query", "events/s", "cores used", "events/s per core", "slowest operator (true rate/s)"):
        table.add_column(col, justify="left" if col in ("query", "slowest operator (true rate/s)") else "right")
    for r in bench_all(todo, warmup, seconds, say):
        slow, rate = r.slowest
        table.add_row(r.label, f"{r.events_per_s:,.0f}", f"{r.cores:.2f}", f"{r.per_core:,.0f}", f"{slow} ({rate:,.0f})")
    console.print(table)


@click.command("predict")
@click.option("--problem", "problem_file", required=True)
@click.option("--placement", "placement_file")
@click.option("--rate", type=POSITIVE, help="also estimate latency at this source rate")
@click.option("--json", "as_json", is_flag=True)
@click.option("--crossovers", is_flag=True, help="instead: the link bandwidths at which the best layout changes")
def predict_cmd(problem_file, placement_file, rate, as_json, crossovers) -> None:
    """Predict λ*, bottleneck, WAN bytes and utilisation of a placement (or, with --crossovers, where the
    best layout of the problem changes with the link)."""
    from costmodel import problem as pb
    from costmodel.predict import checkpoint_overruns, latency_s, predict
    from placement.model import Placement
    p = pb.load(problem_file)
    if crossovers:
        return _crossovers(p, as_json)
    if not placement_file:
        raise EdgeplaceError("give --placement FILE (or --crossovers)")
    asg = Placement.read(placement_file).assignments
    pred = predict(p, asg)
    out = pred.to_json()
    latency = latency_s(p, asg, rate) if rate is not None else None
    if rate is not None:
        out["latency_s"] = latency if math.isfinite(latency) else None  # null: the rate is not sustainable
    if as_json:
        click.echo(dumps(out))
        return
    console.print(f"λ* = {pred.max_rate:.6g} source records/s per unit rate, bottleneck {pred.bottleneck}")
    for site, o in checkpoint_overruns(p, asg).items():
        console.print(f"{site}: one checkpoint's acknowledgements take {o.seconds:.0f} s on its uplink, longer than "
                      f"the {o.heartbeat_timeout_s:g}-s heartbeat timeout: its TaskManagers would be declared dead "
                      "at every checkpoint")
    console.print(f"WAN bytes per unit rate: {pred.wan_bytes_per_unit_rate:.6g}")
    own = {s: c for s, c in pred.control.items() if c["up"] > 0 or c["down"] > 0}
    if own:
        console.print("Flink's own traffic: " + "; ".join(f"{s} up {c['up']:,.0f} B/s, down {c['down']:,.0f} B/s"
                                                         for s, c in own.items()))
    if math.isfinite(pred.wan_up_bytes_per_event):
        console.print(f"WAN bytes per event edge → cloud at λ*, records and Flink's own: "
                      f"{pred.wan_up_bytes_per_event:.6g}")
    for n, u in pred.nodes.items():
        console.print(f"  {n}: {u:.1%} CPU at λ*")
    if rate is not None:
        console.print(f"latency at {rate:g}: " + (f"{latency * 1000:.1f} ms" if math.isfinite(latency)
                                                   else f"unbounded (λ* is {pred.max_rate:.6g})"))


def _crossovers(p, as_json: bool) -> None:
    from placement.crossover import crossovers, describe
    found = crossovers(p)
    if as_json:
        click.echo(dumps([{"mbit": c.mbit, "below": c.below, "above": c.above, "rate_below": c.rate_below,
                           "rate_above": c.rate_above} for c in found]))
        return
    if not found:
        console.print("the best layout is the same from 0.05 to 1000 Mbit/s")
    for c in found:
        console.print(f"at {c.mbit:.3g} Mbit/s: below, {describe(p, c.below)} (λ* {c.rate_below:,.0f}/s); "
                      f"above, {describe(p, c.above)} (λ* {c.rate_above:,.0f}/s)")
