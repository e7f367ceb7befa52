"""Samples on disk: a Parquet table plus a JSON sidecar with how they were taken."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from collectors.sampler import SampleRun
from common.errors import EdgeplaceError


def save_samples(run: SampleRun, path: str | Path, meta: dict) -> int:
    df = run.frame()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    Path(str(path) + ".json").write_text(json.dumps(
        {**meta, "gaps": run.gaps, "stopped_because": run.stopped_because, "rows": len(df)}, indent=2))
    return len(df)


def load_samples(path: str | Path) -> tuple[pd.DataFrame, dict]:
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise EdgeplaceError(f"cannot read samples {path}: {exc}") from exc
    side = Path(str(path) + ".json")
    return df, (json.loads(side.read_text()) if side.exists() else {})
