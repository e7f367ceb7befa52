"""How a job that an experiment deployed ends: stopped with a savepoint when its block is done or fails, cancelled
at once on Ctrl-C or SIGTERM (its state is not wanted, and a savepoint's barrier waits behind every record
queued for a thin link). Checked against a REST stand-in that records what it was asked."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments import spine
from placement.realize import Deployed, Realizer, Target


class Rest:
    """Answers what `flink.cancel` asks: a cancel request, then the job's state."""

    def __init__(self):
        self.asked: list[tuple] = []

    def patch(self, path, **params):
        self.asked.append(("patch", path, params))

    def post(self, path, body=None):
        self.asked.append(("post", path, body))
        raise AssertionError("an interrupted job is not stopped with a savepoint")

    def job(self, job_id):
        self.asked.append(("job", job_id))
        return {"state": "CANCELED"}


def test_an_interrupted_end_cancels_and_leaves_the_repair_to_the_next_deployment(tmp_path):
    rest, tended, said = Rest(), [], []
    realizer = Realizer(Target(rest, tmp_path, tend=tended.append), said.append)
    realizer.end("j1", tmp_path / "scratch", interrupted=True)
    assert rest.asked[0] == ("patch", "/jobs/j1", {"mode": "cancel"})
    assert rest.asked[1:] == [("job", "j1")]  # waited until it had ended
    assert tended == [] and said == ["interrupted: cancelling job j1"]
    assert not (tmp_path / "scratch").exists()


class Ends:
    """A Realizer stand-in for `spine.running`: deploys job j1 and records how it was ended."""
    ended: list[tuple] = []

    def __init__(self, target, say):
        pass

    def deploy(self, query, args, placement):
        return Deployed("j1", {})

    def end(self, job_id, scratch, interrupted=False):
        Ends.ended.append((job_id, interrupted))


@pytest.mark.parametrize("raised, interrupted", [(None, False), (RuntimeError("cell failed"), False),
                                                 (KeyboardInterrupt(), True)])
def test_running_ends_its_job_gently_unless_interrupted(monkeypatch, raised, interrupted):
    monkeypatch.setattr(spine, "Realizer", Ends)
    Ends.ended = []
    env = SimpleNamespace(target=None)
    with pytest.raises(type(raised)) if raised else nullcontext():
        with spine.running(env, "q", [], None, Path("scratch")) as d:
            d.job_id = "j2"  # the block redeployed: the job running now is the one ended
            if raised:
                raise raised
    assert Ends.ended == [("j2", interrupted)]

