"""The collector on answers a real Flink 2.3 gave (recorded with tests/recorded/record.py from a q2 job at
200 events/s, its filter and projection in the cloud): sampling, profiles and the vertex graph, no cluster."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.profiles import profiles
from collectors.rest import FlinkRest, FlinkRestError
from collectors.sampler import sample
from collectors.topology import job_graph
from common.errors import EdgeplaceError
from queries.nexmark import model as nx

RECORDING = Path(__file__).parent / "recorded" / "q2-cloud-only.json"
RATE = 200.0  # the job's --rate


class Replay(FlinkRest):
    """Answers each request with the next recorded answer to the same request (the last one again when
    the recording runs out)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        data = json.loads(RECORDING.read_text())
        self.job_id = data["job"]
        self.answers: dict[str, list] = {}
        for c in data["calls"]:
            self.answers.setdefault(self._key(c["method"], c["path"], c["params"]), []).append(c["answer"])
        self.seen: dict[str, int] = {}

    @staticmethod
    def _key(method, path, params) -> str:
        return json.dumps([method, path, params], sort_keys=True)

    def quick(self) -> "Replay":
        return self

    def request(self, method, path, **kwargs):
        key = self._key(method, path, kwargs.get("params"))
        if key not in self.answers:  # not recorded: as a Flink that does not answer it
            raise FlinkRestError(f"{method} {path}: not in the recording")
        got = self.answers[key]
        i = self.seen.get(key, 0)
        self.seen[key] = i + 1
        return got[min(i, len(got) - 1)]


class Clock:
    """Virtual time for the sampler: sleeping advances it at once."""

    def __init__(self):
        self.now = 1_000.0

    def monotonic(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, s):
        self.now += max(0.0, s)


@pytest.fixture
def replay(monkeypatch):
    import collectors.sampler
    monkeypatch.setattr(collectors.sampler, "time", Clock())
    return Replay("http://recorded")


def test_the_job_graph_of_a_real_job(replay):
    g = job_graph(replay, replay.job_id)
    names = {g.nodes[v]["name"] for v in g}
    assert {"Source: Nexmark edge-1", "Nexmark edge-1 gen", "Q2 Filter", "Q2 Project", "Nexmark q2 Sink",
            "Sink: Nexmark q2 Sink end"} == names
    assert all(g.nodes[v]["parallelism"] == 1 and g.nodes[v]["taskmanagers"][0] for v in g)
    flt = next(v for v in g if g.nodes[v]["name"] == "Q2 Filter")
    assert [g.nodes[v]["name"] for v in g.successors(flt)] == ["Q2 Project"]


def test_profiles_of_a_real_job_match_what_it_was_told_to_do(replay):
    run = sample(replay, replay.job_id, duration=25, interval=2.5)
    assert run.stopped_because is None and not run.gaps
    by_name = {p.name: p for p in profiles(run.frame())}
    gen, filt = by_name["Nexmark edge-1 gen"], by_name["Q2 Filter"]
    assert gen.observed_out_rate == pytest.approx(RATE, rel=0.05)  # the source's --rate
    events = [nx.event(n, 1) for n in range(50_000)]
    kept = sum(e[0] == nx.BID and e[1] % 123 == 0 for e in events) / len(events)
    assert filt.selectivity == pytest.approx(kept, rel=0.35)  # q2's filter, on ~25 s of a random stream
    mix = sum(nx.NOMINAL[e[0]] for e in events) / len(events)
    assert gen.bytes_out_per_record == pytest.approx(mix, rel=0.25)  # Flink-serialised events, nominal sizes
    assert 0 < filt.busy < 1 and filt.true_processing_rate > filt.observed_in_rate


