"""`edgeplace bench query NAME`: how many records per second one core sustains for a query, measured with
every operator on the testbed's cloud TaskManager (no WAN, no edge quota), source unthrottled."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from experiments.deployment import deploy, operators
from experiments.environments import LocalTestbed
from experiments.errors import EdgeplaceError
from experiments.measure import measure
from placement import deploy as dp
from placement.model import Placement

Say = Callable[[str], None]
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


def bench(query: str, args: list[str], warmup: float, seconds: float, say: Say) -> BenchResult:
    env = LocalTestbed(edge_cpu=1.0)
    cloud = next((t["id"] for t in env.state.taskmanagers if t["site"] == "cloud"), None)
    if cloud is None:
        raise EdgeplaceError("the testbed has no cloud TaskManager")
    label = query + "".join(f" {a.split('=', 1)[1]}" for a in args if a.startswith("query="))
    job_args = ["--rate", "0", *args]
    ops = operators(query, job_args)
    out = Path(tempfile.mkdtemp(prefix="edgeplace-bench-"))
    try:
        d = deploy(env.target, query, [*job_args, "--out", str(out)], Placement({o.uid: cloud for o in ops}),
                   say=lambda m: None)
        try:
            m = measure(env.target.rest, d.job_id, ops, env.tm_processes(), out, warmup, seconds, None)
        finally:
            dp.end(env.target.rest, d.job_id, out / "savepoints")
            env.heal(say)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    per_op = {p.name: p.true_processing_rate for p in m.profiles}
    return BenchResult(label, m.source_rate, m.cpu_cores.get(cloud, float("nan")), per_op)
