"""The `edgeplace` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from experiments.errors import EdgeplaceError

console = Console(highlight=False, emoji=False, width=max(160, Console().width))
err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def say(msg: str) -> None:
    err_console.print(msg, markup=False)


class Cli(click.Group):
    """Turns EdgeplaceError (and the REST client's errors) into one clear line and exit code 1."""

    def invoke(self, ctx):
        from collectors.rest import FlinkRestError
        try:
            return super().invoke(ctx)
        except (EdgeplaceError, FlinkRestError) as exc:
            err_console.print(f"edgeplace: error: {exc}", markup=False)
            sys.exit(1)


@click.group(cls=Cli)
def main() -> None:
    """edgeplace: place Flink operators between edge and cloud, measured and predicted."""


@main.group()
def testbed() -> None:
    """A local emulated edge–cloud Flink 2.3 cluster (namespaces, tc, cgroups)."""


@testbed.command("up")
@click.option("--edge", default=1, show_default=True, type=int, help="edge TaskManagers (one site each)")
@click.option("--cloud", default=1, show_default=True, type=int, help="cloud TaskManagers")
@click.option("--edge-slots", default=2, show_default=True, type=int)
@click.option("--cloud-slots", default=4, show_default=True, type=int)
@click.option("--edge-cpu", default=0.5, show_default=True, type=float, help="CPU quota per edge site, cores")
@click.option("--wan-mbit", default=10.0, show_default=True, type=float, help="edge link rate each way")
@click.option("--unshaped", is_flag=True, help="no WAN shaping at all")
@click.option("--wan-delay-ms", default=0.0, show_default=True, type=float, help="RTT (needs netem)")
@click.option("--rest-port", default=8081, show_default=True, type=int)
@click.option("--rpc-port", default=6123, show_default=True, type=int)
@click.option("--subnet", default="10.213.0.0/24", show_default=True, help="private /24 the testbed owns")
@click.option("--no-isolation", is_flag=True, help="force the loopback fallback (no netns/tc/cgroups)")
@click.option("--timeout", default=90.0, show_default=True, type=float, help="seconds to wait for registration")
@click.option("--ssh-hosts", is_flag=True,
              help="no Flink: run sshd in each edge namespace and write an Ansible inventory (try `edgeplace cluster`)")
def testbed_up(edge, cloud, edge_slots, cloud_slots, edge_cpu, wan_mbit, unshaped, wan_delay_ms, rest_port,
               rpc_port, subnet, no_isolation, timeout, ssh_hosts) -> None:
    """Start 1 JobManager, EDGE edge and CLOUD cloud TaskManagers; returns when all are registered.
    With --ssh-hosts: EDGE SSH-reachable hosts instead, for provisioning with Ansible."""
    from experiments.testbed.spec import TestbedSpec
    from experiments.testbed.testbed import up
    spec = TestbedSpec(edge=edge, cloud=cloud, edge_slots=edge_slots, cloud_slots=cloud_slots, edge_cpu=edge_cpu,
                       wan_mbit=None if unshaped else wan_mbit, wan_delay_ms=wan_delay_ms, rest_port=rest_port,
                       rpc_port=rpc_port, subnet=subnet, isolate=not no_isolation, ssh_hosts=ssh_hosts)
    up(spec, say=say, timeout=timeout)


@testbed.command("down")
def testbed_down() -> None:
    """Remove everything the testbed created (by its records, never by process name)."""
    from experiments.testbed.testbed import down
    down(say=say)


@testbed.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def testbed_status(as_json: bool) -> None:
    """TaskManagers, slots, resources, links and bytes sent over each link."""
    from experiments.testbed import state as st
    from experiments.testbed.testbed import status
    state = st.load()
    if state is None:
        raise EdgeplaceError("no testbed is up; start one with `edgeplace testbed up`")
    s = status(state)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    console.print(f"testbed {s['phase']} ({s['mode']}), REST {s['rest']} "
                  f"{'reachable' if s['rest_reachable'] else 'NOT reachable'}, "
                  f"shaping {'on' if s['shaping'] else 'off'}, came up in {s['up_seconds']} s")
    t = Table("TaskManager", "site", "host", "alive", "registered", "slots free/total", "resources", "CPU quota")
    for tm in s["taskmanagers"]:
        t.add_row(tm["id"], tm["site"], tm["host"], _yn(tm["alive"]), _yn(tm["registered"]),
                  f"{tm['slots_free']}/{tm['slots_total']}" if tm["registered"] else "-",
                  ", ".join(f"{k}={v:g}" for k, v in tm["resources"].items()) or "-",
                  f"{tm['cpu_cores']:g} cores" if tm["cpu_cores"] else "none")
    console.print(t)
    if s["links"]:
        lt = Table("site", "rate each way", "delay", "bytes up (edge→cloud)", "bytes down (cloud→edge)")
        for link in s["links"]:
            lt.add_row(link["site"], f"{link['mbit']:g} Mbit/s" if link["mbit"] else "unshaped",
                       f"{link['delay_ms']:g} ms" if link["delay_ms"] else "none",
                       f"{link['up_bytes']:,}", f"{link['down_bytes']:,}")
        console.print(lt)
    for w in s["warnings"]:
        console.print(f"WARNING: {w}", markup=False)


def _yn(b: bool) -> str:
    return "yes" if b else "NO"


@testbed.command("heal")
def testbed_heal() -> None:
    """Restart TaskManagers that died, with their original configuration, site and quota."""
    from experiments.testbed.testbed import heal, require
    restarted = heal(require(), say=say)
    say(f"restarted {', '.join(restarted)}" if restarted else "every TaskManager is running")


@testbed.command("wan")
@click.option("--mbit", type=float, help="new rate each way")
@click.option("--unshaped", is_flag=True, help="remove shaping")
@click.option("--delay-ms", default=0.0, type=float, help="RTT (needs netem)")
@click.option("--site", "sites", multiple=True, help="edge site(s) to change (default: all)")
def testbed_wan(mbit, unshaped, delay_ms, sites) -> None:
    """Change the WAN shaping of a running testbed."""
    from experiments.testbed.testbed import set_wan
    if unshaped == (mbit is not None):
        raise EdgeplaceError("give exactly one of --mbit or --unshaped")
    for link in set_wan(None if unshaped else mbit, delay_ms, list(sites) or None, say=say):
        say(f"{link['site']}: {str(link['mbit']) + ' Mbit/s' if link['mbit'] else 'unshaped'}")


@testbed.command("probe")
@click.option("--site", default="edge-1", show_default=True)
@click.option("--seconds", default=4.0, show_default=True, type=float)
def testbed_probe(site: str, seconds: float) -> None:
    """Measure an edge link with a bulk TCP transfer from the site to the cloud side."""
    from experiments.testbed.linkprobe import measure_mbit
    from experiments.testbed.spec import TestbedSpec, gateway
    from experiments.testbed.testbed import require, site_argv
    state = require()
    mbit = measure_mbit(lambda argv: site_argv(state, site, argv), gateway(TestbedSpec.from_dict(state.spec)), seconds)
    console.print(f"{site} → cloud: {mbit:.2f} Mbit/s")


# ---------------------------------------------------------------- placement: deploy / where / redeploy

def _print_where(where: dict, placement=None) -> None:
    t = Table("operator", "TaskManager(s)", "planned")
    for uid, tms in sorted(where.items()):
        t.add_row(uid, ", ".join(sorted(x or "(not scheduled)" for x in tms)),
                  placement.assignments.get(uid, "-") if placement else "-")
    console.print(t)


@main.command("deploy", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--query", required=True, help="job name (see `edgeplace queries`)")
@click.option("--placement", "placement_file", help="placement JSON")
@click.option("--schedulercfg", "scfg_file", help="schedulercfg file (one line per subtask)")
@click.option("--timeout", default=90.0, show_default=True, help="seconds to wait for the placement")
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED)
def deploy_cmd(query, placement_file, scfg_file, timeout, job_args) -> None:
    """Submit QUERY to the testbed with a placement and verify every subtask runs where planned."""
    from experiments.deployment import Target, deploy, load_placement, operators
    target = Target.local_testbed()
    placement = load_placement(placement_file, scfg_file, operators(query, list(job_args)), target)
    d = deploy(target, query, list(job_args), placement, say, timeout)
    _print_where(d.where, placement)
    say("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in d.phases.items()))
    click.echo(d.job_id)


@main.command("where")
@click.option("--job", "job_id", required=True)
@click.option("--out", help="write the actual placement as placement JSON")
@click.option("--schedulercfg", "scfg_out", help="write it as schedulercfg")
def where_cmd(job_id, out, scfg_out) -> None:
    """Where each operator of a running job actually runs."""
    from experiments.deployment import Target, operators
    from experiments.testbed import state as st
    from placement import deploy as dp, schedulercfg
    from queries.topology import all_tasks
    target = Target.local_testbed()
    rec = dp.load_record(st.home(), job_id)
    ops = operators(rec["query"], rec["args"]) if rec else None
    where = dp.actual(target.rest, job_id, ops)
    _print_where(where)
    actual = dp.placement_of(where)
    if out:
        actual.write(out)
        say(f"wrote {out}")
    if scfg_out:
        if ops is None:
            raise EdgeplaceError("schedulercfg needs the job's operators; this job was not deployed by edgeplace")
        hosts = {tm.id: tm.host for tm in dp.cluster_view(target.rest).values()}
        Path(scfg_out).write_text(schedulercfg.emit(actual, all_tasks(ops), hosts))
        say(f"wrote {scfg_out}")


@main.command("redeploy")
@click.option("--job", "job_id", required=True)
@click.option("--placement", "placement_file", required=True)
@click.option("--timeout", default=90.0, show_default=True)
def redeploy_cmd(job_id, placement_file, timeout) -> None:
    """Stop with savepoint, resubmit with a new placement, verify; roll back if that fails."""
    from experiments.deployment import Target, redeploy
    from placement.model import Placement
    d = redeploy(Target.local_testbed(), job_id, Placement.read(placement_file), say, timeout)
    _print_where(d.where)
    say("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in d.phases.items())
        + " (the new job is built while the old one stops: submit counts from the same start as savepoint)")
    click.echo(d.job_id)


@main.command("queries")
def queries_cmd() -> None:
    """The jobs edgeplace can run, with their operators."""
    from queries import options, registry
    for name in sorted(registry.QUERIES):
        mod = registry.load(name)
        console.print(f"[bold]{name}[/bold]: {mod.DESCRIPTION}")
        t = Table("uid", "name", "stateful", "inputs", "Flink tasks")
        for op in mod.topology(options.parse([])):
            t.add_row(op.uid, op.name, "yes" if op.stateful else "no", ", ".join(op.inputs) or "-",
                      "; ".join(x.task_name for x in op.tasks()))
        console.print(t)


# ---------------------------------------------------------------- cost model and planner

@main.command("plan")
@click.option("--problem", "problem_file", help="planning-problem JSON")
@click.option("--policy", required=True, help="cloud-only | edge-max | greedy | exhaustive | optimal")
@click.option("--target-rate", type=float, help="with optimal: fewest WAN bytes among placements sustaining R")
@click.option("--out", required=True, help="placement JSON to write")
@click.option("--rank", is_flag=True, help="print the offload ranking with reasons")
@click.option("--job", "job_id", help="instead of --problem: profile this running job on the testbed")
@click.option("--seconds", default=25.0, show_default=True, type=float, help="with --job: profiling window")
@click.option("--warmup", default=10.0, show_default=True, type=float,
              help="with --job: seconds sampled but not used (a fresh job's first metrics are empty or stale)")
@click.option("--mbit", type=float, help="with --job: plan for this link rate (default: the testbed's current)")
@click.option("--write-problem", help="with --job: also write the planning problem JSON here")
@click.option("--speeds", help="with --job: node speed factors measured by `edgeplace calibrate --out`")
def plan_cmd(problem_file, policy, target_rate, out, rank, job_id, seconds, warmup, mbit, write_problem,
             speeds) -> None:
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
        p = _problem_of_job(job_id, seconds, warmup, mbit, speeds)
        problem_file = f"job {job_id}"
        if write_problem:
            Path(write_problem).write_text(json.dumps(pb.to_json(p), indent=2))
    else:
        p = pb.load(problem_file)
    asg = plan(p, policy, target_rate)
    pred = predict(p, asg)
    Placement(asg, meta={"policy": policy, "problem": str(problem_file), "predicted": pred.to_json()}).write(out)
    say(f"{policy}: λ* = {pred.max_rate:.6g} (bottleneck {pred.bottleneck}), "
        f"WAN bytes per unit rate {pred.wan_bytes_per_unit_rate:.6g}; wrote {out}")
    if rank:
        t = Table("operator", "score", "eligible", "why")
        for e in offload_ranking(p, cloud_only(p)):
            t.add_row(e.op, f"{e.score:.4g}", _yn(e.eligible), e.reason)
        console.print(t)


def _problem_of_job(job_id: str, seconds: float, warmup: float, mbit: float | None, speeds: str | None = None):
    """Profile a job edgeplace deployed on the testbed into a planning problem on the testbed's nodes."""
    from experiments.calibration import read_speeds
    from experiments.modeling import with_speeds
    from experiments.deployment import operators
    from experiments.environments import LocalTestbed
    from experiments.profiling import profile_running_job
    from experiments.testbed import state as st
    from placement import deploy as dp
    rec = dp.load_record(st.home(), job_id)
    if rec is None:
        raise EdgeplaceError(f"job {job_id} was not deployed by edgeplace here (no record of its query)")
    from experiments.testbed.testbed import require
    env = LocalTestbed(require().spec["edge_cpu"])
    rates = [l["mbit"] for l in env.state.links if l["mbit"]]
    mbit = mbit if mbit is not None else (min(rates) if rates else None)
    nodes = with_speeds(env.nodes, read_speeds(speeds)) if speeds else env.nodes
    say(f"profiling job {job_id} ({rec['query']}) for {warmup:.0f} s warm-up + {max(25.0, seconds):.0f} s")
    problem, _ = profile_running_job(env.target.rest, job_id, operators(rec["query"], rec["args"]), nodes,
                                     mbit, seconds, warmup)
    return problem


@main.command("calibrate")
@click.option("--out", default="speeds.json", show_default=True, help="where to write the speed factors")
@click.option("--loops", default=40_000, show_default=True, type=int, help="Python loop steps per record")
@click.option("--rate", default=40.0, show_default=True, type=float, help="records/s (keep every node far from busy)")
@click.option("--seconds", default=25.0, show_default=True, type=float, help="profiling window per node")
@click.option("--node", "only", multiple=True, help="measure only this node (and the reference); repeatable")
def calibrate_cmd(out, loops, rate, seconds, only) -> None:
    """Measure each testbed node's speed: the same fixed work per record on each TaskManager in turn,
    relative to the first cloud node. `plan --job --speeds FILE` and `calibrate_speeds = true` use it."""
    from experiments.calibration import measure_speeds, write_speeds
    from experiments.environments import LocalTestbed
    from experiments.testbed.testbed import require
    if loops < 1 or rate <= 0:
        raise EdgeplaceError("--loops must be >= 1 and --rate > 0")
    env = LocalTestbed(require().spec["edge_cpu"])
    ms = measure_speeds(env, say, loops=loops, rate=rate, seconds=seconds, only=list(only))
    t = Table("node", "CPU s per record", "speed")
    for m in ms:
        t.add_row(m.node, f"{m.cost_s_per_record:.3e}", f"{m.speed:.2f}")
    console.print(t)
    write_speeds(out, ms)
    say(f"wrote {out}")


@main.group()
def cluster() -> None:
    """A real cluster (Raspberry Pis + servers) provisioned with the Ansible playbooks in ansible/."""


def _inventory_option(f):
    return click.option("--inventory", "-i", required=True, help="Ansible inventory (see ansible/inventory/example.yml)")(f)


def _recap(run) -> None:
    for host, c in sorted(run.recap.items()):
        say(f"{host}: ok={c['ok']} changed={c['changed']} unreachable={c['unreachable']} failed={c['failed']}")


@cluster.command("provision")
@_inventory_option
@click.option("--no-wheel", is_flag=True, help="do not install edgeplace's own job code on the hosts")
@click.option("--forks", type=int, help="hosts provisioned at once (Ansible forks)")
@click.option("--wheelhouse", help="install offline from this directory of wheels (filled from PyPI if empty)")
@click.option("--platform", help="wheel platform of the hosts for --wheelhouse, e.g. manylinux2014_aarch64 for Pis")
def cluster_provision(inventory, no_wheel, forks, wheelhouse, platform) -> None:
    """Install Java 17 and Flink 2.3 (PyFlink venv) and write every JobManager/TaskManager config (site.yml)."""
    from experiments.cluster import provision
    _recap(provision(inventory, say, with_wheel=not no_wheel, forks=forks, wheelhouse_dir=wheelhouse,
                     platform=platform))


@cluster.command("start")
@_inventory_option
def cluster_start(inventory) -> None:
    """Start the JobManager and TaskManagers; returns when every TaskManager is registered."""
    from experiments.cluster import run_playbook
    _recap(run_playbook("start", inventory, say=say))


@cluster.command("stop")
@_inventory_option
def cluster_stop(inventory) -> None:
    """Stop every TaskManager and the JobManager."""
    from experiments.cluster import run_playbook
    _recap(run_playbook("stop", inventory, say=say))


@cluster.command("wan")
@_inventory_option
@click.option("--mbit", type=float, help="uplink rate of the edge sites, Mbit/s")
@click.option("--delay-ms", default=0.0, show_default=True, type=float, help="added delay (netem, where present)")
@click.option("--site", help="only this edge site (default: all)")
@click.option("--clear", is_flag=True, help="remove the shaping")
@click.option("--from-inventory", is_flag=True, help="apply each site's wan_sites entry from the inventory")
def cluster_wan(inventory, mbit, delay_ms, site, clear, from_inventory) -> None:
    """Set, or clear, tc shaping on the edge hosts' uplinks (wan.yml)."""
    from experiments.cluster import run_playbook, wan
    if sum([mbit is not None, clear, from_inventory]) != 1:
        raise EdgeplaceError("give exactly one of --mbit, --clear or --from-inventory")
    if from_inventory:
        _recap(run_playbook("wan", inventory, say=say))
    else:
        _recap(wan(inventory, None if clear else mbit, delay_ms, site, say))


@cluster.command("facts")
@_inventory_option
@click.option("--out", default="cluster.json", show_default=True, help="cluster file for the planner")
def cluster_facts(inventory, out) -> None:
    """Collect cores, memory and architecture of every host into a cluster file (facts.yml)."""
    from experiments.cluster import facts
    data = facts(inventory, out, say)
    for n in data["nodes"]:
        say(f"{n['id']}: site {n['site']}, {n['slots']} slots, {n['cores']} cores, {n['memory_mb']} MB, {n['arch']}")
    say(f"wrote {out}")


@main.group()
def bench() -> None:
    """Benchmarks that print numbers (not tests)."""


@bench.command("query")
@click.argument("name")
@click.option("--opt", "opts", multiple=True, help="job option k=v (e.g. query=q5 for nexmark)")
@click.option("--seconds", default=20.0, show_default=True, type=float, help="measured window")
@click.option("--warmup", default=15.0, show_default=True, type=float, help="discarded warm-up")
def bench_query(name, opts, seconds, warmup) -> None:
    """Records/s per core of query NAME (or `all`) with every operator on the local cloud TaskManager.
    Uses the testbed that is up, or starts one (1 cloud TaskManager, 8 slots) and takes it down after."""
    from experiments.bench import CATALOGUE, bench as run_bench
    from experiments.testbed import state as st
    from experiments.testbed.spec import TestbedSpec
    from experiments.testbed.testbed import down, up
    from queries import registry
    if name != "all":
        registry.load(name)  # unknown query → one clear error before anything starts
    todo = CATALOGUE if name == "all" else [(name, [a for o in opts for a in ("--opt", o)])]
    started = False
    state = st.load()
    if state is None or state.phase != "up":
        up(TestbedSpec(edge=0, cloud=1, cloud_slots=8, wan_mbit=None).validate(), say=say)
        started = True
    table = Table(title="records/s per core, all operators on one cloud TaskManager, source unthrottled")
    for col in ("query", "events/s", "cores used", "events/s per core", "slowest operator (true rate/s)"):
        table.add_column(col, justify="left" if col in ("query", "slowest operator (true rate/s)") else "right")
    try:
        for q, args in todo:
            say(f"benchmarking {q} {' '.join(args)} ({warmup:.0f} s warm-up + {seconds:.0f} s)")
            r = run_bench(q, args, warmup, seconds, say)
            finite = {k: v for k, v in r.per_operator.items() if v == v and 0 < v != float("inf") and
                      not k.startswith(("Source:", "Sink:")) and not k.endswith((" gen", " end", " watermarks"))}
            slow = min(finite.items(), key=lambda kv: kv[1]) if finite else ("-", float("nan"))
            table.add_row(r.label, f"{r.events_per_s:,.0f}", f"{r.cores:.2f}", f"{r.per_core:,.0f}",
                          f"{slow[0]} ({slow[1]:,.0f})")
    finally:
        if started:
            down(say=say)
    console.print(table)


@main.command("predict")
@click.option("--problem", "problem_file", required=True)
@click.option("--placement", "placement_file", required=True)
@click.option("--rate", type=float, help="also estimate latency at this source rate")
@click.option("--json", "as_json", is_flag=True)
def predict_cmd(problem_file, placement_file, rate, as_json) -> None:
    """Predict λ*, bottleneck, WAN bytes and utilisation of a placement."""
    from costmodel import problem as pb
    from costmodel.predict import latency_s, predict
    from placement.model import Placement
    p = pb.load(problem_file)
    asg = Placement.read(placement_file).assignments
    pred = predict(p, asg)
    out = pred.to_json()
    if rate is not None:
        out["latency_s"] = latency_s(p, asg, rate)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    console.print(f"λ* = {pred.max_rate:.6g} source records/s per unit rate, bottleneck {pred.bottleneck}")
    console.print(f"WAN bytes per unit rate: {pred.wan_bytes_per_unit_rate:.6g}")
    for n, u in pred.nodes.items():
        console.print(f"  {n}: {u:.1%} CPU at λ*")
    if rate is not None:
        console.print(f"latency at {rate:g}: {out['latency_s'] * 1000:.1f} ms")


# ---------------------------------------------------------------- collector

@main.command("collect")
@click.option("--job", "job_id", required=True)
@click.option("--duration", default=60.0, show_default=True, help="seconds of samples to keep")
@click.option("--interval", default=5.0, show_default=True, help="seconds between polls")
@click.option("--warmup", default=0.0, show_default=True, help="seconds to sample and discard first")
@click.option("--rest", "rest_url", help="JobManager REST URL (default: the local testbed)")
@click.option("--out", required=True, help="Parquet file for the tidy samples")
def collect_cmd(job_id, duration, interval, warmup, rest_url, out) -> None:
    """Sample a running job's per-subtask metrics (and WAN bytes on the testbed) into Parquet."""
    from rich.progress import Progress
    from collectors.rest import FlinkRest
    from collectors.store import save_samples
    from collectors.sampler import sample
    wan = None
    if rest_url:
        rest = FlinkRest(rest_url)
    else:
        from experiments.testbed.testbed import require, rest_of, wan_counters
        state = require()
        rest, wan = rest_of(state), (lambda: wan_counters(state))
    rest.running_job(job_id)
    total = warmup + duration
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task(f"collecting {job_id[:8]}", total=total)
        run = sample(rest, job_id, duration, interval, wan, progress=lambda t: bar.update(task, completed=t),
                     warmup=warmup)
    kept = save_samples(run, out, {"job": job_id, "interval": interval, "warmup": warmup})
    say(f"{kept} samples written to {out}" + (f"; {len(run.gaps)} gap(s) without answers" if run.gaps else ""))
    if run.stopped_because:
        raise EdgeplaceError(f"collection stopped early: {run.stopped_because}; the {kept} samples taken are in {out}")


@main.command("profile")
@click.argument("samples_file")
@click.option("--json", "as_json", is_flag=True)
def profile_cmd(samples_file, as_json) -> None:
    """Per-operator profile (true rates, selectivity, bytes/record, busy/idle/backpressure) from samples."""
    from collectors.profiles import profiles, wan_rates
    from collectors.store import load_samples
    df, meta = load_samples(samples_file)
    profs = profiles(df)
    wan = wan_rates(df)
    if as_json:
        click.echo(json.dumps({"operators": [p.to_json() for p in profs], "wan_bytes_per_s": wan,
                               "meta": meta}, indent=2, default=str))
        return
    t = Table("operator", "par", "true in/s", "true out/s", "in/s", "out/s",
              "sel.", "B/rec", "busy", "idle", "bp", "n", "spread", "flags")
    for p in profs:
        t.add_row(p.name, str(p.parallelism), _num(p.true_processing_rate), _num(p.true_output_rate),
                  _num(p.observed_in_rate), _num(p.observed_out_rate), _num(p.selectivity, 4),
                  _num(p.bytes_out_per_record), _pct(p.busy), _pct(p.idle), _pct(p.backpressure), str(p.samples),
                  _pct(p.spread), "; ".join(p.flags))
    console.print(t)
    for k, v in sorted(wan.items()):
        console.print(f"WAN {k}: {v * 8 / 1e6:.3f} Mbit/s ({v:,.0f} B/s)")


def _num(x: float, digits: int = 1) -> str:
    import math
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else f"{x:,.{digits}f}"


def _pct(x: float) -> str:
    import math
    return "-" if x is None or math.isnan(x) else f"{x:.0%}"


# ---------------------------------------------------------------- experiments

@main.command("run")
@click.argument("config_file")
@click.option("--results", default="results", show_default=True, help="directory for experiment results")
def run_cmd(config_file, results) -> None:
    """Run an experiment (resumable); writes Parquet results, figures and a report."""
    _run_and_report(config_file, results)


@main.command("demo")
@click.option("--results", default="results", show_default=True)
def demo_cmd(results) -> None:
    """The demo experiment on the local testbed: Nexmark q2 and the QA pipeline, thin vs fat link,
    Flink's own placement vs cloud-only vs optimal (≤ 10 min)."""
    _run_and_report(str(Path(__file__).parent / "configs" / "demo.toml"), results)


def _run_and_report(config_file: str, results: str) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from experiments.report import headline, write_report
    from experiments.plots import load_cells
    from experiments.runner import run
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} cells"),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("experiment", total=None)
        root = run(config_file, results, say=lambda m: bar.console.print(m, markup=False),
                   progress=lambda i, n: bar.update(task, completed=i, total=n))
    report = write_report(root)
    console.print(f"report: {report}")
    for line in headline(load_cells(root)):
        console.print(f"  {line}", markup=False)


@main.command("plot")
@click.argument("results_dir")
def plot_cmd(results_dir) -> None:
    """PNG figures of an experiment's results."""
    from experiments.plots import plot_all
    for f in plot_all(Path(results_dir)):
        console.print(str(f))


@main.command("report")
@click.argument("results_dir")
def report_cmd(results_dir) -> None:
    """Markdown report (tables, figures, headline numbers) of an experiment's results."""
    from experiments.report import headline, write_report
    from experiments.plots import load_cells
    console.print(f"report: {write_report(Path(results_dir))}")
    for line in headline(load_cells(Path(results_dir))):
        console.print(f"  {line}", markup=False)


if __name__ == "__main__":
    main()
