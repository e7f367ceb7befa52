"""What `experiments.measure` reads of a running job: how many events the sources have emitted, and what a
cell keeps of it."""
from __future__ import annotations


def test_the_slowest_source_subtask_decides_how_many_events_every_source_has_emitted(tmp_path):
    """`measure` goes on until *every* source has carried event time over two window periods."""
    import json
    from experiments.measure import events_per_source, source_progress
    def snap(counts):
        for name, n in counts.items():
            (tmp_path / f"progress-{name}.json").write_text(json.dumps({"count": n, "time": 1.0}))
        return source_progress(tmp_path)
    before = snap({"src-edge-1-0": 1_000, "src-edge-2-0": 50})
    after = snap({"src-edge-1-0": 41_000, "src-edge-2-0": 30_050})
    assert events_per_source(before, after) == 30_000
    assert events_per_source({}, after) == 0.0


def test_a_cell_keeps_how_long_it_was_measured_and_over_how_many_window_periods(tmp_path):
    from experiments.measure import Measurement
    from experiments.runner import Results, _row
    from placement.model import Placement
    m = Measurement(100.0, {"edge-1:up": 1e4}, 100.0, {"p50": 0.1, "p95": 0.2, "p99": 0.3}, {"edge-1": 0.5},
                    seconds=97.5, window_cycles=2.1)
    c = {"query": "nexmark-q8", "bandwidth_mbit": 50.0, "policy": "edge-max", "repetition": 0}
    res = Results(tmp_path)
    res.add(_row(c, Placement({"src-edge-1": "edge-1"}), None, m, "job", 0.0, ""))
    got = res.all().iloc[0]
    assert (got["measured_s"], got["window_cycles"]) == (97.5, 2.1)


def test_a_cell_whose_state_grew_while_measured_says_so_and_the_report_lists_it(tmp_path):
    from experiments.measure import Measurement
    from experiments.report import write_report
    from experiments.runner import Results, _row
    from placement.model import Placement
    from tests.test_experiments import _synthetic_results
    root = tmp_path / "r-abc"
    _synthetic_results(root)
    res = Results(root)
    for policy, state in (("edge-max", (43_000.0, 471_000.0)), ("cloud-only", (60_000.0, 64_000.0))):
        m = Measurement(244.0, {"edge-1:up": 1e4}, 70.0, {"p50": 0.1, "p95": 0.2, "p99": 0.3}, {"edge-1": 0.5},
                        seconds=120.0, window_cycles=1.2, state_bytes=state)
        c = {"query": "q2", "bandwidth_mbit": 0.15, "policy": policy, "repetition": 0}
        res.add(_row(c, Placement({"src-edge-1": "edge-1"}), None, m, "job", 0.0, "measured once"))
    got = res.all().set_index("cell")
    assert got.loc["q2|0.15|edge-max|0", "note"] == ("measured once; checkpointed state grew 43 → 471 kB while measured: "
                                           "a transient, not a steady state")
    assert got.loc["q2|0.15|cloud-only|0", "note"] == "measured once"  # 60 → 64 kB: held still
    assert tuple(got.loc["q2|0.15|edge-max|0", ["state_bytes_start", "state_bytes_end"]]) == (43_000.0, 471_000.0)
    text = write_report(root).read_text()
    section = text.split("## Cells measured while their state grew")[1].split("##")[0]
    assert "- q2|0.15|edge-max|0: 43 → 471 kB; measured 244 events/s" in section and "cloud-only" not in section
