"""Profile a running job: sample its metrics, compute a profile per vertex, attribute vertices to the job's
logical operators and note where each operator ran."""
from __future__ import annotations

import time
from typing import Callable

from collectors.attribution import actual, vertex_owners
from collectors.profiles import JobProfile, profiles, wan_rates
from collectors.checkpoints import read_state
from collectors.clusterconf import heartbeat_timeout_s
from collectors.rest import FlinkRest
from collectors.sampler import SampleRun, sample
from collectors.topology import job_graph
from queries.topology import OpSpec

CpuMeter = Callable[[], dict[str, float]]  # TaskManager id → CPU seconds its process tree has used so far


def read_cpu(cpu: CpuMeter | None) -> tuple[float, dict[str, float]]:
    """(monotonic time, reading) of one CPU reading, timed at the middle of the reading (over SSH, reading
    every host can take a second of a window); no meter reads nothing."""
    before = time.monotonic()
    seconds = cpu() if cpu is not None else {}
    return (before + time.monotonic()) / 2, seconds


def cores_between(start: tuple[float, dict[str, float]], end: tuple[float, dict[str, float]]) -> dict[str, float]:
    """Cores each TaskManager used between two `read_cpu` readings (those read at both ends)."""
    (t0, a), (t1, b) = start, end
    span = t1 - t0
    return {tm: (b[tm] - a[tm]) / span for tm in b if tm in a and span > 0}


MIN_PROFILE_S = 25.0  # the JobManager refreshes metrics every 10 s: a profile needs two fresh snapshots


def attribution(rest: FlinkRest, job_id: str, ops: list[OpSpec]) -> tuple[dict[str, str], dict[str, str]]:
    """(vertex id → operator uid, operator uid → the TaskManager it runs on) of a running job."""
    uids = {o.uid for o in ops}
    where = {uid: sorted(tms)[0] for uid, tms in actual(rest, job_id, ops).items() if tms and uid in uids}
    return vertex_owners(rest, job_id, ops), where


SETTLE_WINDOW_S = 20.0  # two metric refreshes of the JobManager
SETTLE_TOLERANCE = 0.05


def busy_per_event(samples, ops: list[OpSpec]) -> float:
    """Busy seconds of all the job's subtasks per event out of its sources over `samples` (NaN: no events)."""
    gens = {f"{o.name} gen" for o in ops if o.is_source}
    profs = profiles(samples)
    events = sum(p.observed_out_rate for p in profs if p.name in gens)
    busy = sum(p.busy * p.parallelism for p in profs if p.busy == p.busy)
    return busy / events if events > 0 else float("nan")


def settle(rest: FlinkRest, job_id: str, ops: list[OpSpec], longest: float,
           say: Callable[[str], None] = lambda _: None) -> tuple[float, bool]:
    """Wait (at most `longest` s) until the job's busy time per event holds still: two consecutive windows
    of SETTLE_WINDOW_S within SETTLE_TOLERANCE. A job gets faster for its first minute or more (q2's edge
    source under a 0.5-core quota: 4,848 events/s in its first 20 s, 6,000–7,800 after a minute; the
    JIT compiler's CPU comes out of the same quota). On a shared 2-core VM consecutive windows also differ
    by up to ±15 %, so the wait often runs to `longest`. Returns (seconds waited, whether the costs settled)."""
    t0, last = time.monotonic(), float("nan")
    while time.monotonic() - t0 + SETTLE_WINDOW_S <= longest:
        now = busy_per_event(sample(rest, job_id, SETTLE_WINDOW_S, interval=2.5).whole("profiling").frame(), ops)
        if now == now and last == last and abs(now - last) <= SETTLE_TOLERANCE * last:
            return time.monotonic() - t0, True
        if last == last and now == now:
            say(f"costs still moving ({(now - last) / last:+.0%} per event in {SETTLE_WINDOW_S:.0f} s)")
        last = now
    return time.monotonic() - t0, False


CYCLES = 2  # event-time windows that close within a profile or a measurement, at the least


def emitted_per_source(run: SampleRun, ops: list[OpSpec]) -> float:
    """The fewest records any source subtask's generator emitted over the polls of `run` (0: none seen)."""
    gens = {f"{o.name} gen" for o in ops if o.is_source}
    seen: dict[tuple[str, int], list[float]] = {}
    for r in run.rows:
        if r["metric"] == "numRecordsOut" and r["vertex_name"] in gens:
            seen.setdefault((r["vertex_name"], r["subtask"]), []).append(r["value"])
    return min((max(v) - min(v) for v in seen.values()), default=0.0)


def profile_job(rest: FlinkRest, job_id: str, ops: list[OpSpec], seconds: float, warmup: float = 0.0,
                cpu: CpuMeter | None = None, wan: Callable[[], dict[str, int]] | None = None,
                steady: float = 0.0, say: Callable[[str], None] = lambda _: None,
                cycle_events: int = 0, longest: float = 0.0) -> JobProfile:
    """Sample `job_id` for `warmup` (discarded) + `seconds` (at least MIN_PROFILE_S) and profile it; with
    `steady` > 0, first wait up to that long for its costs to settle (`settle`); with `cpu`, also the cores
    each TaskManager's process tree used over the same window, with `wan` (the WAN links' byte counters)
    the bytes/s each link carried; and the checkpointed state each vertex acknowledged (`read_state`) and
    the cluster's heartbeat timeout.
    A job whose event-time windows close every `cycle_events` events per source is sampled on until every
    source emitted CYCLES × that many (at most `longest` s): closing a window is a burst of work, which a
    profile that caught none or one of them would leave out of the cost per record, or count double."""
    if steady > 0:
        waited, settled = settle(rest, job_id, ops, steady, say)
        say(f"profiling after {waited:.0f} s of waiting: "
            + ("the costs held still" if settled else "the costs were still moving; that is the most it waits"))
        warmup = max(0.0, warmup - waited)
    started: list[tuple[float, dict[str, float]]] = []  # the window's first CPU reading
    since_ms = [time.time() * 1000.0]

    def at(elapsed: float) -> None:
        if elapsed >= warmup and not started:
            since_ms[0] = time.time() * 1000.0
            started.append(read_cpu(cpu))

    seconds = max(MIN_PROFILE_S, seconds)
    latest = [SampleRun()]

    def keep(r: SampleRun) -> None:
        latest[0] = r

    def enough() -> bool:
        return bool(started) and time.monotonic() - started[0][0] >= seconds and (
            cycle_events <= 0 or emitted_per_source(latest[0], ops) >= CYCLES * cycle_events)

    run = sample(rest, job_id, max(seconds, longest) if cycle_events > 0 else seconds, interval=2.5, wan=wan,
                 warmup=warmup, progress=at, on_poll=keep, until=enough).whole("profiling")
    cores = cores_between(started[0], read_cpu(cpu)) if started and cpu is not None else {}
    owners, where = attribution(rest, job_id, ops)
    df = run.frame()
    held = read_state(rest, job_id, since_ms[0])
    return JobProfile(profiles(df), owners, where, cores, list(job_graph(rest, job_id).edges), wan_rates(df),
                      held.rates, held.in_acks, heartbeat_timeout_s(rest))
