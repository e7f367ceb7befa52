"""Benchmark (prints numbers, asserts nothing): how a running job on the local testbed speeds up, and where
each edge TaskManager's CPU goes meanwhile. Every `--every` seconds: the sources' records/s (REST) and, per
edge TaskManager, the cores its JVM's JIT compiler threads, GC threads and other threads used, and its
Python workers (procfs). Under a CPU quota the JIT's share comes out of the job's.

    python -m benchmarks.warmup_curve JOBID [--seconds 300] [--every 30]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import psutil

from collectors.rest import FlinkRestError
from common.errors import EdgeplaceError
from costmodel.problem import CLOUD
from experiments.measure import tm_processes, tree_cpu
from experiments.testbed import state as st

TICKS = os.sysconf("SC_CLK_TCK")


def thread_class(name: str) -> str:
    return "jit" if "Compiler" in name else "gc" if name.startswith(("GC ", "G1 ", "VM Thread")) else "other"


def cpu_by_class(tm: psutil.Process) -> dict[str, float]:
    """CPU seconds so far of the TaskManager's JVM threads by class, and of its Python workers."""
    jvm = next(p for p in [tm, *tm.children(recursive=True)] if p.name() == "java")
    out = {"jit": 0.0, "gc": 0.0, "other": 0.0}
    for tid in os.listdir(f"/proc/{jvm.pid}/task"):
        try:
            with open(f"/proc/{jvm.pid}/task/{tid}/comm") as fh:
                name = fh.read().strip()
            with open(f"/proc/{jvm.pid}/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out[thread_class(name)] += (int(fields[11]) + int(fields[12])) / TICKS
    out["python"] = sum(tree_cpu(p) for p in jvm.children() if "python" in p.name())
    return out


def source_records(rest, job_id: str) -> int:
    return sum(v["metrics"]["write-records"] for v in rest.job(job_id)["vertices"] if v["name"].startswith("Source"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--every", type=float, default=30.0)
    a = ap.parse_args()
    try:
        curve(a.job, a.seconds, a.every)
    except (EdgeplaceError, FlinkRestError) as exc:
        sys.exit(f"warmup_curve: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


def curve(job: str, seconds: float, every: float) -> None:
    state = st.require()
    rest = st.rest_of(state)
    edge_ids = {tm["id"] for tm in state.taskmanagers if tm["site"] != CLOUD}
    edges = {tm: p for tm, p in tm_processes(state).items() if tm in edge_ids}

    def snap():
        return time.monotonic(), source_records(rest, job), {tm: cpu_by_class(p) for tm, p in edges.items()}

    start = last = snap()
    print(f"{'s':>5} {'events/s':>9}  per edge TaskManager: cores of jit, gc, other JVM threads, python workers")
    while last[0] - start[0] < seconds:
        time.sleep(every)
        now = snap()
        dt = now[0] - last[0]
        cols = "  ".join(f"{tm}: " + " ".join(f"{k} {(now[2][tm][k] - last[2][tm][k]) / dt:.3f}" for k in now[2][tm])
                         for tm in sorted(now[2]))
        print(f"{now[0] - start[0]:5.0f} {(now[1] - last[1]) / dt:9.0f}  {cols}", flush=True)
        last = now


if __name__ == "__main__":
    main()
