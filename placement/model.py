"""Placement: logical operator uid → TaskManager id; the versioned placement JSON that planner,
`deploy` and `where` share.

    {"version": 1,
     "assignments": {"<operator uid>": "<TaskManager id>", ...},
     "resources":   {"<TaskManager id>": "<external resource name>", ...},   # optional
     "meta":        {...}}                                                    # optional, free-form

With `"meta": {"partial": true}` operators left out are not pinned: Flink's scheduler places them.

`resources` defaults to the TaskManager id without non-alphanumerics ("edge-1" → "edge1"), the
convention of the local testbed and the Ansible roles."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import EdgeplaceError
from common.files import write_atomic

VERSION = 1


def default_resource(tm_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", tm_id)


@dataclass(frozen=True)
class Placement:
    assignments: dict[str, str]
    resources: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """Operators missing from a partial placement are left to Flink's own scheduler."""
        return bool(self.meta.get("partial"))

    def resource_of(self, tm_id: str) -> str:
        return self.resources.get(tm_id) or default_resource(tm_id)

    def pins(self) -> dict[str, dict[str, str]]:
        """What a job needs to pin its operators (its --pins file): uid → TaskManager and its resource."""
        return {uid: {"taskmanager": tm, "resource": self.resource_of(tm)} for uid, tm in self.assignments.items()}

    def to_json(self) -> dict:
        out = {"version": VERSION, "assignments": dict(self.assignments)}
        if self.resources:
            out["resources"] = dict(self.resources)
        if self.meta:
            out["meta"] = self.meta
        return out

    def write(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", "placement")

    @classmethod
    def from_json(cls, data: object, source: str = "placement") -> "Placement":
        if not isinstance(data, dict):
            raise EdgeplaceError(f"{source}: a placement is a JSON object")
        if data.get("version") != VERSION:
            raise EdgeplaceError(f"{source}: unsupported placement version {data.get('version')!r} (expected {VERSION})")
        asg = data.get("assignments")
        if not isinstance(asg, dict) or not asg or not all(
                isinstance(k, str) and isinstance(v, str) and k and v for k, v in asg.items()):
            raise EdgeplaceError(f"{source}: 'assignments' must map operator uids to TaskManager ids")
        res = data.get("resources", {})
        if not isinstance(res, dict):
            raise EdgeplaceError(f"{source}: 'resources' must map TaskManager ids to resource names")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise EdgeplaceError(f"{source}: 'meta' must be a JSON object")
        unknown = sorted(set(data) - {"version", "assignments", "resources", "meta"})
        if unknown:
            raise EdgeplaceError(f"{source}: unknown field(s) {', '.join(unknown)}")
        return cls(dict(asg), dict(res), dict(meta))

    @classmethod
    def read(cls, path: str | Path) -> "Placement":
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise EdgeplaceError(f"cannot read placement file {path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EdgeplaceError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_json(data, str(path))
