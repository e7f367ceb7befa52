"""Checkpointed state per vertex from Flink's checkpoint statistics, replayed from what a real Flink 2.3
answered for QA running edge-max on the testbed (tests/recorded/record_checkpoints.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.checkpoints import KEPT, RECENT, rates_from, state_rates
from collectors.rest import FlinkRestError

RECORDED = json.loads((Path(__file__).parent / "recorded" / "checkpoints-qa-edge-max.json").read_text())
JOB = RECORDED["job"]
ANSWERS = RECORDED["answers"]


class Replay:
    """FlinkRest's `get` answering from the recording; a path it does not hold fails as Flink would."""

    def __init__(self, answers):
        self.answers, self.reads = answers, []

    def get(self, path, **params):
        self.reads.append(path)
        if path not in self.answers:
            raise FlinkRestError(f"GET {path}: 404")
        return self.answers[path]


def _names():
    return {v["id"]: v["name"] for v in ANSWERS[f"/jobs/{JOB}"]["vertices"]}


def test_state_per_vertex_adds_up_to_flinks_own_checkpoint_sizes():
    overview = ANSWERS[f"/jobs/{JOB}/checkpoints"]
    interval_s = ANSWERS[f"/jobs/{JOB}/checkpoints/config"]["interval"] / 1000
    rest = Replay(ANSWERS)
    rates = state_rates(rest, JOB)
    done = sorted((c for c in overview["history"] if c["status"] == "COMPLETED"), key=lambda c: c["id"])[-RECENT:]
    assert len(done) == RECENT and len(rest.reads) == 2 + RECENT  # config, overview, one read per checkpoint
    # Flink's total per checkpoint (the overview's own sum over vertices) matches the per-vertex rates
    total = sum(c["checkpointed_size"] for c in done) / len(done)
    assert sum(rates.values()) * interval_s == pytest.approx(total)
    names = _names()
    holding = {names[v] for v, r in rates.items() if r > 0}
    assert {"RFI Flagger", "QA Metrics"} <= holding  # the keyed operators
    assert not holding & {"QA Sink", "Visibilities edge-1 gen", "_stream_key_by_map_operator"}
    assert 1_000 < max(rates.values()) < 20_000  # 38 kB per 10-s checkpoint: ≈ 4 kB/s


def test_only_checkpoints_of_the_profiled_window_count():
    overview = ANSWERS[f"/jobs/{JOB}/checkpoints"]
    last = max((c for c in overview["history"] if c["status"] == "COMPLETED"), key=lambda c: c["id"])
    rest = Replay(ANSWERS)
    rates = state_rates(rest, JOB, since_ms=last["trigger_timestamp"])
    assert rest.reads[-1] == f"/jobs/{JOB}/checkpoints/details/{last['id']}" and len(rest.reads) == 3
    interval_s = ANSWERS[f"/jobs/{JOB}/checkpoints/config"]["interval"] / 1000
    assert sum(rates.values()) * interval_s == pytest.approx(last["checkpointed_size"])
    # a window that no checkpoint completed in yet: the latest completed one stands for it
    assert state_rates(Replay(ANSWERS), JOB, since_ms=last["trigger_timestamp"] + 1) == rates


def test_a_job_that_does_not_checkpoint_or_a_flink_that_does_not_answer_prices_no_state():
    assert state_rates(Replay({}), JOB) == {}
    off = {**ANSWERS[f"/jobs/{JOB}/checkpoints/config"], "interval": 0}
    assert rates_from(off, ANSWERS[f"/jobs/{JOB}/checkpoints"], lambda cid: ANSWERS[
        f"/jobs/{JOB}/checkpoints/details/{cid}"]) == {}
    none_yet = {**ANSWERS[f"/jobs/{JOB}/checkpoints"], "history": []}
    assert rates_from(ANSWERS[f"/jobs/{JOB}/checkpoints/config"], none_yet, lambda cid: {}) == {}


def test_checkpoints_that_come_late_spread_their_state_over_the_time_they_took():
    """Flink triggers the next checkpoint only when the last one is done: 100 kB every 25 s is 4 kB/s,
    whatever the configured 10 s say."""
    history = [{"id": i, "status": "COMPLETED", "trigger_timestamp": 1_000_000 + 25_000 * i} for i in range(1, 5)]
    sizes = {i: {"tasks": {"v1": {"checkpointed_size": 100_000}, "v2": {"checkpointed_size": 0}}} for i in range(1, 5)}
    rates = rates_from({"interval": 10_000}, {"history": history}, sizes.__getitem__, since_ms=1_040_000)
    assert rates == pytest.approx({"v1": 4_000.0, "v2": 0.0})
    # the oldest one known has no predecessor: the configured interval stands for it
    assert rates_from({"interval": 10_000}, {"history": history[:1]}, sizes.__getitem__) == \
        pytest.approx({"v1": 10_000.0, "v2": 0.0})


def test_a_caller_that_keeps_what_it_read_reads_each_checkpoint_once():
    """`adapt` asks every round: the details of a completed checkpoint never change, so a second call reads
    only the config and the overview, and gives the same rates; what is kept stays bounded."""
    known: dict[int, dict] = {}
    rest = Replay(ANSWERS)
    first = state_rates(rest, JOB, known=known)
    assert len(rest.reads) == 2 + RECENT and len(known) == RECENT
    again = state_rates(rest, JOB, known=known)
    assert again == first and len(rest.reads) == 2 + RECENT + 2
    # many more checkpoints than it keeps: only the newest KEPT stay
    history = [{"id": i, "status": "COMPLETED", "trigger_timestamp": 1_000 * i} for i in range(1, 60)]
    details = {i: {"tasks": {"v": {"checkpointed_size": 10}}} for i in range(1, 60)}
    answers = {"/jobs/j/checkpoints/config": {"interval": 1_000}, "/jobs/j/checkpoints": {"history": history},
               **{f"/jobs/j/checkpoints/details/{i}": d for i, d in details.items()}}
    kept: dict[int, dict] = {i: details[i] for i in range(1, 40)}
    assert state_rates(Replay(answers), "j", known=kept) == pytest.approx({"v": 10.0})
    read = list(range(60 - RECENT, 60))  # the six it used; the rest of what it keeps are the newest it had
    assert sorted(kept) == sorted(set(range(1, 40)) | set(read))[-KEPT:] and len(kept) == KEPT
