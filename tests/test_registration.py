"""When a cluster counts as whole: every TaskManager registered AND reporting its external resource.

A TaskManager lists in GET /taskmanagers a moment before it reports its resource, at start-up and again
when it registers anew after a heartbeat timeout (q5 at 0.15 Mbit/s: its checkpoint acknowledgements hold up
the edge's heartbeats). In acceptance-4 a deployment in that moment failed ("offers no external resource"),
and so did the profiling of every query after it, within a second, because healing counted the TaskManager
as registered. The answers replayed here are a real Flink 2.3's, recorded while a testbed started
(tests/recorded/record_registration.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.rest import FlinkRest, JobManagerUnreachable
from common.errors import EdgeplaceError
from experiments import environments
from experiments.environments import AnsibleCluster
from placement.checks import ready, ready_ids

ANSWERS = json.loads((Path(__file__).parent / "recorded" / "taskmanagers-registering.json").read_text())["answers"]
WHOLE = next(i for i, a in enumerate(ANSWERS) if {t["id"] for t in a} == {"cloud-1", "edge-1"} and all(map(ready, a)))


def test_the_recording_holds_a_taskmanager_listed_before_its_resource():
    listed_bare = [t["id"] for a in ANSWERS[:WHOLE] for t in a if not ready(t)]
    assert listed_bare, "no answer lists a TaskManager without its resource: record again"
    first = next(a for a in ANSWERS if any(not ready(t) for t in a))
    assert ready_ids(first) < {t["id"] for t in first}
    assert ready_ids(ANSWERS[WHOLE]) == {"cloud-1", "edge-1"}


class Replay(FlinkRest):
    """GET /taskmanagers answers the recorded answers in order, then the last one for ever; `down`: the
    JobManager does not answer."""

    def __init__(self, answers: list[list[dict]], down: bool = False):
        super().__init__("http://127.0.0.1:1")
        self.answers, self.down, self.calls = answers, down, 0

    def quick(self) -> "Replay":
        return self

    def taskmanagers(self) -> list[dict]:
        self.calls += 1
        if self.down:
            raise JobManagerUnreachable("connection refused")
        return self.answers[min(self.calls, len(self.answers)) - 1]


def _cluster(rest: Replay) -> AnsibleCluster:
    c = object.__new__(AnsibleCluster)
    c.rest, c.inventory = rest, "inv.yml"
    c.facts = {"nodes": [{"id": "cloud-1", "jobmanager": True}, {"id": "edge-1", "jobmanager": False}]}
    return c


def test_a_real_cluster_is_healed_only_once_every_taskmanager_shows_its_resource(monkeypatch):
    monkeypatch.setattr(environments.time, "sleep", lambda s: None)
    rest = Replay(ANSWERS)
    _cluster(rest).heal(lambda m: None)
    assert rest.calls == WHOLE + 1  # it asked until the first whole answer, not before, not after


@pytest.mark.parametrize("down, says", [(False, "edge-1: not registered with their resource after 0.3 s"),
                                        (True, "cloud-1, edge-1: the JobManager does not answer")])
def test_a_taskmanager_that_never_shows_its_resource_is_one_clear_error(monkeypatch, down, says):
    monkeypatch.setattr(environments, "READY_WAIT_S", 0.3)
    bare = next(a for a in ANSWERS if [t["id"] for t in a if not ready(t)] == ["edge-1"]) if not down else []
    with pytest.raises(EdgeplaceError, match=says) as err:
        _cluster(Replay([bare], down=down)).heal(lambda m: None)
    assert "edgeplace cluster start -i inv.yml" in str(err.value)
