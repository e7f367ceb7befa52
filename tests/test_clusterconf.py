"""The cluster's heartbeat timeout from the JobManager's configuration, replayed from what a real Flink 2.3
answered on the testbed (tests/recorded/record_checkpoints.py), and Flink's duration values."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.clusterconf import HEARTBEAT_DEFAULT_S, duration_s, heartbeat_timeout_s
from experiments.testbed import flinkconf
from experiments.testbed.spec import TestbedSpec
from tests.test_checkpoints import Replay

RECORDED = json.loads((Path(__file__).parent / "recorded" / "checkpoints-q5-cloud-only.json").read_text())


def test_the_heartbeat_timeout_is_the_one_the_testbed_configured():
    configured = flinkconf.jobmanager(TestbedSpec(), "", "/tmp")["heartbeat.timeout"] / 1000
    assert heartbeat_timeout_s(Replay(RECORDED["answers"])) == configured != HEARTBEAT_DEFAULT_S


def test_a_cluster_that_does_not_set_it_or_cannot_be_read_has_flinks_default():
    unset = [e for e in RECORDED["answers"]["/jobmanager/config"] if e["key"] != "heartbeat.timeout"]
    assert len(unset) == len(RECORDED["answers"]["/jobmanager/config"]) - 1
    assert heartbeat_timeout_s(Replay({"/jobmanager/config": unset})) == HEARTBEAT_DEFAULT_S
    assert heartbeat_timeout_s(Replay({})) == HEARTBEAT_DEFAULT_S  # the read fails as Flink's 404 would
    bogus = [{"key": "heartbeat.timeout", "value": "soon"}]
    assert heartbeat_timeout_s(Replay({"/jobmanager/config": bogus})) == HEARTBEAT_DEFAULT_S


@pytest.mark.parametrize("text, seconds", [("60000", 60.0), ("60 s", 60.0), ("90000 ms", 90.0), ("1 min", 60.0),
                                           ("2min", 120.0), ("1.5 h", 5400.0), ("45 seconds", 45.0)])
def test_flinks_durations(text, seconds):
    assert duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5 s", "60 fortnights", "1e3"])
def test_what_is_not_a_duration(text):
    assert duration_s(text) is None


def test_the_window_the_model_prices_is_the_segment_both_kinds_of_cluster_configure():
    """costmodel prices a receiver's credit window from common.flinksettings: the testbed's and the Ansible
    role's TaskManagers must run with that segment size, or the bundle term prices another cluster."""
    import yaml

    from common import flinksettings
    from experiments.testbed.spec import members
    tm = flinkconf.taskmanager(TestbedSpec(), members(TestbedSpec())[0], "", "/tmp")
    role = yaml.safe_load((Path(__file__).parents[1] / "ansible/roles/flink/defaults/main.yml").read_text())
    assert tm["taskmanager.memory.segment-size"] == role["flink_segment_size"] == flinksettings.segment_size()
    assert flinksettings.RECEIVE_WINDOW_BYTES == (2 + 8) * 4096  # Flink's default buffers per channel and gate
