"""The closed loop: the spine run again and again on a running job — collect a rolling window, price it
on the conditions now, plan the best placement, and realise it only when a decision rule agrees.

The rule (pure, `decide`) follows DS2 and the Flink autoscaler: act only on a predicted gain of at least
`min_gain`, for the same best placement `stable` decisions in a row, and not within `cooldown` seconds of
the last redeploy. Every decision is one JSON line in the log, with the conditions it saw and why."""
from __future__ import annotations

import json
import math
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from collectors.checkpoints import read_state
from collectors.clusterconf import heartbeat_timeout_s
from collectors.profiles import JobProfile, profiles, wan_rates
from collectors.profiling import MIN_PROFILE_S, attribution
from collectors.sampler import COLUMNS, sample
from collectors.topology import job_graph
from common import paths
from common.errors import EdgeplaceError
from common.say import Say
from costmodel.predict import Prediction, predict
from costmodel.problem import Problem
from costmodel.pricing import price
from experiments.environments import Environment
from placement import records
from placement.model import Placement
from placement.policies import plan
from placement.realize import Realizer, operators

OBJECTIVES = ("throughput", "wan")
POLL_S = 2.5  # seconds between metric polls
WAN_HEADROOM = 1.1  # objective wan: the placement must sustain 10 % more than the rate offered now


@dataclass(frozen=True)
class AdaptOptions:
    interval: float = 10.0        # seconds between decisions
    window: float = 30.0          # seconds of metrics each decision prices (at least MIN_PROFILE_S)
    min_gain: float = 0.20        # predicted gain that justifies a redeploy
    stable: int = 3               # decisions in a row that must agree on the same better placement
    cooldown: float = 60.0        # seconds after a redeploy before the next one
    objective: str = "throughput"  # throughput (max sustainable rate) | wan (fewest WAN bytes at the offered rate)
    warmup: float = 15.0          # seconds after a job starts whose metrics are not priced (start-up transients)


@dataclass
class RuleState:
    best: str | None = None       # the better placement the last decisions agreed on (its key)
    streak: int = 0
    last_redeploy: float = -math.inf


@dataclass
class CostMemory:
    """Per-record CPU costs from the busiest window so far. A TaskManager's process tree spends CPU that does
    not scale with the records (JVM, Python workers' loops), which a window at a low rate spreads over few
    records: QA priced from a link-bound window at 97 ev/s cost 7.5 ms per event in the cloud, 3.1 ms at
    430 ev/s, so every edge layout looked 2× slower than it ran. Costs are therefore kept from the window
    with the highest offered rate (refreshed by any window within REFRESH of it); selectivities, record
    sizes and the links always come from the window now."""
    REFRESH = 0.9
    rate: float = 0.0
    costs: dict[str, tuple[float, float | None]] = field(default_factory=dict)

    def apply(self, problem: Problem, offered: float) -> Problem:
        if offered >= self.REFRESH * self.rate or not self.costs:
            self.rate = max(self.rate, offered)
            self.costs = {o.id: (o.cost_s_per_record, o.busy_s_per_record) for o in problem.operators}
            return problem
        return dataclasses.replace(problem, operators=tuple(
            dataclasses.replace(o, cost_s_per_record=self.costs[o.id][0], busy_s_per_record=self.costs[o.id][1])
            if o.id in self.costs else o for o in problem.operators))


@dataclass(frozen=True)
class Decision:
    action: str                   # stay | wait | redeploy
    why: str
    gain: float


def gain(objective: str, current: Prediction, best: Prediction, offered: float) -> float:
    """Predicted gain of `best` over `current`: relative λ* (throughput), or the share of WAN bytes saved
    while sustaining the offered rate (wan; infinite when only `best` sustains it)."""
    if objective == "throughput":
        if math.isinf(current.max_rate):
            return 0.0
        return math.inf if math.isinf(best.max_rate) else best.max_rate / current.max_rate - 1
    if current.max_rate < offered * WAN_HEADROOM:
        return math.inf if best.max_rate >= offered * WAN_HEADROOM else 0.0
    if current.wan_bytes_per_unit_rate <= 0:
        return 0.0
    return 1 - best.wan_bytes_per_unit_rate / current.wan_bytes_per_unit_rate


