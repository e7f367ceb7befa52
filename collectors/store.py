"""Samples on disk: a Parquet table plus a JSON sidecar with how they were taken."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from collectors.sampler import COLUMNS, SampleRun
from common.errors import EdgeplaceError
from common.files import write_atomic


def save_samples(run: SampleRun, path: str | Path, meta: dict) -> int:
    """Write the samples (Parquet) and how they were taken (JSON sidecar), each atomically."""
    df = run.frame()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(path)
    except OSError as exc:
        raise EdgeplaceError(f"cannot write samples to {path}: {exc.strerror or exc}") from None
    write_atomic(f"{path}.json", json.dumps({**meta, "gaps": run.gaps, "stopped_because": run.stopped_because,
                                             "rows": len(df)}, indent=2), "samples sidecar")
    return len(df)


def load_samples(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Samples that `collect` wrote, checked: one clear error for a missing, corrupt or foreign file."""
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own error types for a damaged file
        raise EdgeplaceError(f"cannot read samples {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise EdgeplaceError(f"{path} lacks column(s) {', '.join(missing)}: not samples written by `edgeplace collect`")
    side = Path(str(path) + ".json")
    try:
        return df, (json.loads(side.read_text()) if side.exists() else {})
    except (OSError, ValueError) as exc:
        raise EdgeplaceError(f"cannot read {side}: {exc}") from None
