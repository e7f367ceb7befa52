"""Checkpointed state per vertex from Flink's checkpoint statistics, replayed from what a real Flink 2.3
answered for QA running edge-max on the testbed (tests/recorded/record_checkpoints.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.checkpoints import KEPT, RECENT, grew, growth_note, read_state, reading_from, recent_size
from collectors.rest import FlinkRestError

RECORDED = json.loads((Path(__file__).parent / "recorded" / "checkpoints-qa-edge-max.json").read_text())
JOB = RECORDED["job"]
ANSWERS = RECORDED["answers"]


class Replay:
    """FlinkRest's `get` answering from the recording; a path it does not hold fails as Flink would."""

    def __init__(self, answers):
        self.answers, self.reads = answers, []

    def job(self, job_id):
        return self.get(f"/jobs/{job_id}")

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
    rates = read_state(rest, JOB).rates
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
    rates = read_state(rest, JOB, since_ms=last["trigger_timestamp"]).rates
    assert rest.reads[-1] == f"/jobs/{JOB}/checkpoints/details/{last['id']}" and len(rest.reads) == 3
    interval_s = ANSWERS[f"/jobs/{JOB}/checkpoints/config"]["interval"] / 1000
    assert sum(rates.values()) * interval_s == pytest.approx(last["checkpointed_size"])
    # a window that no checkpoint completed in yet: the latest completed one stands for it
    assert read_state(Replay(ANSWERS), JOB, since_ms=last["trigger_timestamp"] + 1).rates == rates


def test_a_job_that_does_not_checkpoint_or_a_flink_that_does_not_answer_prices_no_state():
    assert read_state(Replay({}), JOB).rates == {} and read_state(Replay({}), JOB).in_acks == {}
    off = {**ANSWERS[f"/jobs/{JOB}/checkpoints/config"], "interval": 0}
    assert reading_from(off, ANSWERS[f"/jobs/{JOB}/checkpoints"], lambda cid: ANSWERS[
        f"/jobs/{JOB}/checkpoints/details/{cid}"]).rates == {}
    none_yet = {**ANSWERS[f"/jobs/{JOB}/checkpoints"], "history": []}
    assert reading_from(ANSWERS[f"/jobs/{JOB}/checkpoints/config"], none_yet, lambda cid: {}).rates == {}


def test_checkpoints_that_come_late_spread_their_state_over_the_time_they_took():
    """Flink triggers the next checkpoint only when the last one is done: 100 kB every 25 s is 4 kB/s,
    whatever the configured 10 s say."""
    history = [{"id": i, "status": "COMPLETED", "trigger_timestamp": 1_000_000 + 25_000 * i} for i in range(1, 5)]
    sizes = {i: {"tasks": {"v1": {"checkpointed_size": 100_000}, "v2": {"checkpointed_size": 0}}} for i in range(1, 5)}
    rates = reading_from({"interval": 10_000}, {"history": history}, sizes.__getitem__, since_ms=1_040_000).rates
    assert rates == pytest.approx({"v1": 4_000.0, "v2": 0.0})
    # the oldest one known has no predecessor: the configured interval stands for it
    assert reading_from({"interval": 10_000}, {"history": history[:1]}, sizes.__getitem__).rates == \
        pytest.approx({"v1": 10_000.0, "v2": 0.0})


def test_a_caller_that_keeps_what_it_read_reads_each_checkpoint_once():
    """`adapt` asks every round: the details of a completed checkpoint never change, so a second call reads
    only the config and the overview, and gives the same rates; what is kept stays bounded."""
    known: dict[int, dict] = {}
    rest = Replay(ANSWERS)
    first = read_state(rest, JOB, known=known)
    assert len(rest.reads) == 2 + RECENT and len(known) == RECENT
    again = read_state(rest, JOB, known=known)
    assert again == first and len(rest.reads) == 2 + RECENT + 2
    # many more checkpoints than it keeps: only the newest KEPT stay
    history = [{"id": i, "status": "COMPLETED", "trigger_timestamp": 1_000 * i} for i in range(1, 60)]
    details = {i: {"tasks": {"v": {"checkpointed_size": 10}}} for i in range(1, 60)}
    answers = {"/jobs/j/checkpoints/config": {"interval": 1_000}, "/jobs/j/checkpoints": {"history": history},
               **{f"/jobs/j/checkpoints/details/{i}": d for i, d in details.items()}}
    kept: dict[int, dict] = {i: details[i] for i in range(1, 40)}
    assert read_state(Replay(answers), "j", known=kept).rates == pytest.approx({"v": 10.0})
    read = list(range(60 - RECENT, 60))  # the six it used; the rest of what it keeps are the newest it had
    assert sorted(kept) == sorted(set(range(1, 40)) | set(read))[-KEPT:] and len(kept) == KEPT