def test_each_python_task_reports_its_own_worker_and_java_tasks_are_looked_for_now_and_then(replay):
    """Every Python function reports the worker process it runs in (queries.runtime.WorkerGauges); its
    metric id carries the operator's name, which the sampler finds by listing the subtask's metrics: once for
    a task that has the gauges, every RELIST_EVERY polls for one that has none (Flink's own Java tasks)."""
    from collectors.sampler import RELIST_EVERY
    run = sample(replay, replay.job_id, duration=25, interval=2.5)
    by_name = {p.name: p for p in profiles(run.frame())}
    python = ("Nexmark edge-1 gen", "Q2 Filter", "Q2 Project", "Nexmark q2 Sink")
    workers = {n: by_name[n].workers for n in python}
    assert all(len(w) == 1 for w in workers.values()), workers
    assert len({w[0][1] for w in workers.values()}) == 4  # one worker per operator's slot
    assert {w[0][0] for w in workers.values()} == {"edge-1", "cloud-1"} and workers["Q2 Filter"][0][0] == "cloud-1"
    # 200 events/s of light Python: a few hundredths of a core each, the generator the most
    assert all(0 < w[0][2] < 0.2 for w in workers.values()), workers
    assert workers["Nexmark edge-1 gen"][0][2] == max(w[0][2] for w in workers.values())
    assert by_name["Source: Nexmark edge-1"].workers == () == by_name["Sink: Nexmark q2 Sink end"].workers
    lists = {k: n for k, n in replay.seen.items() if '"get"' not in k and k.endswith('/metrics", null]')}
    polls = len(run.frame()["time"].unique())
    java = [k for k in lists if any(v in k for v in _vertex_ids(replay, ("Source: Nexmark edge-1",
                                                                        "Sink: Nexmark q2 Sink end")))]
    assert len(lists) == 6 and all(lists[k] == 1 for k in lists if k not in java)
    assert all(lists[k] == -(-polls // RELIST_EVERY) for k in java), (lists, polls)


def _vertex_ids(replay, names: tuple[str, ...]) -> list[str]:
    g = job_graph(replay, replay.job_id)
    return [v for v in g if g.nodes[v]["name"] in names]


def test_a_poll_that_lacks_busy_time_does_not_make_the_rate_unbounded(replay):
    """The JobManager's first answer after a quiet spell may lack a metric: a window opened on a missing busy
    time once read as 'busy 0 %, rate inf' (CI, 2026-12-01). Profiles use the polls that answered everything."""
    frame = sample(replay, replay.job_id, duration=25, interval=2.5).frame()
    filt = frame["vertex_name"] == "Q2 Filter"
    first = frame["time"] == frame.loc[filt, "time"].min()
    gappy = frame[~(filt & first & (frame["metric"] == "accumulateBusyTimeMs"))]
    assert len(gappy) == len(frame) - 1
    whole = {p.name: p for p in profiles(frame[~(filt & first)])}["Q2 Filter"]
    got = {p.name: p for p in profiles(gappy)}["Q2 Filter"]
    assert 0 < got.busy < 1 and "busy ≈ 0: rate unbounded" not in got.flags
    assert got.true_processing_rate == pytest.approx(whole.true_processing_rate)


def test_sampling_goes_on_until_every_source_has_emitted_enough_and_no_longer(replay):
    """An event-time job is profiled and measured until its windows closed twice (`collectors.profiling.
    CYCLES`): the sampler stops at the first poll at which the generators' own counters say so."""
    from collectors.profiling import emitted_per_source
    from collectors.sampler import SampleRun
    from placement.realize import operators
    ops = operators("nexmark", ["--rate", str(RATE)])
    latest = [SampleRun()]
    need = 2_000
    run = sample(replay, replay.job_id, duration=300, interval=2.5, on_poll=lambda r: latest.__setitem__(0, r),
                 until=lambda: emitted_per_source(latest[0], ops) >= need)
    times = run.frame()["time"]
    assert need <= emitted_per_source(run, ops) < need + RATE * 2.5 * 1.2  # it stopped at the first poll past it
    assert times.max() - times.min() == pytest.approx(need / RATE, abs=2 * 2.5)  # ~10 s, not 300


def test_a_job_without_sources_seen_has_emitted_nothing():
    from collectors.profiling import emitted_per_source
    from collectors.sampler import SampleRun
    from placement.realize import operators
    assert emitted_per_source(SampleRun(), operators("nexmark", [])) == 0.0


@pytest.mark.parametrize("what", ["the measurement", "profiling"])
@pytest.mark.parametrize("after, why", [
    (lambda a: {**a, "state": "RESTARTING"}, r"is no longer running \(RESTARTING\)"),
    (lambda a: {**a, "timestamps": {**a["timestamps"], "RESTARTING": 1_796_515_821_445}},
     r"restarted at 00:10:21 UTC \(restored from a checkpoint, it runs again\)")], ids=["restarting", "restarted"])
def test_a_job_that_stops_running_or_restarts_fails_its_measurement_and_its_profile(replay, tmp_path, what, after,
                                                                                    why):
    """A job that fails half-way through a window (a TaskManager lost, a restart) ran the window's end in
    another way than its start: what was sampled is no measure of the placement. It once went into the results
    as a valid cell, 30 s of a 120-s window, with -4.6 cores at the edge. A restart between two polls counts
    too: q5 at 0.15 Mbit/s lost its edge TaskManager to a heartbeat timeout and was RUNNING again, restored
    from a checkpoint, within 5 s, so polls 2.5 s apart can see RUNNING on both sides; Flink's time of the
    job's latest RESTARTING moves."""
    from collectors.profiling import profile_job
    from experiments.measure import measure
    recorded, polls = replay.job, [0]

    def job(job_id):
        polls[0] += 1
        answer = recorded(job_id)
        assert answer["state"] == "RUNNING" and answer["timestamps"]["RESTARTING"] == 0  # as recorded
        return after(answer) if polls[0] > 4 else answer
    replay.job = job
    with pytest.raises(EdgeplaceError, match=rf"^{what} stopped early: job {replay.job_id} {why}$"):
        if what == "profiling":
            profile_job(replay, replay.job_id, [], seconds=25)
        else:
            measure(replay, replay.job_id, [], None, tmp_path, warmup=0, duration=20, wan=None)
    assert polls[0] == 5  # it stopped at the first poll that saw it


def test_a_job_that_had_restarted_before_sampling_began_is_sampled(replay):
    """Only a restart while it is sampled counts: a job that restarted once before (its RESTARTING time is
    set from the first poll on) is sampled to the end."""
    recorded = replay.job
    replay.job = lambda job_id: {**recorded(job_id), "timestamps": {**recorded(job_id)["timestamps"],
                                                                   "RESTARTING": 1_796_515_000_000}}
    run = sample(replay, replay.job_id, duration=20, interval=2.5)
    assert run.stopped_because is None and len(run.frame()["time"].unique()) == 9
