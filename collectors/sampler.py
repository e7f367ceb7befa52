"""Poll per-subtask metrics (and WAN counters) of a running job into tidy samples.

Rows: time, job, vertex, vertex_name, subtask, taskmanager, metric, value. WAN rows use vertex
"link:<site>:<up|down>" and metric "bytes" (cumulative). A poll the JobManager did not answer adds a
"gap" row; when the job is gone, no longer running or restarted (or the JobManager stays away) sampling stops
and keeps what it has."""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from common import flinksettings
from common.errors import EdgeplaceError
from collectors.rest import FlinkRest, FlinkRestError, JobManagerUnreachable, JobNotFound
from collectors.topology import job_graph

GAUGES = ("busyTimeMsPerSecond", "idleTimeMsPerSecond", "backPressuredTimeMsPerSecond",
          "numRecordsInPerSecond", "numRecordsOutPerSecond", "numBytesInPerSecond", "numBytesOutPerSecond")
COUNTERS = ("numRecordsIn", "numRecordsOut", "numBytesIn", "numBytesOut",
            "accumulateBusyTimeMs", "accumulateIdleTimeMs", "accumulateBackPressuredTimeMs")
METRICS = GAUGES + COUNTERS
# the Python worker's gauges (queries.runtime.WorkerGauges): operator-scoped, so their ids carry the
# operator's name ('<operator>.workerCpuMs'); rows name them without it
WORKER_GAUGES = (flinksettings.WORKER_CPU_MS, flinksettings.WORKER_PID)
RELIST_EVERY = 4  # polls between looks for a subtask's worker gauges while it reports none
COLUMNS = ["time", "job", "vertex", "vertex_name", "subtask", "taskmanager", "metric", "value"]


@dataclass
class SampleRun:
    rows: list[dict] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)   # (start, end) without answers
    stopped_because: str | None = None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def whole(self, what: str) -> SampleRun:
        """This run, if it ran its course; a run cut short (the job stopped running, the JobManager went away)
        describes a job that no longer runs as it did, so `what` (a profile, a measurement) fails instead."""
        if self.stopped_because:
            raise EdgeplaceError(f"{what} stopped early: {self.stopped_because}")
        return self


def _value(raw) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def _restarted(job: dict, first: list[float]) -> str | None:
    """How the job restarted since the first poll (`first` keeps when it had last restarted then), or None.
    A restart between two polls leaves the job RUNNING at both (q5 at 0.15 Mbit/s lost its edge TaskManager to
    a heartbeat timeout and was RUNNING again within 5 s, restored from a checkpoint); Flink's time of its
    latest RESTARTING tells."""
    at = float((job.get("timestamps") or {}).get("RESTARTING") or 0)
    if not first:
        first.append(at)
    elif at > first[0]:
        when = datetime.fromtimestamp(at / 1000, tz=timezone.utc).strftime("%H:%M:%S")
        return f"restarted at {when} UTC (restored from a checkpoint, it runs again)"
    return None


def poll_once(rest: FlinkRest, job_id: str, vertices: dict[str, dict], now: float) -> list[dict]:
    rows = []
    for vid, info in vertices.items():
        for i in range(info["parallelism"]):
            path = f"/jobs/{job_id}/vertices/{vid}/subtasks/{i}/metrics"
            gauges = _worker_gauge_ids(rest, path, info.setdefault("worker_gauges", {}), i)
            for m in rest.get(path, get=",".join((*METRICS, *gauges))):
                rows.append({"time": now, "job": job_id, "vertex": vid, "vertex_name": info["name"], "subtask": i,
                             "taskmanager": info["taskmanagers"][i], "metric": gauges.get(m["id"], m["id"]),
                             "value": _value(m["value"])})
    return rows


