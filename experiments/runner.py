"""`edgeplace run CONFIG`: every cell (query × bandwidth × policy × repetition) in a seeded shuffled order —
set the link, plan, deploy (verified), measure, store. Resumable; Ctrl-C or a failure leaves the testbed
clean and the results already written intact."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collectors.checkpoints import growth_note
from collectors.profiling import CYCLES
from collectors.rest import FlinkRestError
from common.errors import EdgeplaceError
from common.files import write_atomic
from common.say import Say
from common.signals import sigterm_interrupts
from costmodel.predict import predict
from costmodel.pricing import WIRE_EFFICIENCY, structure_problem, with_bandwidth, with_edge_pass
from costmodel.problem import Node, Problem, from_json, to_json
from experiments import config as cfg
from experiments.environments import AnsibleCluster, Environment, LocalTestbed
from experiments.measure import OverrunWatch, measure
from experiments.spine import profile, running
from experiments.local_testbed import ensure, fit
from experiments.testbed import testbed as tb
from placement.model import Placement
from placement.policies import FLINK_DEFAULT, plan
from queries import options, registry

CELL_COLUMNS = ["cell", "query", "bandwidth_mbit", "policy", "repetition", "placement", "predicted_rate",
                "predicted_bottleneck", "predicted_wan_bytes_per_event", "measured_rate", "wan_bytes_per_event",
                "wan_up_bytes_per_s", "latency_p50", "latency_p95", "latency_p99", "cpu_cores", "job",
                "started", "finished", "note", "phase", "redeploys", "measured_s", "window_cycles",
                "state_bytes_start", "state_bytes_end"]


FAILED = "failed: "  # how a cell that could not be measured starts its note
CHECKPOINT_MS = 10_000  # every job's checkpoint interval


def cell_id(c: dict) -> str:
    base = f"{c['query']}|{c['bandwidth_mbit']:g}|{c['policy']}|{c['repetition']}"
    return f"{base}|p{c['phase']}" if "phase" in c else base


@dataclass
class Results:
    """One directory per experiment: cells.parquet (one row per finished cell), metadata.json, profiles."""

    root: Path

    @property
    def cells_file(self) -> Path:
        return self.root / "cells.parquet"

    def all(self) -> pd.DataFrame:
        return pd.read_parquet(self.cells_file) if self.cells_file.exists() else pd.DataFrame(columns=CELL_COLUMNS)

    def done(self) -> pd.DataFrame:
        """Cells measured; a failed cell is tried again by the next run."""
        df = self.all()
        return df[~df["note"].astype(str).str.startswith(FAILED)]

    def add(self, row: dict) -> None:
        """Store one cell (replacing an earlier failure of the same cell)."""
        new = pd.DataFrame([row], columns=CELL_COLUMNS)
        old = self.all()
        old = old[old["cell"] != row["cell"]]
        df = new if old.empty else pd.concat([old, new], ignore_index=True)
        tmp = self.cells_file.with_suffix(".tmp")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.cells_file)


def metadata(conf: cfg.ExperimentConfig, config_path: str) -> dict:
    from importlib.metadata import version
    return {"config": conf.to_json(), "config_file": str(config_path), "config_hash": conf.digest(),
            "versions": {"edgeplace": version("edgeplace"), "apache-flink": version("apache-flink"),
                         "python": sys.version.split()[0], "kernel": platform.release()},
            "host": {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "machine": platform.machine(),
                     "processor": _cpu_model()},
            "seed": conf.seed, "command": " ".join(sys.argv)}


def as_run(conf: cfg.ExperimentConfig, env: Environment, nodes: list[Node]) -> dict:
    """The cluster the cells ran on, as the planner saw it (a real cluster's facts, not the config's testbed
    defaults): its nodes and the host each runs on where known."""
    hosts = env.hosts
    return {"kind": conf.cluster.kind,
            "nodes": [{"id": n.id, "site": n.site, "slots": n.slots, "cores": n.cores, "speed": n.speed,
                       **({"host": hosts[n.id]} if n.id in hosts else {})} for n in nodes],
            "speeds_measured": conf.calibrate_speeds}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(config_path: str, results_root: str, say: Say, progress=None) -> Path:
    conf = cfg.load(config_path)
    if conf.cluster.kind == "ansible":
        inv = Path(conf.cluster.inventory)
        if not inv.is_absolute():
            inv = Path(config_path).resolve().parent / inv
        conf = dataclasses.replace(conf, cluster=dataclasses.replace(conf.cluster, inventory=str(inv)))
    res = Results(Path(results_root) / f"{conf.name}-{conf.digest()}")
    meta_file = res.root / "metadata.json"
    cells = conf.cells()
    random.Random(conf.seed).shuffle(cells)
    done = set(res.done()["cell"])
    todo = [c for c in cells if cell_id(c) not in done]
    say(f"experiment {conf.name}: {len(cells)} cells, {len(cells) - len(todo)} already done, results in {res.root}")
    if not todo:
        return res.root
    want = fit(conf) if conf.cluster.kind == "local" else None  # before anything is started or written
    with sigterm_interrupts():
        started_testbed = ensure(want, say) if want is not None else False
        env = None
        try:
            env = (LocalTestbed(conf.cluster.edge_cpu) if conf.cluster.kind == "local"
                   else AnsibleCluster(conf.cluster.inventory, say))
            conf.cluster.rates(None, env.sites)  # [cluster.sites] names sites this cluster has
            res.root.mkdir(parents=True, exist_ok=True)
            if not meta_file.exists():
                write_atomic(meta_file, json.dumps({**metadata(conf, config_path), "runs": []}, indent=2), "metadata")
            _edit_metadata(meta_file, lambda m: m["runs"].append({"start": time.time()}))
            nodes = _nodes(conf, res, env, say)
            _edit_metadata(meta_file, lambda m: m.update(cluster=as_run(conf, env, nodes)))
            if conf.phases:
                from experiments.phased import run_phased
                run_phased(conf, res, todo, env, nodes, say, progress)
            else:
                _run_cells(conf, res, todo, env, nodes, say, progress)
        finally:
            if env is not None:
                env.close()
            if meta_file.exists():
                _edit_metadata(meta_file, lambda m: m["runs"][-1].update(end=time.time()))
            if started_testbed:
                tb.down(say=say)
    return res.root


def _edit_metadata(path: Path, change) -> None:
    """Read metadata.json, `change` it in place, write it back atomically."""
    meta = json.loads(path.read_text())
    change(meta)
    write_atomic(path, json.dumps(meta, indent=2), "metadata")


def _run_cells(conf, res: Results, todo: list[dict], env: Environment, nodes: list[Node], say: Say,
               progress) -> None:
    """Cells that share a query and a placement are measured in one deployment, one bandwidth after the
    other (fattest first, `fattest_first`): only the tc shaping changes between them, so each deployment is
    paid once. A profile's cells are measured right after it, before the next profile: this machine's speed
    drifts by the hour, and CPU-bound cells measured 1–2 h after their profile came out 9 % below its
    prediction, 2–4 h after 13 % (link-bound ones 1.4 %)."""
    jobs: dict[str, tuple[list[str], list]] = {}  # query label → (job arguments, logical operators)
    done, gi = [0], 0

    def priced_by(c: dict) -> str:  # the profile that prices a cell: its query's, or its repetition's own
        return f"{c['query']}-r{c['repetition']}" if conf.profile_each_repetition else c["query"]

    for by in dict.fromkeys(priced_by(c) for c in todo):  # in the (shuffled) order of the cells
        mine = [c for c in todo if priced_by(c) == by]
        groups = _plan(conf, res, mine, env, nodes, say, jobs, by)
        for members in groups.values():
            try:
                _measure_group(conf, res, env, gi, fattest_first(members), jobs, nodes, say, progress, done,
                               len(todo))
            except (EdgeplaceError, FlinkRestError) as exc:  # one cell's failure is recorded; the experiment goes on
                for c, pl, pred in members:
                    if cell_id(c) not in set(res.done()["cell"]):
                        res.add(_failed_row(c, pl, pred, failure(exc, pred)))
                        done[0] += 1
                        say(f"[{done[0]}/{len(todo)}] {cell_id(c)}: FAILED: {exc}")
                env.heal(say)
            gi += 1


def _plan(conf, res: Results, cells: list[dict], env: Environment, nodes: list[Node], say: Say,
          jobs: dict, by: str) -> dict[tuple, list[tuple[dict, Placement, object]]]:
    """The cells that one profile (`by`) prices, profiled if a policy needs it, planned and predicted, grouped
    by deployment (query, placement, repetition) in the order of the cells. A failed profile records its
    cells as failed and gives no groups."""
    q = conf.query(cells[0]["query"])
    if cells[0]["query"] not in jobs:
        jobs[cells[0]["query"]] = job_of(conf, q, env)
    args, ops = jobs[cells[0]["query"]]
    profiled = None
    if any(c["policy"] in cfg.NEEDS_PROFILE for c in cells):  # before planning any of its cells: all get predictions
        try:
            profiled = _profile(conf, res, env, q, args, ops, nodes, say, by)
        except (EdgeplaceError, FlinkRestError) as exc:  # its cells fail; the other queries go on
            for c in cells:
                res.add(_failed_row(c, Placement({}, meta={"partial": True}), None, f"profiling failed: {exc}"))
            say(f"{by}: profiling failed, its cells are recorded as failed: {exc}")
            env.heal(say)
            return {}
    groups: dict[tuple, list[tuple[dict, Placement, object]]] = {}
    for c in cells:
        rates = conf.cluster.rates(c["bandwidth_mbit"], env.sites)  # sites with their own rate keep it
        problem = with_bandwidth(structure_problem(ops, nodes, rates) if profiled is None else profiled, rates)
        placement = _placement(c["policy"], problem, ops)
        pred = predict(problem, placement.assignments) if profiled is not None and not placement.partial else None
        key = (c["query"], json.dumps(placement.to_json()["assignments"], sort_keys=True), c["repetition"],
               placement.partial)
        groups.setdefault(key, []).append((c, placement, pred))
    return groups


def fattest_first(members: list[tuple]) -> list[tuple]:
    """A deployment's cells in the order they are measured: fattest link first. A link that thinned leaves
    the job slower for minutes after it widens again (q8 cloud-only, edge-bound at 50 Mbit/s: 5,400–6,600
    events/s in six 25-s windows of a fresh job, 4,500–5,100 in the 2.5 minutes after a minute at 0.5
    Mbit/s; Flink's debloated buffers alone take about a minute to grow back), whereas a cell on a thin link
    is link-bound whatever came before."""
    return sorted(members, key=lambda m: -m[0]["bandwidth_mbit"])


def _measure_group(conf, res: Results, env: Environment, gi: int, members: list, jobs: dict, nodes, say: Say,
                   progress, done: list[int], total: int) -> None:
    """One deployment, measured at each bandwidth its cells ask for."""
    c0, placement, _ = members[0]
    q = conf.query(c0["query"])
    args, ops = jobs[c0["query"]]
    out_dir = env.target.flink_side(res.root / "sinks" / f"group-{gi}-{int(time.time())}")
    # deployed on the query's fattest link, as in a run from the start: one resumed with only its thin cells
    # left deployed at 0.15 Mbit/s, where q5's edge tasks did not reach RUNNING within 90 s
    env.before_deploy(conf.cluster.rates(max(conf.bandwidths_of(q)), env.sites))
    names = ", ".join(sorted({m[0]["policy"] for m in members}))
    say(f"deploying {c0['query']} ({names}, repetition {c0['repetition']}): {_describe(placement, nodes)}")
    with running(env, q.name, [*args, "--out", str(out_dir)], placement, res.root / "scratch-savepoints",
                 say) as d:
        measured: dict[float, object] = {}
        cycle = registry.cycle_events(q.name, args)
        for c, pl, pred in members:
            bw = c["bandwidth_mbit"]
            if bw not in measured:
                env.set_wan(conf.cluster.rates(bw, env.sites))
                started = time.time()
                m = measure(env.target.rest, d.job_id, ops, env.cpu_meter(), out_dir, conf.warmup_s,
                            conf.duration_s, env.wan_counters, cycle, conf.measure_longest_s,
                            overrun_watch(pred, conf.measure_overrun_s, nodes))
                measured[bw] = (m, started)
                (res.root / "samples").mkdir(exist_ok=True)
                m.samples.to_parquet(res.root / "samples" / f"{cell_id(c).replace('|', '_')}.parquet", index=False)
            m, started = measured[bw]
            res.add(_row(c, pl, pred, m, d.job_id, started, "; ".join(x for x in (
                "" if len([x for x in members if x[0]["bandwidth_mbit"] == bw]) == 1
                else "same placement as another policy: measured once", m.overrun) if x)))
            done[0] += 1
            say(f"[{done[0]}/{total}] {cell_id(c)}: {m.source_rate:,.0f} events/s"
                + (f" (predicted {pred.total_rate:,.0f})" if pred else "")
                + f", {m.wan_bytes_per_event:,.1f} WAN B/event"
                + (f"; over {m.window_cycles:.1f} window periods in {m.seconds:.0f} s"
                   + (f" (fewer than {CYCLES}: at most measure_longest_s)" if m.window_cycles < CYCLES else "")
                   if m.window_cycles == m.window_cycles else "")
                + (f"; {m.overrun}" if m.overrun else ""))
            if progress:
                progress(done[0], total)


def overrun_watch(pred, longest_s: float, nodes: list[Node]) -> OverrunWatch | None:
    """What to wait for in a cell whose prediction is that its checkpoints overrun a site's heartbeat timeout
    (None for any other cell): that site's acknowledgements at the priced size, for a heartbeat timeout and a
    checkpoint interval, at most `longest_s` in all."""
    if pred is None or not pred.bottleneck.startswith("checkpoint:"):
        return None
    site = pred.bottleneck.split(":", 1)[1]
    ack_bytes, timeout_s = pred.overruns[site]
    return OverrunWatch(site, ack_bytes, timeout_s + CHECKPOINT_MS / 1000.0, longest_s,
                        {n.id: n.site for n in nodes})


def job_of(conf, q: cfg.QuerySpec, env: Environment) -> tuple[list[str], list]:
    """(job arguments, logical operators) of a config's query on this environment's sites."""
    rate = "0" if conf.source_rate == "max" else str(conf.source_rate)
    args = [*q.args, "--sites", ",".join(env.sites), "--rate", rate, "--checkpoint-ms", str(CHECKPOINT_MS)]
    return args, registry.load(q.name).topology(options.parse(args))


def failure(exc: Exception, pred) -> str:
    """Why a cell failed, and that the model said it would where it predicted λ* = 0."""
    return str(exc) + (f" (as predicted: {pred.bottleneck}, λ* = 0)" if pred is not None and pred.max_rate == 0
                       else "")


def _failed_row(c: dict, placement: Placement, pred, why: str) -> dict:
    nan = float("nan")
    return {**_row(c, placement, pred, None, "", time.time(), f"{FAILED}{why}"),
            "measured_rate": nan, "wan_bytes_per_event": nan, "wan_up_bytes_per_s": nan, "latency_p50": nan,
            "latency_p95": nan, "latency_p99": nan, "cpu_cores": "{}"}


def _nodes(conf, res: Results, env: Environment, say: Say):
    """The environment's nodes, with measured speed factors when the config asks for them."""
    return _calibrated(res, env, env.nodes, say) if conf.calibrate_speeds else env.nodes


def _calibrated(res: Results, env, nodes, say: Say):
    """Nodes with measured speed factors (measured once per experiment; a resumed run reuses them)."""
    from costmodel.pricing import with_speeds
    from experiments.calibration import measure_speeds, read_speeds, write_speeds
    path = res.root / "speeds.json"
    if not path.exists():
        write_speeds(path, measure_speeds(env, say))
    speeds = read_speeds(path)
    say("node speeds: " + ", ".join(f"{n} {v:.2f}" for n, v in speeds.items()))
    return with_speeds(nodes, speeds)


def _describe(p: Placement, nodes) -> str:
    cloud = {n.id for n in nodes if n.site == "cloud"}
    edge = sorted(u for u, n in p.assignments.items() if n not in cloud)
    return ("sources pinned, the rest left to Flink" if p.partial else
            f"at the edge: {', '.join(edge) or 'nothing'}")


def _row(c: dict, placement: Placement, pred, m, job: str, started: float, note: str, redeploys: int = 0) -> dict:
    """One cell's row (`m` None: not measured; `_failed_row` fills the measured columns)."""
    row = {"cell": cell_id(c), **c, "phase": c.get("phase", 0), "redeploys": redeploys,
           "placement": json.dumps(placement.to_json()),
           "predicted_rate": pred.total_rate if pred else float("nan"),
           "predicted_bottleneck": pred.bottleneck if pred else "",
           # on the wire, up (edge → cloud), records and Flink's own traffic: what the link counters measure
           "predicted_wan_bytes_per_event": pred.wan_up_bytes_per_event / WIRE_EFFICIENCY if pred else float("nan"),
           "job": job, "started": started, "finished": time.time(), "note": note}
    if m is not None:
        row.update({"measured_rate": m.source_rate, "wan_bytes_per_event": m.wan_bytes_per_event,
                    "wan_up_bytes_per_s": sum(v for k, v in m.wan_bytes_per_s.items() if k.endswith(":up")),
                    "latency_p50": m.latency_s["p50"], "latency_p95": m.latency_s["p95"],
                    "latency_p99": m.latency_s["p99"], "cpu_cores": json.dumps(m.cpu_cores),
                    "measured_s": m.seconds, "window_cycles": m.window_cycles,
                    "state_bytes_start": m.state_bytes[0], "state_bytes_end": m.state_bytes[1]})
        row["note"] = "; ".join(x for x in (note, growth_note(*m.state_bytes)) if x)
    return row


def _placement(policy: str, problem: Problem, ops) -> Placement:
    if policy == FLINK_DEFAULT:
        srcs = {o.uid: problem.op[o.uid].pin for o in ops if o.is_source}
        return Placement(srcs, meta={"policy": policy, "partial": True})
    return Placement(plan(problem, policy), meta={"policy": policy})


def _profile(conf, res: Results, env, q, args, ops, nodes, say: Say, label: str | None = None) -> Problem:
    """Run the query cloud-only (with `profile_edge_pass`, then with everything that fits at the edge:
    edge-max), unshaped and unthrottled; price each operator from the pass that ran it where it would run
    (`with_edge_pass`). Kept as problem-`label`.json (the query's label, or with `profile_each_repetition`
    the label and the repetition), which a resumed run reads instead of profiling again."""
    label = label or q.label
    path = res.root / f"problem-{label}.json"
    if path.exists():
        return from_json(json.loads(path.read_text()))
    structure = structure_problem(ops, nodes, None)
    env.set_wan(None)
    layouts = {name: plan(structure, name) for name in ("cloud-only", "edge-max")[:1 + conf.profile_edge_pass]}
    passes = {}
    for name, where in layouts.items():
        if name == "edge-max" and where == layouts["cloud-only"]:
            break  # nothing but the sources fits at the edge
        say(f"profiling {label} ({name}, unshaped link, unthrottled) for {conf.profile_s:.0f} s"
            + (f" once its costs settle (at most {conf.profile_steady_s:.0f} s)" if conf.profile_steady_s else ""))
        with running(env, q.name, args, Placement(where), res.root / "scratch-savepoints", say) as d:
            passes[name] = profile(env, d.job_id, ops, None, conf.profile_s, conf.warmup_s, nodes,
                                   conf.profile_steady_s, say, registry.cycle_events(q.name, args),
                                   conf.measure_longest_s)
        suffix = "" if name == "cloud-only" else "-edge"
        measured = passes[name][1]
        write_atomic(res.root / f"profile-{label}{suffix}.json", json.dumps(
            {"operators": [p.to_json() for p in measured.profiles], "owners": measured.owners,
             "where": measured.where, "cpu_cores": measured.cpu, "edges": measured.edges, "wan": measured.wan,
             "state": measured.state, "state_in_acks": measured.state_in_acks,
             "heartbeat_timeout_s": measured.heartbeat_timeout_s}, indent=2, default=str),
            "profile")
    problem = passes["cloud-only"][0]
    if "edge-max" in passes:
        write_atomic(res.root / f"problem-{label}-cloud-only.json", json.dumps(to_json(problem), indent=2),
                     "problem")
        problem = with_edge_pass(problem, passes["edge-max"][0], passes["cloud-only"][1].where,
                                 passes["edge-max"][1].where)
    write_atomic(path, json.dumps(to_json(problem), indent=2), "problem")
    return problem
