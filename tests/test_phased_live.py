"""An experiment whose link thins half-way (`[[phases]]`), run by `edgeplace run` with the `adaptive`
policy: it stays on the fat link, moves the filter to the edge once when the link thins, and the report
says so. Lifecycle: the runner starts its own one-edge testbed and takes it down."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import TEST_CLUSTER_TOML, edgeplace

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.lifecycle]

PHASED = """
name = "phased"
policies = ["adaptive"]
source_rate = "max"
warmup_s = 10
settle_s = 50
profile_s = 20
profile_edge_pass = false  # the loop is under test here, not the profile (see test_experiments)
repetitions = 1
[[phases]]
duration_s = 60
mbit = 50
[[phases]]
duration_s = 75
mbit = 0.5
[adapt]
interval_s = 5
window_s = 25
stable = 2
cooldown_s = 20
""" + TEST_CLUSTER_TOML


def test_adaptive_policy_follows_a_link_that_thins_with_one_redeploy(root_required, tmp_path):
    from tests.test_testbed_live import snapshot
    edgeplace("testbed", "down")
    before = snapshot()
    (tmp_path / "phased.toml").write_text(PHASED)
    res = edgeplace("run", str(tmp_path / "phased.toml"), "--results", str(tmp_path / "r"), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert snapshot() == before  # the runner's own testbed is down again
    root = next((tmp_path / "r").glob("phased-*"))
    df = pd.read_parquet(root / "cells.parquet").sort_values("phase")
    assert list(df["phase"]) == [0, 1] and list(df["bandwidth_mbit"]) == [50, 0.5], df
    assert not df["note"].str.startswith("failed").any(), df["note"].tolist()
    fat, thin = df.iloc[0], df.iloc[1]
    assert fat["redeploys"] == 0, "a fat link that stays fat must not move the job"
    assert thin["redeploys"] == 1, "a link that thins moves the job once"
    assert json.loads(thin["placement"])["assignments"]["filter"] == "edge-1"  # filtered where the data is born
    # on the thin link the filtered stream fits: far more than the ~450 events/s cloud-only's raw stream does
    assert thin["measured_rate"] > 2 * 450, thin["measured_rate"]
    decisions = [json.loads(x) for x in (root / "adapt" / "q2-0.jsonl").read_text().splitlines()]
    assert [d["action"] for d in decisions].count("redeploy") == 1
    # one loop through both phases: the costs it keeps (from its busiest window) are never forgotten when a
    # phase starts (a loop restarted per phase priced the thin phase from link-bound windows only)
    kept = [d["costs_at_rate"] for d in decisions if "costs_at_rate" in d]
    assert kept and kept == sorted(kept), kept
    report = (root / "report.md").read_text()
    assert "q2 phase 1 (0.5 Mbit/s): adaptive" not in report  # no static policy to compare with: no such line
    assert (root / "figures" / "phases.png").exists()
