"""Everything that can be known wrong about a placement before anything is submitted or stopped."""
from __future__ import annotations

import re
from dataclasses import dataclass

from collectors.rest import FlinkRest
from common.errors import EdgeplaceError
from placement.model import Placement
from queries.topology import OpSpec


@dataclass(frozen=True)
class TaskManagerInfo:
    id: str
    host: str
    slots: int
    resources: dict[str, float]


def ready(tm: dict) -> bool:
    """A TaskManager that REST lists can take pinned subtasks once it reports its external resource. That
    arrives a moment after it registers, and again after it registers anew (after a heartbeat timeout)."""
    return bool(tm.get("totalResource", {}).get("extendedResources"))


def ready_ids(taskmanagers: list[dict]) -> set[str]:
    """The ids of the TaskManagers (GET /taskmanagers) that are `ready`."""
    return {tm["id"] for tm in taskmanagers if ready(tm)}


def cluster_view(rest: FlinkRest) -> dict[str, TaskManagerInfo]:
    out = {}
    for tm in rest.taskmanagers():
        m = re.search(r"@([^:/]+):\d+", tm.get("path", ""))
        out[tm["id"]] = TaskManagerInfo(tm["id"], m.group(1) if m else "?", tm["slotsNumber"],
                                        tm.get("totalResource", {}).get("extendedResources", {}))
    return out


def check(placement: Placement, ops: list[OpSpec], cluster: dict[str, TaskManagerInfo]) -> None:
    """Everything that can be known wrong before submitting, each as one clear message."""
    uids = {op.uid for op in ops}
    unknown = sorted(set(placement.assignments) - uids)
    if unknown:
        raise EdgeplaceError(f"placement names unknown operator(s) {', '.join(unknown)}; "
                             f"the job has {', '.join(sorted(uids))}")
    missing = sorted(uids - set(placement.assignments))
    if missing and not placement.partial:
        raise EdgeplaceError(f"operator(s) {', '.join(missing)} are missing from the placement")
    used: dict[str, int] = {}
    for op in (o for o in ops if o.uid in placement.assignments):
        tm = placement.assignments[op.uid]
        if tm not in cluster:
            raise EdgeplaceError(f"operator {op.uid} is placed on TaskManager {tm!r}, which is not in the "
                                 f"cluster ({', '.join(sorted(cluster))})")
        res = placement.resource_of(tm)
        if res not in cluster[tm].resources:
            raise EdgeplaceError(f"TaskManager {tm} offers no external resource {res!r} "
                                 f"(it has {cluster[tm].resources or 'none'}); it cannot be pinned to")
        used[tm] = used.get(tm, 0) + op.parallelism
    for tm, n in sorted(used.items()):
        if n > cluster[tm].slots:
            names = [op.uid for op in ops if placement.assignments.get(op.uid) == tm]
            raise EdgeplaceError(f"TaskManager {tm} has {cluster[tm].slots} slots but the placement puts "
                                 f"{n} subtasks on it ({', '.join(names)})")
