"""The jobs edgeplace knows: name → module with DESCRIPTION, topology(opts) and build(opts)."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from common.errors import EdgeplaceError
from queries import options

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


def cycle_events(name: str, job_args: list[str]) -> int:
    """Events per source after which every event-time window of `name` run with `job_args` has closed at
    least once (0: a query without such windows, whose cost per event holds from one second to the next)."""
    fn = getattr(load(name), "cycle_events", None)
    if fn is None:
        return 0
    try:
        return int(fn(options.parse(job_args)))
    except ValueError as exc:  # options.OptionsError, or a query option that is not a number
        raise EdgeplaceError(f"{name}: bad job argument: {exc}") from None
