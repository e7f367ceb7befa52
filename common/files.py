"""Writing files so that a reader never sees half of one, and a failure is one clear message."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from common.errors import EdgeplaceError


def write_atomic(path: str | Path, text: str, what: str = "file") -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
    except OSError as exc:
        raise EdgeplaceError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise EdgeplaceError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
