"""Measure one deployed job: sustained source rate, WAN bytes per event, latency, CPU per TaskManager."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from collectors.checkpoints import recent_size, site_acks_reader
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
    overrun: str = ""                        # what became of a predicted checkpoint overrun (OverrunWatch)


@dataclass(frozen=True)
class OverrunWatch:
    """A cell the model predicts to sustain nothing because `site`'s checkpoint acknowledgements (`ack_bytes`,
    priced from a profile) outlast the heartbeat timeout. Its state grows from nothing after a deployment, so
    the job runs, at a rate, until the state reaches that size: a fixed-length measurement reads that transient
    (q5 at 0.15 Mbit/s: 232 events/s over 165 s while its state grew 208 → 668 kB, when three earlier
    deployments had failed after 4–5 minutes; measured on, 6 of 6 deployments failed: acceptance-4b). It is
    measured on until the site's acknowledgements reached `ack_bytes` and `hold_s` passed without the job
    failing, or `longest_s` passed."""
    site: str
    ack_bytes: float
    hold_s: float
    longest_s: float
    site_of: dict[str, str] = field(default_factory=dict)  # TaskManager id → site


class Reached:
    """When a growing size first reached `target`, and whether `hold_s` have passed since (pure)."""

    def __init__(self, target: float, hold_s: float):
        self.target, self.hold_s = target, hold_s
        self.first: float | None = None  # when it was first reached
        self.largest = 0.0

    def update(self, now: float, size: float) -> bool:
        if size == size:
            self.largest = max(self.largest, size)
            if self.first is None and size >= self.target:
                self.first = now
        return self.first is not None and now - self.first >= self.hold_s

    def note(self, site: str, started: float, now: float) -> str:
        head = f"checkpoint overrun predicted at {site} ({self.target / 1000:,.0f} kB of acknowledgements): "
        if self.first is None:
            return head + f"they reached {self.largest / 1000:,.0f} kB at most in {now - started:,.0f} s"
        return head + (f"reached after {self.first - started:,.0f} s; the job still ran "
                       f"{now - self.first:,.0f} s later")


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
            warmup: float, duration: float, wan, cycle_events: int = 0, longest: float = 0.0,
            watch: OverrunWatch | None = None) -> Measurement:
    """Sample through `warmup` (discarded) and `duration`; the cores each TaskManager's process tree used over
    the latter (`cpu`: CPU seconds so far per TaskManager; None: not measured).
    A job whose windows close every `cycle_events` events per source is measured on until every source has
    emitted CYCLES × that many (at most `longest` s in all): a window's closing is a burst of work, and a
    measurement that catches none of them, or one, reads a rate the job does not keep.
    The checkpointed state is read at both ends: a state still growing means a transient was measured.
    A cell predicted to overrun its checkpoints (`watch`) is measured on until the overrun had its chance
    (`OverrunWatch`); if the job fails meanwhile, the measurement fails as the model predicted."""
    started: list[tuple[float, dict[str, float]]] = []  # the window's first CPU reading
    progress0: dict[str, tuple[float, float]] = {}
    state0: list[float] = []
    acks = site_acks_reader(rest, job_id, watch.site_of, watch.site) if watch else None
    reached = Reached(watch.ack_bytes, watch.hold_s) if watch else None

    def at(elapsed: float) -> None:
        if elapsed >= warmup and not started:
            progress0.update(source_progress(out_dir))
            state0.append(recent_size(rest, job_id))
            started.append(read_cpu(cpu))

    def enough() -> bool:
        if not started:
            return False
        now = time.monotonic()
        if reached is not None and not reached.update(now, acks()):
            return False
        if now - started[0][0] < duration:
            return False
        if cycle_events <= 0 or not progress0:
            return True
        return events_per_source(progress0, source_progress(out_dir)) >= CYCLES * cycle_events

    longest = max(duration, longest if cycle_events > 0 else 0.0, watch.longest_s if watch else 0.0)
    run = sample(rest, job_id, longest, interval=2.5, wan=wan, warmup=warmup, progress=at,
                 until=enough).whole("the measurement")
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
    overrun = reached.note(watch.site, started[0][0], end[0]) if reached is not None and started else ""
    return Measurement(rate, wan_bps, up / rate if rate > 0 else float("nan"), latency(out_dir), cores, profs, df,
                       elapsed, cycles, state, overrun)


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
