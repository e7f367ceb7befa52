"""Which Flink job vertex belongs to which logical operator of a job, and where each operator runs now."""
from __future__ import annotations

from collectors.rest import FlinkRest
from queries.topology import KEY_HELPER, OpSpec, all_tasks


def vertex_owners(rest: FlinkRest, job_id: str, ops: list[OpSpec] | None) -> dict[str, str]:
    """Job vertex id → logical operator uid (or the vertex name when unknown). PyFlink's key-by helper
    vertex belongs to the operator that feeds it, or to the one it feeds when it reads a union of several
    (the jobs pin it so: `JobContext.keyed`)."""
    name_to_uid = {t.task_name: t.uid for t in all_tasks(ops) if t.task_name != KEY_HELPER} if ops else {}
    vertices = rest.job(job_id)["vertices"]
    inputs = {n["id"]: [i["id"] for i in n.get("inputs", [])] for n in rest.get(f"/jobs/{job_id}/plan")["plan"]["nodes"]}
    names = {v["id"]: v["name"] for v in vertices}

    def owner(vid: str) -> str:
        name = names[vid]
        if name == KEY_HELPER and len(inputs.get(vid, [])) == 1:
            return owner(inputs[vid][0])
        if name == KEY_HELPER:
            return owner(next(v for v, ins in inputs.items() if vid in ins))
        return name_to_uid.get(name, name)

    return {vid: owner(vid) for vid in names}


def actual(rest: FlinkRest, job_id: str, ops: list[OpSpec] | None = None, ran: bool = False) -> dict[str, set[str]]:
    """Where each operator's subtasks run now: uid (or vertex name) → set of TaskManager ids ('' = none)."""
    out: dict[str, set[str]] = {}
    for vid, uid in vertex_owners(rest, job_id, ops).items():
        detail = rest.get(f"/jobs/{job_id}/vertices/{vid}")
        tms = {s.get("taskmanager-id", "") if ran or s.get("status") not in ("CREATED", "SCHEDULED") else ""
               for s in detail["subtasks"]}
        out.setdefault(uid, set()).update(tms)
    return out
