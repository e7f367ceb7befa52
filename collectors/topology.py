"""A running job's topology from `/jobs/<id>/plan` + `/jobs/<id>`: a networkx DiGraph of job vertices."""
from __future__ import annotations

import networkx as nx

from collectors.rest import FlinkRest


def job_graph(rest: FlinkRest, job_id: str) -> nx.DiGraph:
    """Nodes: vertex id with name, parallelism, slot_sharing_group, taskmanagers (one per subtask).
    Edges: input → vertex with ship_strategy (FORWARD / HASH / REBALANCE …)."""
    job = rest.job(job_id)
    plan = rest.get(f"/jobs/{job_id}/plan")["plan"]
    g = nx.DiGraph(job=job_id, name=job.get("name"))
    for v in job["vertices"]:
        detail = rest.get(f"/jobs/{job_id}/vertices/{v['id']}")
        g.add_node(v["id"], name=v["name"], parallelism=v["parallelism"],
                   slot_sharing_group=v.get("slotSharingGroupId"),
                   taskmanagers=[s.get("taskmanager-id") for s in sorted(detail["subtasks"], key=lambda s: s["subtask"])])
    for n in plan["nodes"]:
        for i in n.get("inputs", []):
            g.add_edge(i["id"], n["id"], ship_strategy=i.get("ship_strategy"))
    return g


def sources(g: nx.DiGraph) -> list[str]:
    return [v for v in g if g.in_degree(v) == 0]
