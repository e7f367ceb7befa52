"""`edgeplace bench query NAME`: how many records per second one core sustains for a query, measured with
every operator on the testbed's cloud TaskManager (no WAN, no edge quota), source unthrottled."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.errors import EdgeplaceError
from common.say import Say
from experiments.environments import LocalTestbed
from experiments.measure import measure
from experiments.spine import running
from placement.model import Placement
from placement.realize import operators

# every query edgeplace ships, with the arguments that pick its variant
CATALOGUE = [("counts", []), ("calibrate", []), ("qa", []), ("imaging", []),
             *(("nexmark", ["--opt", f"query={q}"]) for q in ("q0", "q1", "q2", "q3", "q5", "q7", "q8", "q11", "q14"))]


@dataclass
class BenchResult:
    label: str
    events_per_s: float          # source records/s sustained
    cores: float                 # CPU of the cloud TaskManager tree (JVM + Python workers)
    per_operator: dict[str, float]  # operator → true processing rate (records per busy second)

    @property
    def per_core(self) -> float:
        return self.events_per_s / self.cores if self.cores > 0 else float("nan")

    @property
    def slowest(self) -> tuple[str, float]:
        """The operator with the lowest true processing rate (sources, sinks and their helpers left out)."""
        helpers = (" gen", " end", " watermarks", " timestamps", " watermark assigner")
        finite = {k: v for k, v in self.per_operator.items() if v == v and 0 < v != float("inf") and
                  not k.startswith(("Source:", "Sink:")) and not k.endswith(helpers)}
        return min(finite.items(), key=lambda kv: kv[1]) if finite else ("-", float("nan"))


def bench_all(todo: list[tuple[str, list[str]]], warmup: float, seconds: float, say: Say) -> list[BenchResult]:
    """`bench` each (query, job arguments) on the testbed that is up, or on one started for it (1 cloud
    TaskManager, 8 slots, taken down after)."""
    from experiments.testbed import state as st
    from experiments.testbed.spec import TestbedSpec
    from experiments.testbed.testbed import down, up
    state = st.load()
    started = state is None or state.phase != "up"
    if started:
        up(TestbedSpec(edge=0, cloud=1, cloud_slots=8, wan_mbit=None).validate(), say=say)
    try:
        out = []
        for q, args in todo:
            say(f"benchmarking {q} {' '.join(args)} ({warmup:.0f} s warm-up + {seconds:.0f} s)")
            out.append(bench(q, args, warmup, seconds, say))
        return out
    finally:
        if started:
            down(say=say)


def bench(query: str, args: list[str], warmup: float, seconds: float, say: Say) -> BenchResult:
    env = LocalTestbed()
    cloud = next((t["id"] for t in env.state.taskmanagers if t["site"] == "cloud"), None)
    if cloud is None:
        raise EdgeplaceError("the testbed has no cloud TaskManager")
    label = query + "".join(f" {a.split('=', 1)[1]}" for a in args if a.startswith("query="))
    job_args = ["--rate", "0", *args]
    ops = operators(query, job_args)
    out = Path(tempfile.mkdtemp(prefix="edgeplace-bench-"))
    try:
        with running(env, query, [*job_args, "--out", str(out)], Placement({o.uid: cloud for o in ops}),
                     out / "savepoints", say) as d:
            m = measure(env.target.rest, d.job_id, ops, env.cpu_meter(), out, warmup, seconds, None)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    per_op = {p.name: p.true_processing_rate for p in m.profiles}
    return BenchResult(label, m.source_rate, m.cpu_cores.get(cloud, float("nan")), per_op)