def decide(opts: AdaptOptions, state: RuleState, now: float, current: str, best: str, g: float) -> Decision:
    """Stay, wait or redeploy (and update `state`): `current`/`best` are placement keys, `g` the gain."""
    if best == current or g < opts.min_gain:
        state.best, state.streak = None, 0
        why = "the current placement is the best" if best == current else \
            f"predicted gain {g:.0%} < {opts.min_gain:.0%}"
        return Decision("stay", why, g)
    state.streak = state.streak + 1 if state.best == best else 1
    state.best = best
    if state.streak < opts.stable:
        return Decision("wait", f"gain {g:.0%}, {state.streak} of {opts.stable} decisions agree", g)
    if now - state.last_redeploy < opts.cooldown:
        return Decision("wait", f"gain {g:.0%}, but {now - state.last_redeploy:.0f} s since the last redeploy "
                        f"(cooldown {opts.cooldown:g} s)", g)
    return Decision("redeploy", f"gain {g:.0%}, {state.streak} decisions agree", g)


def key(assignment: dict[str, str]) -> str:
    return json.dumps(assignment, sort_keys=True)


def adapt(env: Environment, job_id: str, opts: AdaptOptions, log: Path, say: Say, dry_run: bool = False,
          rounds: int | None = None, memory: CostMemory | None = None) -> str:
    """Run the loop on `job_id` until Ctrl-C/SIGTERM (or `rounds` decisions); returns the id of the job
    that runs at the end (a redeploy gives the job a new id). A caller that runs the loop in stretches
    (`rounds`) passes one `memory` to all of them, so that it keeps what it learnt, as one loop would."""
    if opts.objective not in OBJECTIVES:
        raise EdgeplaceError(f"unknown objective {opts.objective!r}; known: {', '.join(OBJECTIVES)}")
    rec = records.load_record(paths.home(), job_id)
    if rec is None:
        raise EdgeplaceError(f"job {job_id} was not deployed by edgeplace here (no record); cannot adapt it")
    ops = operators(rec["query"], rec["args"])
    rest, realizer, state = env.target.rest, Realizer(env.target, say), RuleState()
    memory = CostMemory() if memory is None else memory
    rest.running_job(job_id)
    window = max(opts.window, MIN_PROFILE_S)
    rows: list[dict] = []
    meter = env.cpu_meter()
    readings: list[tuple[float, dict[str, float]]] = []  # (epoch s, CPU s per TaskManager) at each round's end
    job = _watch(rest, job_id, ops, opts.warmup)
    n = 0
    try:
        while rounds is None or n < rounds:
            run = sample(rest, job_id, opts.interval, interval=POLL_S, wan=env.wan_counters)
            if run.stopped_because:
                raise EdgeplaceError(f"stopped adapting: {run.stopped_because}")
            rows = rows + [r for r in run.rows if r["time"] >= job.warm_from]
            newest = max((r["time"] for r in rows), default=0.0)
            rows = [r for r in rows if r["time"] >= newest - window]  # the rolling window
            if meter is not None and time.time() >= job.warm_from:
                readings = [x for x in readings if x[0] >= time.time() - window] + [(time.time(), meter())]
            n += 1
            entry = _round(env, job_id, ops, rows, _cores(readings), job, window, opts, state, memory)
            if entry["action"] == "redeploy" and not dry_run:
                new = realizer.redeploy(job_id, Placement(json.loads(entry["best"]["placement"])))
                state.last_redeploy, state.best, state.streak = time.monotonic(), None, 0
                entry["redeployed_to"], entry["redeploy_s"] = new.job_id, round(new.phases.get("total", 0), 1)
                job_id, rows, readings = new.job_id, [], []
                job = _watch(rest, job_id, ops, opts.warmup)
            _log(log, entry)
            say(_line(entry, dry_run))
    except KeyboardInterrupt:
        say(f"stopped; job {job_id} runs on its last verified placement")
    return job_id


@dataclass(frozen=True)
class Watched:
    """What the loop knows of the job it watches, read once per (re)deploy."""
    owners: dict[str, str]            # Flink vertex id → operator uid
    where: dict[str, str]             # operator uid → TaskManager
    edges: list[tuple[str, str]]      # the job graph's vertex → vertex edges
    warm_from: float                  # local epoch time from which its metrics count
    heartbeat_timeout_s: float        # the cluster's heartbeat.timeout
    checkpoints: dict[int, dict] = field(default_factory=dict)  # details read so far, by id


