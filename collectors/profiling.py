"""Profile a running job: sample its metrics, compute a profile per vertex, attribute vertices to the job's
logical operators and note where each operator ran."""
from __future__ import annotations

import time
from typing import Callable

from collectors.attribution import actual, vertex_owners
from collectors.profiles import JobProfile, profiles, wan_rates
from collectors.rest import FlinkRest
from collectors.sampler import sample
from collectors.topology import job_graph
from queries.topology import OpSpec

CpuMeter = Callable[[], dict[str, float]]  # TaskManager id → CPU seconds its process tree has used so far
MIN_PROFILE_S = 25.0  # the JobManager refreshes metrics every 10 s: a profile needs two fresh snapshots


def attribution(rest: FlinkRest, job_id: str, ops: list[OpSpec]) -> tuple[dict[str, str], dict[str, str]]:
    """(vertex id → operator uid, operator uid → the TaskManager it runs on) of a running job."""
    uids = {o.uid for o in ops}
    where = {uid: sorted(tms)[0] for uid, tms in actual(rest, job_id, ops).items() if tms and uid in uids}
    return vertex_owners(rest, job_id, ops), where


def profile_job(rest: FlinkRest, job_id: str, ops: list[OpSpec], seconds: float, warmup: float = 0.0,
                cpu: CpuMeter | None = None, wan: Callable[[], dict[str, int]] | None = None) -> JobProfile:
    """Sample `job_id` for `warmup` (discarded) + `seconds` (at least MIN_PROFILE_S) and profile it; with
    `cpu`, also the cores each TaskManager's process tree used over the same window, with `wan` (the WAN
    links' byte counters) the bytes/s each link carried."""
    started: list[dict[str, float]] = []
    t0: list[float] = []

    def at(elapsed: float) -> None:
        if cpu is not None and elapsed >= warmup and not started:
            started.append(cpu())
            t0.append(time.monotonic())

    run = sample(rest, job_id, max(MIN_PROFILE_S, seconds), interval=2.5, wan=wan, warmup=warmup, progress=at)
    cores = {}
    if started:
        end, span = cpu(), time.monotonic() - t0[0]
        cores = {tm: (end[tm] - started[0][tm]) / span for tm in end if tm in started[0] and span > 0}
    owners, where = attribution(rest, job_id, ops)
    df = run.frame()
    return JobProfile(profiles(df), owners, where, cores, list(job_graph(rest, job_id).edges), wan_rates(df))
