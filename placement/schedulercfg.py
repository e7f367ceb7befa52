"""`schedulercfg`: the interchange format of the patched Flink 1.14/1.16 schedulers.

One line per subtask: `<task name> (<i>/<N>); <host>`, i 1-based, separator exactly "; ", task name as
Flink's getTaskNameWithSubtaskIndex() prints it. Vanilla Flink places whole operators, so a file whose
subtasks of one operator name different hosts is rejected, never approximated. PyFlink's key-by helpers
all print as `_stream_key_by_map_operator`: emitted with the host of the operator that runs them, and on
parsing only checked (they cannot say whose they are, and they follow their owner anyway)."""
from __future__ import annotations

import re

from common.errors import EdgeplaceError
from placement.model import Placement
from queries.topology import KEY_HELPER, Task

LINE = re.compile(r"^(?P<task>.+) \((?P<i>\d+)/(?P<n>\d+)\); (?P<host>\S+)$")


def emit(placement: Placement, tasks: list[Task], hosts: dict[str, str]) -> str:
    """schedulercfg text for `placement`; `hosts` maps TaskManager id → host address."""
    lines = []
    for t in tasks:
        tm = placement.assignments.get(t.uid)
        if tm is None:
            raise EdgeplaceError(f"operator {t.uid!r} has no TaskManager in the placement")
        if tm not in hosts:
            raise EdgeplaceError(f"TaskManager {tm!r} (of operator {t.uid!r}) has no known host")
        lines += [f"{t.task_name} ({i}/{t.parallelism}); {hosts[tm]}" for i in range(1, t.parallelism + 1)]
    return "\n".join(lines) + "\n"


def parse(text: str, tasks: list[Task], hosts: dict[str, str], source: str = "schedulercfg") -> Placement:
    """Placement from schedulercfg text; every subtask of every task must be listed, on one host each."""
    by_name = {t.task_name: t for t in tasks if t.task_name != KEY_HELPER}
    tm_of_host: dict[str, str] = {}
    for tm, host in hosts.items():
        if host in tm_of_host:
            raise EdgeplaceError(f"{source}: TaskManagers {tm_of_host[host]} and {tm} share host {host}; "
                                 "schedulercfg cannot tell them apart")
        tm_of_host[host] = tm
    seen: dict[str, dict[int, str]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise EdgeplaceError(f"{source}:{lineno}: malformed line {raw!r} "
                                 "(expected '<task name> (<i>/<N>); <host>')")
        if m["task"] == KEY_HELPER:  # PyFlink's key-by helpers (one name for all) run with their owners
            if m["host"] not in tm_of_host:
                raise EdgeplaceError(f"{source}:{lineno}: host {m['host']} is not a TaskManager of this cluster")
            continue
        task = by_name.get(m["task"])
        if task is None:
            raise EdgeplaceError(f"{source}:{lineno}: unknown task {m['task']!r}")
        i, n = int(m["i"]), int(m["n"])
        if n != task.parallelism or not 1 <= i <= n:
            raise EdgeplaceError(f"{source}:{lineno}: {m['task']} ({i}/{n}) does not match its parallelism "
                                 f"{task.parallelism}")
        if m["host"] not in tm_of_host:
            raise EdgeplaceError(f"{source}:{lineno}: host {m['host']} is not a TaskManager of this cluster")
        subtasks = seen.setdefault(task.task_name, {})
        if i in subtasks:
            raise EdgeplaceError(f"{source}:{lineno}: {m['task']} ({i}/{n}) is listed twice")
        subtasks[i] = tm_of_host[m["host"]]
    assignments: dict[str, str] = {}
    for t in by_name.values():
        subtasks = seen.get(t.task_name, {})
        missing = sorted(set(range(1, t.parallelism + 1)) - set(subtasks))
        if missing:
            raise EdgeplaceError(f"{source}: subtasks {missing} of {t.task_name!r} are not placed")
        tms = set(subtasks.values())
        if len(tms) > 1:
            raise EdgeplaceError(f"{source}: subtasks of {t.task_name!r} name different TaskManagers "
                                 f"({', '.join(sorted(tms))}); vanilla Flink places all subtasks of an "
                                 "operator on one TaskManager, so this is not realisable")
        tm = tms.pop()
        if assignments.setdefault(t.uid, tm) != tm:
            raise EdgeplaceError(f"{source}: parts of operator {t.uid!r} name different TaskManagers "
                                 f"({assignments[t.uid]}, {tm}); they are placed together")
    return Placement(assignments)
