"""CPU seconds of a TaskManager's process tree on a host reached over SSH: its JVM and the Python workers it
started. The TaskManager's pid is the last live one in Flink's pid file, which both of Flink's start scripts
write (`taskmanager.sh start`, and `start-foreground` under systemd) into FLINK_PID_DIR."""
from __future__ import annotations

import shlex

UNREADABLE = "unreadable"

# Run on the host by its own Python (stdlib only): prints the tree's user + system CPU seconds, "none" when no
# live TaskManager is recorded, or UNREADABLE when the SSH user may not read the pid files. Counted as on the
# local testbed (experiments.measure.tree_cpu): the processes alive now, each its own utime + stime and those of
# its children that ended and were reaped (cutime + cstime), so a Python worker that ends takes nothing away.
_SCRIPT = r"""
import glob, os, sys
try:
    os.listdir(sys.argv[1])
except PermissionError:
    print("unreadable")
    sys.exit(0)
except OSError:
    pass
def alive_pid(d):
    files = sorted(glob.glob(os.path.join(d, "flink-*-taskexecutor.pid")), key=os.path.getmtime, reverse=True)
    for f in files:
        try:
            pids = open(f).read().split()
        except OSError:
            continue
        for p in reversed(pids):
            if p.isdigit() and os.path.exists("/proc/" + p):
                return int(p)
    return None
root = alive_pid(sys.argv[1])
if root is None:
    print("none")
    sys.exit(0)
children, ticks = {}, {}
for e in os.listdir("/proc"):
    if not e.isdigit():
        continue
    try:
        stat = open("/proc/" + e + "/stat").read()
    except OSError:
        continue
    f = stat[stat.rindex(")") + 2:].split()
    children.setdefault(int(f[1]), []).append(int(e))
    ticks[int(e)] = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
total, todo = 0, [root]
while todo:
    p = todo.pop()
    total += ticks.get(p, 0)
    todo.extend(children.get(p, []))
print(total / os.sysconf("SC_CLK_TCK"))
"""


def tree_cpu_command(pid_dir: str, python: str = "python3") -> str:
    """The shell command that prints the CPU seconds of the TaskManager recorded in `pid_dir`."""
    return f"{shlex.quote(python)} -c {shlex.quote(_SCRIPT)} {shlex.quote(pid_dir)}"


def parse_tree_cpu(text: str) -> float | None:
    """CPU seconds from the command's output; None when the host has no live TaskManager (UNREADABLE is
    the caller's to handle)."""
    word = text.strip()
    if word == "none":
        return None
    try:
        return float(word)
    except ValueError as exc:
        raise ValueError(f"expected CPU seconds or 'none', got {word[:80]!r}") from exc
