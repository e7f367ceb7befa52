"""The checkpointed state each Flink vertex hands to the JobManager. With Flink's default JobManager
checkpoint storage the state travels inside the checkpoint acknowledgements, on the TaskManager's RPC
connection to the JobManager: for a stateful operator at the edge this is WAN traffic that grows with its
state, not with its subtasks, and one checkpoint's worth of it queues ahead of the TaskManager's heartbeats."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from collectors.rest import FlinkRest, FlinkRestError
from collectors.topology import job_graph

RECENT = 6  # checkpoints averaged (their details are one REST read each)
KEPT = 2 * RECENT  # checkpoint details a caller's `known` holds at most
IN_RPC = "JobManagerCheckpointStorage"  # the checkpoint storage whose state rides in the acknowledgements


@dataclass(frozen=True)
class StateReading:
    """Checkpointed state per vertex id: bytes/s, averaged over the recent checkpoints, and the bytes of the
    largest recent one where the state travels inside the acknowledgements ({} where it goes to a
    checkpoint storage of its own: then only handles do)."""
    rates: dict[str, float] = field(default_factory=dict)
    in_acks: dict[str, float] = field(default_factory=dict)


def read_state(rest: FlinkRest, job_id: str, since_ms: float = 0.0,
               known: dict[int, dict] | None = None) -> StateReading:
    """The job's checkpointed state over the recent completed checkpoints triggered after `since_ms`
    (epoch ms; the latest completed if none was). Empty when the job does not checkpoint or Flink's
    checkpoint statistics cannot be read: the caller then prices no state.

    `known` keeps the details of completed checkpoints (checkpoint id → Flink's answer; they never change)
    between calls on the same job, so that a caller that asks every few seconds reads each checkpoint
    once. Only the newest `KEPT` stay in it."""
    base = f"/jobs/{job_id}/checkpoints"
    known = {} if known is None else known

    def details(cid: int) -> dict:
        if cid not in known:
            known[cid] = rest.get(f"{base}/details/{cid}")
        return known[cid]

    try:
        return reading_from(rest.get(f"{base}/config"), rest.get(base), details, since_ms)
    except FlinkRestError:
        return StateReading()
    finally:
        for cid in sorted(known)[:-KEPT]:
            del known[cid]


def reading_from(config: dict, overview: dict, details: Callable[[int], dict], since_ms: float = 0.0) \
        -> StateReading:
    """`read_state` on Flink's answers: the checkpointing config, the checkpoint overview and a reader of
    one checkpoint's details."""
    interval_s = float(config.get("interval") or 0) / 1000.0
    if interval_s <= 0:
        return StateReading()
    history = sorted(overview.get("history", []), key=lambda c: c["id"])
    completed = _completed(history)
    recent = [c for c in completed if c.get("trigger_timestamp", 0) >= since_ms] or completed[-1:]
    recent = recent[-RECENT:]
    if not recent:
        return StateReading()
    totals: dict[str, float] = {}
    largest: dict[str, float] = {}
    for c in recent:
        for vertex, task in details(c["id"]).get("tasks", {}).items():
            size = float(task.get("checkpointed_size") or 0)
            totals[vertex] = totals.get(vertex, 0.0) + size
            largest[vertex] = max(largest.get(vertex, 0.0), size)
    period = _period_s(history, recent, interval_s)
    return StateReading({v: total / period for v, total in totals.items()},
                        largest if config.get("checkpoint_storage") == IN_RPC else {})


def _completed(history: list[dict]) -> list[dict]:
    """The completed checkpoints of Flink's history, in its order (savepoints aside)."""
    return [c for c in history if c.get("status") == "COMPLETED" and not c.get("is_savepoint")]


def _period_s(history: list[dict], recent: list[dict], interval_s: float) -> float:
    """The time the `recent` checkpoints stand for: from the trigger of the checkpoint before each (of any
    status; Flink triggers the next one late when one takes longer than the interval) to its own, or the
    configured interval where no earlier checkpoint is known. `history` is sorted by id."""
    wanted = {c["id"] for c in recent}
    total, last = 0.0, None
    for c in history:
        at = c.get("trigger_timestamp")
        if c["id"] in wanted:
            total += (at - last) / 1000.0 if at and last and at > last else interval_s
        last = at or last
    return total


GROWING_BY = 0.25  # a state grew when its largest recent checkpoint grew by more than this share …
GROWING_BYTES = 16_000  # … and by more bytes than this (sources' offsets and timers alone are a few hundred)


def recent_size(rest: FlinkRest, job_id: str, recent: int = RECENT) -> float:
    """Bytes of the largest of the job's `recent` newest completed checkpoints (savepoints aside); NaN when the
    job has none or Flink's statistics cannot be read. The largest of a minute's worth, not the newest alone:
    state held in windows rises and falls with them (QA at the edge, held still: 59–94 kB from one checkpoint
    to the next), while a state that grows raises the largest too."""
    try:
        history = rest.get(f"/jobs/{job_id}/checkpoints").get("history", [])
    except FlinkRestError:
        return float("nan")
    done = _completed(sorted(history, key=lambda c: c["id"]))[-recent:]
    return max((float(c.get("checkpointed_size") or 0) for c in done), default=float("nan"))


def grew(before: float, after: float) -> str:
    """'43 → 471 kB' when the checkpointed state grew from `before` to `after` bytes ('' when it held still or
    was not read at both ends)."""
    try:
        before, after = float(before), float(after)
    except (TypeError, ValueError):  # a cell from before the state was read: None
        return ""
    if not (before == before and after == after) or after - before <= max(GROWING_BY * before, GROWING_BYTES):
        return ""
    return f"{before / 1000:,.0f} → {after / 1000:,.0f} kB"


def growth_note(before: float, after: float) -> str:
    """A cell's note when its checkpointed state grew while it was measured: the job then ran in a transient,
    and a state that keeps growing may outgrow the link later."""
    g = grew(before, after)
    return f"checkpointed state grew {g} while measured: a transient, not a steady state" if g else ""


def acks_at(in_acks: dict[str, float], taskmanagers: dict[str, list[str]], site_of: dict[str, str],
            site: str) -> float:
    """Bytes of checkpoint acknowledgements that `site`'s TaskManagers send: each vertex's (`in_acks`, the
    largest recent checkpoint's) in the share of its subtasks running there (`taskmanagers`: vertex id → the
    TaskManager of each subtask; `site_of`: TaskManager id → site)."""
    total = 0.0
    for vertex, size in in_acks.items():
        tms = taskmanagers.get(vertex, [])
        if tms:
            total += size * sum(site_of.get(tm) == site for tm in tms) / len(tms)
    return total


def site_acks_reader(rest: FlinkRest, job_id: str, site_of: dict[str, str], site: str) -> Callable[[], float]:
    """A reader of the bytes `site` acknowledges in the largest of the job's recent checkpoints (`acks_at`;
    0 while there is none, or where the state does not travel in the acknowledgements). Where each subtask
    runs is read once: the job keeps its placement while it is read."""
    g = job_graph(rest, job_id)
    tms = {v: list(g.nodes[v]["taskmanagers"]) for v in g}
    known: dict[int, dict] = {}
    return lambda: acks_at(read_state(rest, job_id, known=known).in_acks, tms, site_of, site)
