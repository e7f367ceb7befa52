"""The checkpointed state each Flink vertex hands to the JobManager, in bytes per second. With Flink's
default JobManager checkpoint storage the state travels inside the checkpoint acknowledgements, on the
TaskManager's connection to the JobManager: for a stateful operator at the edge this is WAN traffic that
grows with its state, not with its subtasks."""
from __future__ import annotations

from collections.abc import Callable

from collectors.rest import FlinkRest, FlinkRestError

RECENT = 6  # checkpoints averaged (their details are one REST read each)


def state_rates(rest: FlinkRest, job_id: str, since_ms: float = 0.0) -> dict[str, float]:
    """Vertex id → bytes/s of checkpointed state, averaged over the recent completed checkpoints triggered
    after `since_ms` (epoch ms; the latest completed if none was). {} when the job does not checkpoint or
    Flink's checkpoint statistics cannot be read: the caller then prices no state."""
    base = f"/jobs/{job_id}/checkpoints"
    try:
        return rates_from(rest.get(f"{base}/config"), rest.get(base), lambda cid: rest.get(f"{base}/details/{cid}"),
                          since_ms)
    except FlinkRestError:
        return {}


def rates_from(config: dict, overview: dict, details: Callable[[int], dict], since_ms: float = 0.0) \
        -> dict[str, float]:
    """`state_rates` on Flink's answers: the checkpointing config, the checkpoint overview and a reader of
    one checkpoint's details."""
    interval_s = float(config.get("interval") or 0) / 1000.0
    if interval_s <= 0:
        return {}
    completed = [c for c in overview.get("history", []) if c.get("status") == "COMPLETED"
                 and not c.get("is_savepoint")]
    recent = [c for c in completed if c.get("trigger_timestamp", 0) >= since_ms] or completed[:1]
    recent = sorted(recent, key=lambda c: c["id"])[-RECENT:]
    if not recent:
        return {}
    totals: dict[str, float] = {}
    for c in recent:
        for vertex, task in details(c["id"]).get("tasks", {}).items():
            totals[vertex] = totals.get(vertex, 0.0) + float(task.get("checkpointed_size") or 0)
    return {v: total / len(recent) / interval_s for v, total in totals.items()}
