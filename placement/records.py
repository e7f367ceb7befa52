"""Deployment records: which query, arguments and placement each job edgeplace submitted runs with (what
`where` and `redeploy` need to know about a job), kept under edgeplace's home."""
from __future__ import annotations

import json
from pathlib import Path

from placement.model import Placement


def record_path(home: Path, job_id: str) -> Path:
    return home / "deployments" / f"{job_id}.json"


def save_record(home: Path, job_id: str, query: str, args: list[str], placement: Placement | None) -> None:
    path = record_path(home, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"job": job_id, "query": query, "args": args,
                                "placement": placement.to_json() if placement else None}, indent=2))


def load_record(home: Path, job_id: str) -> dict | None:
    path = record_path(home, job_id)
    return json.loads(path.read_text()) if path.exists() else None


def placement_of(where: dict[str, set[str]]) -> Placement:
    return Placement({u: sorted(t)[0] for u, t in where.items() if len(t) == 1 and "" not in t})
