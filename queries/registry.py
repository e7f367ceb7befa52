"""The jobs edgeplace knows: name → module with DESCRIPTION, topology(opts) and build(opts)."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from common.errors import EdgeplaceError

QUERIES = {
    "counts": "queries.counts.job",
    "calibrate": "queries.calibrate.job",
    "nexmark": "queries.nexmark.job",
    "qa": "queries.qa.job",
    "imaging": "queries.imaging.job",
}


def load(name: str) -> ModuleType:
    if name not in QUERIES:
        raise EdgeplaceError(f"unknown query {name!r}; known: {', '.join(sorted(QUERIES))}")
    return importlib.import_module(QUERIES[name])


def script(name: str) -> Path:
    mod = load(name)
    return Path(mod.__file__)
