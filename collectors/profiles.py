"""Operator profiles from tidy samples (pure): true processing and output rates (DS2: records per second
of useful time), selectivity, bytes per record, time fractions, sample counts and spread."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from common.flinksettings import WORKER_CPU_MS, WORKER_PID


CONTROL_UP, CONTROL_DOWN = "ctl-up", "ctl-down"  # `wan` keys '<TaskManager id>:ctl-up': sent by it to the JobManager


@dataclass(frozen=True)
class OperatorProfile:
    vertex: str
    name: str
    parallelism: int
    true_processing_rate: float        # records in per busy second, per subtask (mean)
    true_output_rate: float            # records out per busy second, per subtask (mean)
    true_processing_rate_total: float  # summed over subtasks
    observed_in_rate: float            # records/s in, all subtasks
    observed_out_rate: float
    bytes_out_rate: float              # bytes/s out, all subtasks
    selectivity: float                 # records out / records in
    bytes_out_per_record: float
    busy: float                        # fractions of wall time, mean over subtasks
    idle: float
    backpressure: float
    samples: int                       # polls inside the window
    spread: float                      # relative std of per-interval true processing rates
    flags: tuple[str, ...] = field(default=())
    # (TaskManager id, pid, cores) of the Python worker each subtask reported (`_worker`); one worker serves
    # a slot, so subtasks of other vertices in the same slot report the same one
    workers: tuple[tuple[str, int, float], ...] = field(default=())

    @property
    def busy_cores(self) -> float:
        """Cores its subtasks were busy, together (0 where Flink reported no busy time)."""
        return (self.busy if self.busy == self.busy else 0.0) * self.parallelism

    def to_json(self) -> dict:
        d = asdict(self)
        d["flags"] = list(self.flags)
        d["workers"] = [list(w) for w in self.workers]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass(frozen=True)
class JobProfile:
    """What profiling one running job measured: a profile per Flink vertex, the logical operator each vertex
    belongs to (vertex id → op uid) and the TaskManager each operator ran on (op uid → TaskManager id)."""

    profiles: list[OperatorProfile]
    owners: dict[str, str]
    where: dict[str, str]
    cpu: dict[str, float] = field(default_factory=dict)  # TaskManager id → cores its process tree used (procfs)
    edges: list[tuple[str, str]] = field(default_factory=list)  # the job graph's vertex → vertex edges
    wan: dict[str, float] = field(default_factory=dict)  # bytes/s on each WAN link direction ('edge-1:up')
    state: dict[str, float] = field(default_factory=dict)  # vertex id → checkpointed state, bytes/s
    state_in_acks: dict[str, float] = field(default_factory=dict)  # vertex id → bytes in one checkpoint's acks
    heartbeat_timeout_s: float | None = None  # the cluster's heartbeat.timeout (None: not read)

    def by_operator(self) -> dict[str, list[OperatorProfile]]:
        """op uid → the profiles of the Flink vertices it owns (vertices of no operator left out)."""
        out: dict[str, list[OperatorProfile]] = {}
        for p in self.profiles:
            if p.vertex in self.owners:
                out.setdefault(self.owners[p.vertex], []).append(p)
        return out

    @property
    def control(self) -> dict[str, dict[str, float]]:
        """TaskManager id → {up, down}: bytes/s (on the wire) it exchanged with the JobManager, where counted
        per socket (`wan` keys '<id>:ctl-up' / '<id>:ctl-down')."""
        out: dict[str, dict[str, float]] = {}
        for key, rate in self.wan.items():
            tm, _, kind = key.rpartition(":")
            if kind in (CONTROL_UP, CONTROL_DOWN) and rate == rate:
                out.setdefault(tm, {})["up" if kind == CONTROL_UP else "down"] = rate
        return out


BUSY_EPS = 0.005  # below 0.5 % busy the division is meaningless: rate = inf, flagged


def _wide(samples: pd.DataFrame) -> pd.DataFrame:
    ops = samples[~samples["vertex"].str.startswith("link:") & (samples["metric"] != "gap")]
    return ops.pivot_table(index=["vertex", "vertex_name", "subtask", "time"], columns="metric", values="value",
                           aggfunc="last").reset_index()


def profiles(samples: pd.DataFrame, warmup: float = 0.0) -> list[OperatorProfile]:
    """One profile per job vertex over the samples after `warmup` seconds from the first poll."""
    if samples.empty:
        return []
    t0 = samples["time"].min() + warmup
    w = _wide(samples)
    w = w[w["time"] >= t0]
    tms = samples.groupby(["vertex", "subtask"])["taskmanager"].last()
    out = []
    for (vid, name), vdf in w.groupby(["vertex", "vertex_name"]):
        per_sub = []
        interval_rates = []
        workers = []
        flags: set[str] = set()
        for subtask, sdf in vdf.groupby("subtask"):
            sdf = sdf.sort_values("time")
            worker = _worker(sdf)
            if worker is not None:
                workers.append((str(tms.get((vid, subtask), "")), *worker))
            sdf = _complete_polls(sdf)
            if len(sdf) < 2:
                continue
            first, last = sdf.iloc[0], sdf.iloc[-1]
            d = {c: last.get(c, np.nan) - first.get(c, np.nan) for c in COUNTERS}
            wall = _task_seconds(first, last)
            if wall <= 0 or all(v == 0 for v in d.values()):
                flags.add("stale: counters did not change in the window")
                continue
            per_sub.append((d, wall))
            cols = sdf[["numRecordsIn", "numRecordsOut", "accumulateBusyTimeMs"]].diff().dropna()
            count = "numRecordsIn" if d["numRecordsIn"] > 0 else "numRecordsOut"
            for _, r in cols.iterrows():
                if r["accumulateBusyTimeMs"] > 0 and r[count] > 0:
                    interval_rates.append(r[count] / (r["accumulateBusyTimeMs"] / 1000))
        slope_points = _distinct_points(vdf)
        if not per_sub:
            out.append(_empty(vid, name, vdf, *(sorted(flags) or ["not enough samples after warm-up"])))
            continue
        rin = sum(d["numRecordsIn"] for d, _ in per_sub)
        rout = sum(d["numRecordsOut"] for d, _ in per_sub)
        bout = sum(d["numBytesOut"] for d, _ in per_sub)
        wall = np.mean([w_ for _, w_ in per_sub])
        busy = np.mean([d["accumulateBusyTimeMs"] / 1000 / w_ for d, w_ in per_sub])
        busy = max(0.0, busy) if math.isfinite(busy) else math.nan  # max(0.0, nan) would be 0.0: unbounded
        idle = np.mean([d["accumulateIdleTimeMs"] / 1000 / w_ for d, w_ in per_sub])
        bp = np.mean([d["accumulateBackPressuredTimeMs"] / 1000 / w_ for d, w_ in per_sub])
        n = len(per_sub)
        obs_in, obs_out = rin / wall, rout / wall
        is_source = rin == 0 and rout > 0
        if is_source:
            flags.add("source: rates from records out")
            basis = obs_out
        else:
            basis = obs_in
        if not math.isfinite(busy):
            flags.add("busy time unavailable: observed rate used" + (", corrected for backpressure" if bp > 0 else ""))
            tpr = basis / n / max(1e-9, 1 - (bp if math.isfinite(bp) else 0))
            tor = obs_out / n / max(1e-9, 1 - (bp if math.isfinite(bp) else 0))
        elif busy < BUSY_EPS:
            flags.add("busy ≈ 0: rate unbounded")
            tpr = tor = math.inf
        else:
            tpr = basis / n / busy
            tor = obs_out / n / busy
        if is_source and math.isfinite(busy) and bp > 0.05:
            flags.discard("busy ≈ 0: rate unbounded")
            if bp >= 0.99:
                flags.add("source fully backpressured: its own capacity is unknown")
                tpr = tor = math.inf
            else:
                flags.add(f"source backpressured {bp:.0%}: rate = observed / (1 - backpressure)")
                tpr = tor = obs_out / n / (1 - bp)
        spread = float(np.std(interval_rates) / np.mean(interval_rates)) if len(interval_rates) > 1 else math.nan
        out.append(OperatorProfile(
            vid, name, n, tpr, tor, tpr * n, obs_in, obs_out, bout / wall,
            _selectivity(slope_points, rin, rout), (bout / rout) if rout > 0 else math.nan,
            float(busy), float(idle), float(bp), int(vdf["time"].nunique()), spread, tuple(sorted(flags)),
            tuple(workers)))
    return out


CLOCK = ("accumulateBusyTimeMs", "accumulateIdleTimeMs", "accumulateBackPressuredTimeMs")


def _task_seconds(first: pd.Series, last: pd.Series) -> float:
    """Seconds between two polls of one subtask by the task's own clock (busy + idle + backpressured ms
    advance 1000 per second): the JobManager serves cached values, so poll times misstate when the counters
    were read. The poll times where the clock is missing."""
    wall = sum(last.get(c, np.nan) - first.get(c, np.nan) for c in CLOCK) / 1000
    return wall if math.isfinite(wall) and wall > 0 else last["time"] - first["time"]


def _worker(sdf: pd.DataFrame) -> tuple[int, float] | None:
    """(pid, cores) of the Python worker one subtask reported (its WORKER_CPU_MS and WORKER_PID gauges), over
    the polls of its last pid that have them: the worker's CPU seconds over the task's own clock between the
    first and the last of those polls (the gauges come in the same answers as the counters, so both were
    read at the same instants). None without two such polls."""
    if WORKER_CPU_MS not in sdf.columns or WORKER_PID not in sdf.columns:
        return None
    have = sdf.dropna(subset=[WORKER_CPU_MS, WORKER_PID])
    if have.empty:
        return None
    pid = have[WORKER_PID].iloc[-1]
    have = have[have[WORKER_PID] == pid]  # a restarted worker starts its CPU time again
    if len(have) < 2:
        return None
    a, b = have.iloc[0], have.iloc[-1]
    wall = _task_seconds(a, b)
    if wall <= 0:
        return None
    return int(pid), max(0.0, float(b[WORKER_CPU_MS] - a[WORKER_CPU_MS]) / 1000 / wall)


COUNTERS = ("numRecordsIn", "numRecordsOut", "numBytesOut", "accumulateBusyTimeMs", "accumulateIdleTimeMs",
            "accumulateBackPressuredTimeMs")


def _complete_polls(sdf: pd.DataFrame) -> pd.DataFrame:
    """The polls of one subtask that answered every counter, when at least two did: the JobManager's first
    answer after a quiet spell may lack a metric, and a window opened on a missing busy time would read as
    'no busy time' (a rate of inf). With fewer than two complete polls, all of them (flags say what is missing)."""
    have = [c for c in COUNTERS if c in sdf.columns]
    complete = sdf.dropna(subset=have) if have else sdf
    return complete if len(complete) >= 2 else sdf


def _distinct_points(vdf: pd.DataFrame) -> pd.DataFrame:
    """(records in, records out) summed over subtasks at each poll where the counters were fresh."""
    pts = vdf.groupby("time")[["numRecordsIn", "numRecordsOut"]].sum()
    return pts.drop_duplicates()


def _selectivity(points: pd.DataFrame, rin: float, rout: float) -> float:
    """Records out per record in between the first poll where records flow out and the last one. An operator
    that holds records in flight (a Python worker's bundle) lags by a roughly constant amount once it flows;
    measuring from the start would count that backlog as filtering."""
    if rin <= 0:
        return math.nan
    flowing = points[(points["numRecordsIn"] > 0) & (points["numRecordsOut"] > 0)]
    if len(flowing) >= 2:
        d_in = flowing["numRecordsIn"].iloc[-1] - flowing["numRecordsIn"].iloc[0]
        if d_in > 0:
            return float((flowing["numRecordsOut"].iloc[-1] - flowing["numRecordsOut"].iloc[0]) / d_in)
    return rout / rin


def _empty(vid: str, name: str, vdf: pd.DataFrame, *why: str) -> OperatorProfile:
    nan = math.nan
    return OperatorProfile(vid, name, int(vdf["subtask"].nunique()), nan, nan, nan, nan, nan, nan, nan, nan, nan,
                           nan, nan, int(vdf["time"].nunique()), nan, tuple(why))


def wan_rates(samples: pd.DataFrame, warmup: float = 0.0) -> dict[str, float]:
    """Bytes/s per link direction ('edge-1:up') over the window, from the cumulative counters."""
    links = samples[samples["vertex"].str.startswith("link:")]
    if links.empty:
        return {}
    t0 = samples["time"].min() + warmup
    links = links[links["time"] >= t0]
    out = {}
    for key, df in links.groupby("vertex"):
        df = df.sort_values("time")
        if len(df) >= 2 and df["time"].iloc[-1] > df["time"].iloc[0]:
            out[key.removeprefix("link:")] = (df["value"].iloc[-1] - df["value"].iloc[0]) / (
                df["time"].iloc[-1] - df["time"].iloc[0])
    return out
