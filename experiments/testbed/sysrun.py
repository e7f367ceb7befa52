"""Run a system command; failures become EdgeplaceError carrying the command's own words."""
from __future__ import annotations

import subprocess

from common.errors import EdgeplaceError


def run(*cmd: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    """Run `cmd` (inside network namespace `ns` if given) and return the completed process."""
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise EdgeplaceError(f"`{' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def ok(*cmd: str, ns: str | None = None) -> bool:
    """True when the command succeeds; used for idempotent removal of things that may be gone."""
    return run(*cmd, check=False, ns=ns).returncode == 0
