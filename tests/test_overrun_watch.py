"""A cell the model predicts to overrun its checkpoints (λ* = 0, `checkpoint:<site>`) is measured until the
overrun had its chance: the site's acknowledgements at the priced size for a heartbeat timeout, or the job
failing, at most `measure_overrun_s`. Sampling runs on the answers a real Flink gave (tests/recorded) and on
virtual time."""
from __future__ import annotations

import re

import pytest

from collectors.checkpoints import acks_at
from common.errors import EdgeplaceError
from costmodel.predict import predict
from costmodel.problem import from_json
from experiments.measure import OverrunWatch, Reached, measure
from placement.policies import plan
from tests.test_collector_replay import Clock, Replay


@pytest.fixture
def clock(monkeypatch):
    import collectors.profiling
    import collectors.sampler
    import experiments.measure
    c = Clock()
    for module in (collectors.sampler, collectors.profiling, experiments.measure):
        monkeypatch.setattr(module, "time", c)
    return c


def _watch(ack_bytes=300_000.0, hold_s=70.0, longest_s=400.0):
    return OverrunWatch("edge-1", ack_bytes, hold_s, longest_s, {"edge-1": "edge-1", "cloud-1": "cloud"})


def test_the_size_counts_from_when_it_first_reached_the_target():
    r = Reached(100.0, 60.0)
    assert not r.update(0.0, 50.0) and not r.update(10.0, float("nan")) and not r.update(20.0, 100.0)
    assert not r.update(79.0, 90.0)  # windows rise and fall: reached once is reached
    assert r.update(80.0, 90.0) and r.first == 20.0 and r.largest == 100.0
    assert r.note("edge-1", 5.0, 80.0) == ("checkpoint overrun predicted at edge-1 (0 kB of acknowledgements): "
                                           "reached after 15 s; the job still ran 60 s later")
    never = Reached(1e6, 60.0)
    never.update(0.0, 400_000.0)
    assert never.note("edge-1", 0.0, 600.0).endswith("they reached 400 kB at most in 600 s")


def test_a_sites_acknowledgements_are_its_share_of_each_vertexs_subtasks():
    tms = {"count": ["edge-1"], "hot": ["cloud-1"], "src": ["edge-1", "edge-2"], "gone": []}
    sites = {"edge-1": "site-1", "edge-2": "site-2", "cloud-1": "cloud"}
    acks = {"count": 1_000_000.0, "hot": 4_000.0, "src": 600.0, "gone": 9.0}
    assert acks_at(acks, tms, sites, "site-1") == 1_000_300.0
    assert acks_at(acks, tms, sites, "site-2") == 300.0
    assert acks_at(acks, tms, sites, "cloud") == 4_000.0


def test_a_state_that_never_reaches_the_priced_size_is_measured_for_the_longest_wait(clock, tmp_path):
    """The q2 recording has no checkpoints: nothing is acknowledged, so the measurement goes on past its
    20 s, to the watch's 400 s, and says what the acknowledgements reached."""
    replay = Replay("http://recorded")
    plain = measure(replay, replay.job_id, [], None, tmp_path, warmup=0, duration=20, wan=None)
    watched = measure(Replay("http://recorded"), replay.job_id, [], None, tmp_path, warmup=0, duration=20,
                      wan=None, watch=_watch())
    assert plain.seconds == pytest.approx(20, abs=2.5) and plain.overrun == ""
    assert watched.seconds == pytest.approx(400, abs=2.5)
    assert re.fullmatch(r"checkpoint overrun predicted at edge-1 \(300 kB of acknowledgements\): they reached "
                        r"0 kB at most in 40\d s", watched.overrun)


def _growing(clock, monkeypatch, per_s=10_000.0):
    import experiments.measure
    t0 = clock.now
    monkeypatch.setattr(experiments.measure, "site_acks_reader",
                        lambda rest, job, site_of, site: (lambda: per_s * (clock.now - t0)))


def test_a_state_that_reaches_the_priced_size_is_measured_a_heartbeat_timeout_longer(clock, tmp_path, monkeypatch):
    """10 kB/s of acknowledged state reaches the priced 300 kB after 30 s; the job is then given its 70 s."""
    _growing(clock, monkeypatch)
    replay = Replay("http://recorded")
    m = measure(replay, replay.job_id, [], None, tmp_path, warmup=0, duration=20, wan=None, watch=_watch())
    assert m.seconds == pytest.approx(100, abs=2.5)
    assert re.fullmatch(r".*: reached after 3\d s; the job still ran 7\d s later", m.overrun), m.overrun


def test_a_job_that_fails_while_watched_fails_its_measurement_as_predicted(clock, tmp_path, monkeypatch):
    _growing(clock, monkeypatch)
    replay = Replay("http://recorded")
    recorded, t0 = replay.job, clock.now
    replay.job = lambda job_id: {**recorded(job_id), "state": "RESTARTING" if clock.now - t0 > 60 else "RUNNING"}
    with pytest.raises(EdgeplaceError, match=r"^the measurement stopped early: .* \(RESTARTING\)$"):
        measure(replay, replay.job_id, [], None, tmp_path, warmup=0, duration=20, wan=None, watch=_watch())
    assert 60 < clock.now - t0 < 65  # at the first poll that saw it, well before the watch's end


def test_only_a_cell_predicted_to_overrun_is_watched_and_for_the_priced_acknowledgements():
    from experiments.runner import CHECKPOINT_MS, overrun_watch
    from costmodel.problem import Node
    p = from_json({
        "operators": [{"id": "src", "cost_s_per_record": 1e-5, "bytes_out_per_record": 20, "pin": "site-1"},
                      {"id": "count", "cost_s_per_record": 1e-5, "stateful": True, "checkpoint_ack_bytes": 7e5},
                      {"id": "sink", "cost_s_per_record": 1e-6}],
        "edges": [{"from": "src", "to": "count"}, {"from": "count", "to": "sink"}],
        "source_rates": {"src": 1.0},
        "nodes": [{"id": "cloud-1", "site": "cloud", "slots": 4, "cores": 1.0},
                  {"id": "edge-1", "site": "site-1", "slots": 4, "cores": 0.5}],
        "links": [{"site": "site-1", "up_bytes_per_s": 1e4, "down_bytes_per_s": 1e4, "heartbeat_timeout_s": 60.0}]})
    nodes = [Node("cloud-1", "cloud", 4, 1.0), Node("edge-1", "site-1", 4, 0.5)]
    edge = predict(p, plan(p, "edge-max"))  # 700 kB over 10 kB/s: 70 s > 60 s
    assert edge.bottleneck == "checkpoint:site-1"
    w = overrun_watch(edge, 500.0, nodes)
    assert (w.site, w.ack_bytes, w.hold_s, w.longest_s) == ("site-1", 7e5, 60.0 + CHECKPOINT_MS / 1000, 500.0)
    assert w.site_of == {"cloud-1": "cloud", "edge-1": "site-1"}
    assert overrun_watch(predict(p, plan(p, "cloud-only")), 500.0, nodes) is None
    assert overrun_watch(None, 500.0, nodes) is None
    from experiments.runner import failure
    stopped = EdgeplaceError("the measurement stopped early: job j is no longer running (RESTARTING)")
    assert failure(stopped, edge) == f"{stopped} (as predicted: checkpoint:site-1, λ* = 0)"
    assert failure(stopped, predict(p, plan(p, "cloud-only"))) == failure(stopped, None) == str(stopped)
