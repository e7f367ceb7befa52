"""Processes the testbed starts, identified by PID + start time so a reused PID is never signalled."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import psutil


def started(pid: int) -> float | None:
    """Seconds from boot to the start of `pid` (field 22 of /proc/<pid>/stat), None if it is gone. Fixed for the
    process's life, unlike its start time since the epoch: psutil adds the boot time, which moves whenever the
    wall clock is stepped (a VM resumed or synchronised), and a recorded process then no longer matches itself."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcRef:
    pid: int
    started: float  # seconds since boot

    @classmethod
    def of(cls, pid: int) -> "ProcRef":
        t = started(pid)
        if t is None:
            raise psutil.NoSuchProcess(pid)
        return cls(pid, t)

    @classmethod
    def recorded(cls, rec: dict) -> "ProcRef":
        """The process of a state record (from `record()`); a record from before `started` gives its start time
        since the epoch, taken back to boot-relative with today's boot time."""
        if "started" in rec:
            return cls(rec["pid"], rec["started"])
        return cls(rec["pid"], rec["create_time"] - psutil.boot_time())

    def record(self) -> dict:
        return {"pid": self.pid, "started": self.started}

    def alive(self) -> "psutil.Process | None":
        """The live process if it is still the one we started, else None."""
        t = started(self.pid)
        if t is None or abs(t - self.started) >= 0.05:
            return None
        try:
            p = psutil.Process(self.pid)
            if p.status() != psutil.STATUS_ZOMBIE:
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
