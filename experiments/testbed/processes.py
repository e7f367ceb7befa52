"""Processes the testbed starts, identified by PID + start time so a reused PID is never signalled."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcRef:
    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> "ProcRef":
        return cls(pid, psutil.Process(pid).create_time())

    def alive(self) -> "psutil.Process | None":
        """The live process if it is still the one we started, else None."""
        try:
            p = psutil.Process(self.pid)
            if abs(p.create_time() - self.create_time) < 0.05 and p.status() != psutil.STATUS_ZOMBIE:
                return p
        except psutil.Error:
            pass
        return None


def terminate(procs: list[psutil.Process], grace: float = 10.0) -> None:
    """SIGTERM the given processes, then SIGKILL whatever is left after `grace` seconds."""
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def with_descendants(p: psutil.Process) -> list[psutil.Process]:
    try:
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return [p]


def same_group(pgid: int) -> list[psutil.Process]:
    """Every live process in process group `pgid` (orphaned UDF workers keep their group)."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid:
                out.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            pass
    return out


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) for p in pids):
            return True
        time.sleep(0.1)
    return False
