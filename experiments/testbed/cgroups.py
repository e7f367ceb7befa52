"""CPU-quota groups on cgroup v1 (cpu controller) or v2 (cpu.max), whichever the machine mounts."""
from __future__ import annotations

import os
import time
from pathlib import Path

from common.errors import EdgeplaceError

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def version() -> int | None:
    """1 or 2 for the hierarchy that carries the cpu controller, None if neither is usable."""
    if (ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return 1
    if (ROOT / "cgroup.controllers").exists() and "cpu" in (ROOT / "cgroup.controllers").read_text().split():
        return 2
    return None


def group_path(name: str) -> Path:
    """Absolute directory of group `name` (e.g. 'edgeplace/0/edge-1')."""
    v = version()
    if v is None:
        raise EdgeplaceError("no cgroup cpu controller is mounted under /sys/fs/cgroup")
    return (ROOT / "cpu" / name) if v == 1 else (ROOT / name)


def create(name: str, cores: float | None) -> Path:
    """Create the group (and parents); limit it to `cores` CPUs, or leave it unlimited for None."""
    path = group_path(name)
    if version() == 2:
        _enable_cpu_controller_v2(path)
    path.mkdir(parents=True, exist_ok=True)
    set_quota(path, cores)
    return path


def _enable_cpu_controller_v2(path: Path) -> None:
    parent = ROOT
    for part in path.relative_to(ROOT).parts:
        ctl = parent / "cgroup.subtree_control"
        if "cpu" not in ctl.read_text().split():
            ctl.write_text("+cpu")
        parent = parent / part
        parent.mkdir(exist_ok=True)


def set_quota(path: Path, cores: float | None) -> None:
    if (path / "cpu.cfs_quota_us").exists():
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text("-1" if cores is None else str(int(cores * PERIOD_US)))
    else:
        (path / "cpu.max").write_text(("max" if cores is None else str(int(cores * PERIOD_US))) + f" {PERIOD_US}")


def quota_cores(path: Path) -> float | None:
    """The limit read back from the group's files (None = unlimited)."""
    if (path / "cpu.cfs_quota_us").exists():
        quota = int((path / "cpu.cfs_quota_us").read_text())
        period = int((path / "cpu.cfs_period_us").read_text())
        return None if quota < 0 else quota / period
    quota, period = (path / "cpu.max").read_text().split()
    return None if quota == "max" else int(quota) / int(period)


def pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def join(path: Path, pid: int) -> None:
    (path / "cgroup.procs").write_text(str(pid))


def remove(path: Path, timeout: float = 5.0) -> None:
    """rmdir the group (and empty parents up to the edgeplace root); it must have no processes."""
    if not path.exists():
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise EdgeplaceError(f"cannot remove cgroup {path}: {exc} (processes left: {pids(path)})") from exc
            time.sleep(0.1)
    parent = path.parent
    while parent.name and parent != ROOT and parent != ROOT / "cpu" and "edgeplace" in parent.parts:
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = parent.parent
