"""The counts job's sink files, read back: its rows, and the check that keyed state continued exactly."""
from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import pytest

from queries.counts import job as counts


def read_sink(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(out.glob("sink-*.jsonl")) for line in f.read_text().splitlines()]


def wait_rows(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(read_sink(out)) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"the sink never reached {n} rows")
        time.sleep(0.5)


def assert_exact(rows: list[dict], seed: int = 1) -> None:
    """Every event counted once (no seq lost or doubled) and each key's counts 1, 2, … n without a gap, n
    being the events of that key: the keyed state went on across whatever happened to the job."""
    seqs = sorted(r["seq"] for r in rows)
    assert seqs == list(range(len(seqs))), "events lost or doubled"
    per_key = collections.defaultdict(list)
    for r in rows:
        per_key[r["key"]].append(r["count"])
    for key, cs in per_key.items():
        assert sorted(cs) == list(range(1, len(cs) + 1)), f"the count of key {key} did not continue"
        assert len(cs) == sum(1 for s in seqs if counts.event(s, seed)[0] == key)