def _watch(rest, job_id: str, ops, warmup: float) -> Watched:
    """The job's attribution and graph, and the end of its warm-up: `warmup` s after its last task started.
    The age comes from the JobManager's own clock (`now` and the vertices' `start-time`), so a cluster's
    clock skew does not matter."""
    owners, where = attribution(rest, job_id, ops)
    info = rest.job(job_id)
    started = max([v.get("start-time", 0) for v in info.get("vertices", [])] + [info.get("start-time", 0)])
    age = max(0.0, (info.get("now", started) - started) / 1000)
    return Watched(owners, where, list(job_graph(rest, job_id).edges), time.time() + max(0.0, warmup - age),
                   heartbeat_timeout_s(rest))


def _cores(readings: list[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Cores each TaskManager used between the oldest and the newest reading of the window."""
    if len(readings) < 2 or readings[-1][0] <= readings[0][0]:
        return {}
    (t0, a), (t1, b) = readings[0], readings[-1]
    return {tm: (b[tm] - a[tm]) / (t1 - t0) for tm in b if tm in a}


def _round(env: Environment, job_id: str, ops, rows: list[dict], cores: dict[str, float], job: Watched,
           window: float, opts: AdaptOptions, state: RuleState, memory: CostMemory) -> dict:
    """collect (the rows so far) → price → plan → decide, as one log entry."""
    import pandas as pd
    df = pd.DataFrame(rows, columns=COLUMNS)
    span = (df["time"].max() - df["time"].min()) if len(df) else 0.0
    rates = env.link_rates
    entry = {"time": time.time(), "job": job_id, "link_mbit": rates, "wan_bytes_per_s": wan_rates(df)}
    need = min(window, MIN_PROFILE_S) - POLL_S  # polls come every POLL_S: the span falls short by up to one
    if span < need:
        why = f"collecting: {span:.0f} of {need:.0f} s of metrics" if len(df) else "warming up"
        return {**entry, "action": "wait", "why": why}
    profs = profiles(df)
    where = job.where
    held = read_state(env.target.rest, job_id, 1000.0 * (time.time() - window), job.checkpoints)
    problem = price(ops, JobProfile(profs, job.owners, where, cores, job.edges, entry["wan_bytes_per_s"], held.rates,
                                    held.in_acks, job.heartbeat_timeout_s), env.nodes, rates)
    # in λ's units (per unit source weight): with several sites, all sources' events over Σ weights
    offered = sum(p.observed_out_rate for p in profs if p.name.endswith(" gen")) / sum(problem.source_rates.values())
    problem = memory.apply(problem, offered)
    current = {o.uid: where[o.uid] for o in ops}
    target = offered * WAN_HEADROOM if opts.objective == "wan" else None
    try:
        best = plan(problem, "optimal", target)
    except EdgeplaceError:  # nothing sustains the offered rate: the fastest placement
        best = plan(problem, "optimal")
    cur_pred, best_pred = predict(problem, current), predict(problem, best)
    g = gain(opts.objective, cur_pred, best_pred, offered)
    d = decide(opts, state, time.monotonic(), key(current), key(best), g)
    return {**entry, "offered_rate": offered, "window_s": round(span, 1), "costs_at_rate": memory.rate,
            "current": {"placement": key(current), **cur_pred.to_json()},
            "best": {"placement": key(best), **best_pred.to_json()},
            "gain": None if math.isinf(d.gain) else round(d.gain, 4), "action": d.action, "why": d.why}


def _log(path: Path, entry: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(entry, allow_nan=False, default=str) + "\n")


def _line(entry: dict, dry_run: bool) -> str:
    links = ", ".join(f"{s} {m:g} Mbit/s" if m else f"{s} unshaped" for s, m in (entry.get("link_mbit") or {}).items())
    head = f"[{time.strftime('%H:%M:%S')}] {links or 'no WAN links'}"
    if "current" in entry:
        cur, best = entry["current"]["max_rate"], entry["best"]["max_rate"]
        head += (f", offered {entry['offered_rate']:,.0f}/s, λ* now {cur or float('inf'):,.0f} → best "
                 f"{best or float('inf'):,.0f}")
    act = entry["action"] + (" (dry run)" if dry_run and entry["action"] == "redeploy" else "")
    return f"{head}: {act}: {entry['why']}" + (f" → job {entry['redeployed_to']}" if "redeployed_to" in entry else "")