def _worker_gauge_ids(rest: FlinkRest, path: str, seen: dict[int, tuple[dict[str, str], int]],
                      subtask: int) -> dict[str, str]:
    """Metric id → gauge name of the worker gauges (WORKER_GAUGES) that one subtask reports, from the list of
    its metrics; `seen` keeps them per subtask. A subtask without them (a Java-only task, or a Python one whose
    worker has not reported yet) is looked at again every RELIST_EVERY polls."""
    ids, polls = seen.get(subtask, ({}, 0))
    if not ids and polls % RELIST_EVERY == 0:
        try:
            listed = rest.get(path)
        except FlinkRestError:
            listed = []
        ids = {m["id"]: g for m in listed for g in WORKER_GAUGES if m["id"] == g or m["id"].endswith("." + g)}
    seen[subtask] = (ids, polls + 1)
    return ids


def sample(rest: FlinkRest, job_id: str, duration: float, interval: float,
           wan: Callable[[], dict[str, int]] | None = None, give_up_after: float = 20.0,
           progress: Callable[[float], None] | None = None, warmup: float = 0.0,
           on_poll: Callable[[SampleRun], None] | None = None,
           until: Callable[[], bool] | None = None) -> SampleRun:
    """Poll every `interval` s for `warmup` + `duration` s and keep the polls after the warm-up.
    `wan()` returns cumulative bytes per 'site:dir'; `on_poll(kept so far)` after every poll (to write as it
    goes); `until()`, asked after every poll, ends the sampling early when true.
    Polling through the warm-up matters: the JobManager answers the first query after a quiet spell from a
    stale metric store."""
    run = _sample(rest, job_id, warmup + duration, interval, wan, give_up_after, progress,
                  (lambda r: on_poll(_after_warmup(r, warmup))) if on_poll else None, until)
    return _after_warmup(run, warmup)


def _after_warmup(run: SampleRun, warmup: float) -> SampleRun:
    if warmup <= 0 or not run.rows:
        return run
    t0 = min(r["time"] for r in run.rows) + warmup
    return SampleRun([r for r in run.rows if r["time"] >= t0 or r["metric"] == "gap"], run.gaps, run.stopped_because)


def _sample(rest: FlinkRest, job_id: str, duration: float, interval: float,
            wan: Callable[[], dict[str, int]] | None, give_up_after: float,
            progress: Callable[[float], None] | None, on_poll: Callable[[SampleRun], None] | None,
            until: Callable[[], bool] | None = None) -> SampleRun:
    run = SampleRun()
    g = job_graph(rest, job_id)
    vertices = {v: g.nodes[v] for v in g}
    quick = rest.quick()
    start = time.monotonic()
    gap_start: float | None = None
    restarted: list[float] = []  # when the job last restarted, as of the first poll
    next_t = start
    while True:
        now_m = time.monotonic()
        if now_m - start > duration:
            break
        now = time.time()
        try:
            job = quick.job(job_id)
            state = job["state"]
            if state != "RUNNING":
                run.stopped_because = f"job {job_id} is no longer running ({state})"
                break
            if (why := _restarted(job, restarted)) is not None:
                run.stopped_because = f"job {job_id} {why}"
                break
            rows = poll_once(quick, job_id, vertices, now)
            if gap_start is not None:
                run.gaps.append((gap_start, now))
                run.rows.append({"time": now, "job": job_id, "vertex": "", "vertex_name": "", "subtask": -1,
                                 "taskmanager": "", "metric": "gap", "value": now - gap_start})
                gap_start = None
            run.rows += rows
            if wan:
                for key, b in wan().items():
                    run.rows.append({"time": now, "job": job_id, "vertex": f"link:{key}", "vertex_name": f"link:{key}",
                                     "subtask": 0, "taskmanager": "", "metric": "bytes", "value": float(b)})
        except JobNotFound:
            run.stopped_because = f"job {job_id} is gone"
            break
        except (JobManagerUnreachable, FlinkRestError):
            gap_start = gap_start or now
            if now - gap_start > give_up_after:
                run.gaps.append((gap_start, now))
                run.stopped_because = (f"the JobManager has not answered for {now - gap_start:.0f} s "
                                       f"(> {give_up_after:.0f} s); stopped")
                break
        if on_poll:
            on_poll(run)
        if progress:
            progress(min(duration, time.monotonic() - start))
        if until is not None and until():
            break
        next_t += interval
        time.sleep(max(0.0, next_t - time.monotonic()))
    return run
