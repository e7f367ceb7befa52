"""Where edgeplace keeps its state: testbed records, deployment records, placements, savepoints."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """$EDGEPLACE_HOME, default ~/.local/state/edgeplace."""
    return Path(os.environ.get("EDGEPLACE_HOME", Path.home() / ".local" / "state" / "edgeplace"))
