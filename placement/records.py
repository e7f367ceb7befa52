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
    prune(path.parent, KEEP_RECORDS)


def prune(folder: Path, keep: int) -> None:
    """Keep the `keep` newest entries of `folder` (files or folders), remove the others."""
    import shutil
    if not folder.is_dir():
        return
    entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


KEEP_RECORDS = 500  # deployment records: enough for long experiments, bounded


def load_record(home: Path, job_id: str) -> dict | None:
    path = record_path(home, job_id)
    return json.loads(path.read_text()) if path.exists() else None


def placement_of(where: dict[str, set[str]]) -> Placement:
    return Placement({u: sorted(t)[0] for u, t in where.items() if len(t) == 1 and "" not in t})
