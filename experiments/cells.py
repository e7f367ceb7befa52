"""An experiment's results table (cells.parquet), read and checked, and what its cells measured. Light on
purpose (no matplotlib): a damaged or foreign file is one clear line before figures are drawn."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from common.errors import EdgeplaceError


NEEDED = ("query", "bandwidth_mbit", "policy", "repetition", "measured_rate", "wan_bytes_per_event",
          "predicted_rate", "latency_p50", "latency_p95", "latency_p99", "cpu_cores")


def load_cells(results: Path) -> pd.DataFrame:
    """The finished cells of an experiment, checked: one clear error for a missing, corrupt or foreign file."""
    f = Path(results) / "cells.parquet"
    if not f.exists():
        raise EdgeplaceError(f"{results} has no cells.parquet; run an experiment into it first")
    try:
        df = pd.read_parquet(f)
    except Exception as exc:  # pyarrow raises its own error types for a damaged file
        raise EdgeplaceError(f"{f} is not a readable results table ({type(exc).__name__}); "
                             "re-run the experiment into a fresh folder") from None
    missing = [c for c in NEEDED if c not in df.columns]
    if missing:
        raise EdgeplaceError(f"{f} lacks column(s) {', '.join(missing)}: not written by `edgeplace run`")
    if df.empty:
        raise EdgeplaceError(f"{f} holds no finished cell yet")
    return df


LATENCY = ["latency_p50", "latency_p95", "latency_p99"]


def has_latency(df: pd.DataFrame) -> bool:
    """Whether any cell measured latency (not where the sinks' files are off this machine)."""
    return bool(df[LATENCY].notna().any().any())


def cpu_rows(df: pd.DataFrame) -> list[dict]:
    """CPU per TaskManager of every cell, one row each (none: not measured, as on real clusters)."""
    return [{"query": r["query"], "policy": r["policy"], "bw": r["bandwidth_mbit"], "tm": tm, "cores": cores}
            for _, r in df.iterrows() for tm, cores in json.loads(r["cpu_cores"] or "{}").items()]
