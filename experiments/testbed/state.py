"""The testbed's state file: everything `up` creates is recorded here *before* it is created,
so `down` can remove exactly that, even after `up` was killed half-way."""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from collectors.rest import FlinkRest
from common.errors import EdgeplaceError
from common.paths import home


def state_file() -> Path:
    return home() / "testbed" / "state.json"


@dataclass
class State:
    """Mutable record of one testbed; `save()` after every change."""

    spec: dict
    mode: str                      # "isolated" (netns + tc + cgroups) or "loopback"
    owner_pid: int                 # the `up` process
    phase: str = "starting"        # starting | up | failed
    resources: list[dict] = field(default_factory=list)   # in creation order
    taskmanagers: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    ssh_hosts: list[dict] = field(default_factory=list)   # --ssh-hosts: edge sites reachable over SSH
    warnings: list[str] = field(default_factory=list)
    started_at: float = 0.0
    up_seconds: float | None = None
    workdir: str = ""

    def record(self, kind: str, **attrs) -> dict:
        item = {"kind": kind, **attrs}
        self.resources.append(item)
        self.save()
        return item

    def of_kind(self, kind: str) -> list[dict]:
        return [r for r in self.resources if r["kind"] == kind]

    def save(self) -> None:
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        os.replace(tmp, path)


def load() -> State | None:
    path = state_file()
    if not path.exists():
        return None
    try:
        return State(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise EdgeplaceError(f"testbed state file {path} is unreadable ({exc}); inspect it, then remove it") from exc


def forget() -> None:
    state_file().unlink(missing_ok=True)


@contextmanager
def locked() -> Iterator[None]:
    """One `up`/`down` at a time."""
    path = home() / "testbed" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EdgeplaceError("another `edgeplace testbed up/down` is running; wait for it to finish") from None
        yield


def require(phase: str = "up") -> State:
    state = load()
    if state is None:
        raise EdgeplaceError("no testbed is up; start one with `edgeplace testbed up`")
    if state.phase != phase:
        raise EdgeplaceError(f"the testbed is {state.phase}, not {phase}; run `edgeplace testbed down`")
    return state


def rest_of(state: State, **kwargs) -> FlinkRest:
    return FlinkRest(f"http://127.0.0.1:{state.spec['rest_port']}", **kwargs)


def client_conf_dir(state: State) -> Path:
    return Path(state.workdir) / "client"
