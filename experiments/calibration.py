"""Node speed factors measured on the cluster, not assumed: the same fixed Python work per record (the
`calibrate` job with --opt loops=N) runs on each TaskManager in turn at a low rate; its CPU per record there,
over the reference node's (the first cloud node: speed 1), gives the node's speed.

The rate stays well below every node's cores, so the busy time per record is the work's own time and not
time spent waiting for a CPU quota (which `cores` already accounts for)."""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import schema
from common.errors import EdgeplaceError
from common.files import write_atomic
from common.say import Say
from collectors.profiles import JobProfile
from costmodel.pricing import worker_cpu
from costmodel.problem import Node
from experiments.environments import Environment
from experiments.spine import profile, running
from placement.model import Placement
from placement.realize import operators



SPEEDS_SCHEMA = {"type": "object", "minProperties": 1, "additionalProperties": {
    "type": "object", "required": ["speed"],
    "properties": {"speed": schema.number(0, True), "cost_s_per_record": schema.number(0)}}}


@dataclass(frozen=True)
class SpeedMeasurement:
    node: str
    cost_s_per_record: float  # of the fixed work, on this node
    speed: float              # reference cost / this cost


def measure_speeds(env: Environment, say: Say, loops: int = 40_000, rate: float = 40.0, seconds: float = 25.0,
                   warmup: float = 10.0, only: list[str] | None = None) -> list[SpeedMeasurement]:
    """Run the fixed work on every node of `env` (a LocalTestbed or AnsibleCluster), or on the reference
    node and those in `only`, and compare."""
    nodes: list[Node] = env.nodes
    ref = next((n for n in nodes if n.site == "cloud"), None)
    unknown = sorted(set(only or []) - {n.id for n in nodes})
    if unknown:
        raise EdgeplaceError(f"no such node: {', '.join(unknown)} (nodes: {', '.join(n.id for n in nodes)})")
    site = next((n.site for n in nodes if n.site != "cloud"), None)
    if ref is None or site is None:
        raise EdgeplaceError("speed calibration needs a cloud node and an edge site")
    src = next(n for n in nodes if n.site == site)
    args = ["--sites", site, "--rate", f"{rate:g}", "--opt", f"loops={loops}", "--opt", "keep_every=1",
            "--opt", "payload=10"]
    ops = operators("calibrate", args)
    costs: dict[str, float] = {}
    todo = [n for n in nodes if not only or n.id in only or n.id == ref.id]
    for i, node in enumerate(todo, start=1):
        say(f"[{i}/{len(todo)}] measuring the speed of {node.id}: {loops:,} loops per record at {rate:g} records/s")
        placement = Placement({f"src-{site}": src.id, "work": node.id, "sink": ref.id})
        out = Path(tempfile.mkdtemp(prefix="edgeplace-speed-"))
        try:
            with running(env, "calibrate", [*args, "--out", str(env.target.flink_side(out))], placement,
                         out / "savepoints", say) as d:
                problem, measured = profile(env, d.job_id, ops, None, seconds, warmup, nodes)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        # the CPU the work's own Python worker reported per record; not its share of the TaskManager's CPU:
        # at this low rate the JVM's background CPU (GC, metrics, heartbeats; more on the cloud, which also
        # runs the sink) is a large part of the tree's CPU and made the edge look 1.8x faster than the cloud
        # once; nor its busy time, which counts the time the worker waits for a CPU on a machine that runs
        # other work (the edge 2.18x faster than the cloud, on one machine, in a CI run).
        # Without a worker's report: the busy time. Problem costs are normalised by the nodes' current speed
        # factors; undo that for the raw cost here.
        work = problem.op["work"]
        busy = work.busy_s_per_record if work.busy_s_per_record is not None else work.cost_s_per_record
        own = worker_s_per_record(measured, "work")
        costs[node.id] = own if own is not None else busy / node.speed
    if costs[ref.id] <= 0:
        raise EdgeplaceError("the reference node measured no CPU for the calibration work; raise --loops")
    return [SpeedMeasurement(n, c, costs[ref.id] / c if c > 0 else float("nan")) for n, c in costs.items()]


def worker_s_per_record(measured: JobProfile, uid: str) -> float | None:
    """CPU seconds per record of the Python workers operator `uid` ran in, as they reported their own CPU
    (`costmodel.pricing.worker_cpu`); None when none reported or no record reached it."""
    by_op = measured.by_operator()
    cores, _ = worker_cpu(by_op)
    rate = max((p.observed_in_rate for p in by_op.get(uid, [])), default=0.0)
    return cores[uid] / rate if cores.get(uid, 0.0) > 0 and rate > 0 else None


def write_speeds(path: str | Path, measurements: list[SpeedMeasurement]) -> None:
    bad = [m.node for m in measurements if not (math.isfinite(m.speed) and m.speed > 0)]
    if bad:
        raise EdgeplaceError(f"no usable speed measured for {', '.join(bad)} (its calibration work cost no CPU); "
                             "raise --loops")
    write_atomic(path, json.dumps({m.node: {"speed": m.speed, "cost_s_per_record": m.cost_s_per_record}
                                   for m in measurements}, indent=2), "speeds file")


def read_speeds(path: str | Path) -> dict[str, float]:
    """node id → speed from a file `edgeplace calibrate --out` wrote."""
    try:
        data = json.loads(Path(path).read_text())
        schema.check(data, SPEEDS_SCHEMA, str(path))
    except OSError as exc:
        raise EdgeplaceError(f"cannot read speeds file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise EdgeplaceError(f"speeds file {path} is not what `edgeplace calibrate --out` writes: {exc}") from None
    return {node: float(v["speed"]) for node, v in data.items()}