def test_the_state_in_the_acknowledgements_is_each_vertexs_largest_recent_checkpoint():
    """With the JobManager's checkpoint storage each subtask's state rides in its acknowledgement: one
    checkpoint's worth of it per vertex, the largest of the recent ones; with a storage of its own only
    handles do, and nothing is priced in the acknowledgements (the rates stay)."""
    overview = ANSWERS[f"/jobs/{JOB}/checkpoints"]
    done = sorted((c["id"] for c in overview["history"] if c["status"] == "COMPLETED"))[-RECENT:]
    reading = read_state(Replay(ANSWERS), JOB)
    tasks = [ANSWERS[f"/jobs/{JOB}/checkpoints/details/{cid}"]["tasks"] for cid in done]
    assert reading.in_acks == {v: max(float(t[v]["checkpointed_size"]) for t in tasks) for v in tasks[0]}
    assert max(reading.in_acks.values()) > 0 and ANSWERS[f"/jobs/{JOB}/checkpoints/config"]["checkpoint_storage"] \
        == "JobManagerCheckpointStorage"
    config = f"/jobs/{JOB}/checkpoints/config"
    on_files = {**ANSWERS, config: {**ANSWERS[config], "checkpoint_storage": "FileSystemCheckpointStorage"}}
    elsewhere = read_state(Replay(on_files), JOB)
    assert elsewhere.in_acks == {} and elsewhere.rates == reading.rates


Q5 = json.loads((Path(__file__).parent / "recorded" / "checkpoints-q5-cloud-only.json").read_text())


def _history(recorded) -> list[dict]:
    return sorted(recorded["answers"][f"/jobs/{recorded['job']}/checkpoints"]["history"], key=lambda c: c["id"])


def test_the_recent_size_is_the_largest_completed_checkpoint_not_one_in_progress():
    """q5 recorded with its newest checkpoint still in progress and larger than any completed one."""
    history = _history(Q5)
    completed = [c["checkpointed_size"] for c in history if c["status"] == "COMPLETED"]
    in_progress = [c["checkpointed_size"] for c in history if c["status"] != "COMPLETED"]
    assert in_progress and max(in_progress) > max(completed)  # the recording shows the case
    size = recent_size(Replay(Q5["answers"]), Q5["job"])
    assert completed[-1] <= size < max(in_progress) and size in completed[-RECENT:]
    assert size != completed[-1]  # the largest of the minute, not the newest (the state fell back since)
    assert recent_size(Replay({}), JOB) != recent_size(Replay({}), JOB)  # NaN: Flink did not answer


@pytest.mark.parametrize("recorded", [RECORDED, Q5], ids=["qa-edge-max", "q5-cloud-only"])
def test_state_that_rises_and_falls_with_its_windows_is_not_growth(recorded):
    """Every 20-s measurement the recordings hold (the minute before it against the minute before its end):
    state that held still, though its checkpoints swing from one to the next, is never called growing."""
    sizes = [float(c["checkpointed_size"]) for c in _history(recorded) if c["status"] == "COMPLETED"]
    minutes = [max(sizes[i - RECENT:i]) for i in range(RECENT, len(sizes) + 1)]
    pairs = list(zip(minutes, minutes[2:]))
    assert pairs and all(grew(a, b) == "" and growth_note(a, b) == "" for a, b in pairs)


def test_the_newest_checkpoint_alone_would_see_growth_in_held_still_state():
    """Why a minute's largest: QA at the edge swings 59–94 kB, and the newest checkpoint at the start of a
    20-s window against the newest at its end would have called that growing."""
    sizes = [float(c["checkpointed_size"]) for c in _history(RECORDED) if c["status"] == "COMPLETED"]
    assert any(grew(a, b) for a, b in zip(sizes, sizes[2:]))


def test_state_growing_while_measured_is_noted():
    """q5's count at the edge at 0.15 Mbit/s (docs/validation/checkpoint-limit): 43 → 471 kB in one window."""
    assert grew(43_000, 471_000) == "43 → 471 kB"
    assert growth_note(43_000, 471_000).startswith("checkpointed state grew 43 → 471 kB while measured")
    assert grew(265, 10_000) == ""  # a source's offsets growing is not a state worth a note
    assert grew(float("nan"), 471_000) == grew(None, None) == ""  # not read at both ends
