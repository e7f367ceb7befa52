"""Measure one deployed job: sustained source rate, WAN bytes per event, latency, CPU per TaskManager."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from collectors.checkpoints import recent_size
from collectors.profiles import OperatorProfile, profiles, wan_rates
from collectors.profiling import CYCLES, CpuMeter, cores_between, read_cpu
from collectors.rest import FlinkRest
from collectors.sampler import sample
from experiments.testbed import state as st
from experiments.testbed.processes import ProcRef
from queries.topology import OpSpec


@dataclass
class Measurement:
    source_rate: float                       # records/s out of all sources' generators
    wan_bytes_per_s: dict[str, float]
    wan_bytes_per_event: float
    latency_s: dict[str, float]              # p50 / p95 / p99 at the sinks
    cpu_cores: dict[str, float]              # TaskManager id → cores used (process tree, procfs)
    profiles: list[OperatorProfile] = field(default_factory=list)
    samples: object = None
    seconds: float = float("nan")            # how long it was measured (after the warm-up)
    window_cycles: float = float("nan")      # event-time window periods each source went through (NaN: none)
    state_bytes: tuple[float, float] = (float("nan"), float("nan"))  # largest recent checkpoint: start, end


def tm_processes(state: st.State) -> dict[str, psutil.Process]:
    latest = {p["name"]: p for p in state.of_kind("process")}
    out = {}
    for tm in state.taskmanagers:
        live = ProcRef.recorded(latest[tm["id"]]).alive()
        if live:
            out[tm["id"]] = live
    return out


def tree_cpu(p: psutil.Process) -> float:
    """CPU seconds (user + system) of a process and all its descendants so far, including those of descendants
    that ended and were reaped: their seconds move to their parent's children times, and a tree that lost
    them read less at the end of a window than at its start (a job that failed ended its Python workers:
    -4.6 cores over 30 s on a 0.5-core edge)."""
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def measure(rest: FlinkRest, job_id: str, ops: list[OpSpec], cpu: CpuMeter | None, out_dir: Path,
            warmup: float, duration: float, wan, cycle_events: int = 0, longest: float = 0.0) -> Measurement:
    """Sample through `warmup` (discarded) and `duration`; the cores each TaskManager's process tree used over
    the latter (`cpu`: CPU seconds so far per TaskManager; None: not measured).
    A job whose windows close every `cycle_events` events per source is measured on until every source has
    emitted CYCLES × that many (at most `longest` s in all): a window's closing is a burst of work, and a
    measurement that catches none of them, or one, reads a rate the job does not keep.
    The checkpointed state is read at both ends: a state still growing means a transient was measured."""
    started: list[tuple[float, dict[str, float]]] = []  # the window's first CPU reading
    progress0: dict[str, tuple[float, float]] = {}
    state0: list[float] = []

    def at(elapsed: float) -> None:
        if elapsed >= warmup and not started:
            progress0.update(source_progress(out_dir))
            state0.append(recent_size(rest, job_id))
            started.append(read_cpu(cpu))

    def enough() -> bool:
        if not started or time.monotonic() - started[0][0] < duration:
            return False
        if cycle_events <= 0 or not progress0:
            return True
        return events_per_source(progress0, source_progress(out_dir)) >= CYCLES * cycle_events

    run = sample(rest, job_id, max(duration, longest) if cycle_events > 0 else duration, interval=2.5, wan=wan,
                 warmup=warmup, progress=at, until=enough).whole("the measurement")
    end = read_cpu(cpu if started else None)
    elapsed = end[0] - started[0][0] if started else float("nan")
    cores = cores_between(started[0], end) if started else {}
    df = run.frame()
    profs = profiles(df)
    progress1 = source_progress(out_dir)
    rate = progress_rate(progress0, progress1)
    if not rate == rate:  # no progress files (no --out): the REST-based estimate
        rate = sustained_source_rate(ops, profs)
    wan_bps = wan_rates(df)
    up = sum(v for k, v in wan_bps.items() if k.endswith(":up"))
    cycles = events_per_source(progress0, progress1) / cycle_events if cycle_events > 0 and progress0 else float("nan")
    state = (state0[0] if state0 else float("nan"), recent_size(rest, job_id) if state0 else float("nan"))
    return Measurement(rate, wan_bps, up / rate if rate > 0 else float("nan"), latency(out_dir), cores, profs, df,
                       elapsed, cycles, state)


def source_progress(out_dir: Path) -> dict[str, tuple[float, float]]:
    """(count, time) of every source subtask's latest progress file."""
    out = {}
    for f in out_dir.glob("progress-*.json"):
        try:
            d = json.loads(f.read_text())
            out[f.name] = (float(d["count"]), float(d["time"]))
        except (OSError, ValueError, KeyError):
            pass
    return out


def events_per_source(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> float:
    """The fewest records any source subtask emitted between two progress snapshots (0 if there are none)."""
    return min((after[k][0] - before[k][0] for k in after if k in before), default=0.0)


def progress_rate(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> float:
    """Records/s emitted by all sources between two progress snapshots (NaN if there are none)."""
    rates = [(after[k][0] - before[k][0]) / (after[k][1] - before[k][1])
             for k in after if k in before and after[k][1] > before[k][1]]
    return sum(rates) if rates else float("nan")


def sustained_source_rate(ops: list[OpSpec], profs: list[OperatorProfile]) -> float:
    """Total source rate the job sustains: min over operators of (records in per second ÷ records into it
    per source event). Downstream of a bottleneck the input rate is the true throughput even while the
    buffers in front of it still fill (the sources then briefly emit faster than the link carries)."""
    by_name = {p.name: p for p in profs}
    sel, rin = {}, {}
    for o in ops:
        main = by_name.get(f"{o.name} gen" if o.is_source else o.name)
        if main is None:
            continue
        rin[o.uid] = main.observed_out_rate if o.is_source else main.observed_in_rate
        sel[o.uid] = 1.0 if o.is_source else (main.observed_out_rate / main.observed_in_rate
                                               if main.observed_in_rate > 0 else 0.0)
    sources = [o for o in ops if o.is_source]
    per_event: dict[str, float] = {}
    for o in ops:  # ops are listed in topological order
        per_event[o.uid] = 1.0 if o.is_source else sum(per_event.get(u, 0.0) * sel.get(u, 0.0) for u in o.inputs)
    lam = min((rin[u] / r for u, r in per_event.items() if u in rin and r > 1e-9 and rin[u] == rin[u]),
              default=float("nan"))
    return lam * len(sources)


def latency(out_dir: Path) -> dict[str, float]:
    """Worst p50/p95/p99 over the sink subtasks' latest latency files."""
    vals: dict[str, list[float]] = {"p50": [], "p95": [], "p99": []}
    for f in out_dir.glob("latency-*.json"):
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for k in vals:
            vals[k].append(d[k])
    return {k: max(v) if v else float("nan") for k, v in vals.items()}
