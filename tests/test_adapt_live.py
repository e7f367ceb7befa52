"""The closed loop on the shared testbed: a link that thins makes `adapt` move the filter to the edge, once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from collectors.attribution import actual
from collectors.rest import FlinkRest
from placement.flink import jobs_started_since, stop_with_savepoint
from placement.model import Placement
from queries import options
from queries.nexmark import job as nexmark
from tests.conftest import TEST_ENV, edgeplace

pytestmark = [pytest.mark.live, pytest.mark.slow]
REST = FlinkRest("http://127.0.0.1:18081")
ARGS = ["--opt", "query=q2", "--rate", "0"]
OPS = nexmark.topology(options.parse(ARGS))


def decisions(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def wait_for(log, cond, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hit = next((d for d in decisions(log) if cond(d)), None)
        if hit:
            return hit
        time.sleep(1)
    pytest.fail(f"{what} within {timeout:.0f} s; decisions: {[d.get('why') for d in decisions(log)]}")


def test_a_link_that_thins_makes_adapt_redeploy_once_towards_the_edge(shared_testbed, tmp_path):
    started = time.time()
    cloud_only = {o.uid: ("edge-1" if o.is_source else "cloud-1") for o in OPS}
    Placement(cloud_only).write(tmp_path / "p.json")
    assert edgeplace("testbed", "wan", "--mbit", "50", "--site", "edge-1").returncode == 0
    res = edgeplace("deploy", "--query", "nexmark", "--placement", str(tmp_path / "p.json"), *ARGS)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip().splitlines()[-1]
    log = tmp_path / "adapt.jsonl"
    loop = subprocess.Popen([sys.executable, "-m", "experiments.cli", "adapt", "--job", job, "--interval", "5",
                             "--window", "25", "--stable", "2", "--cooldown", "30", "--log", str(log)],
                            env={**os.environ, **TEST_ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    final = job
    try:
        # a fat link: the filter stays in the cloud (the slow edge CPU would bind)
        wait_for(log, lambda d: d["action"] == "stay", 120, "no settled decision on the fat link")
        assert not [d for d in decisions(log) if d["action"] == "redeploy"]
        assert edgeplace("testbed", "wan", "--mbit", "0.5", "--site", "edge-1").returncode == 0
        thin = time.monotonic()
        moved = wait_for(log, lambda d: d["action"] == "redeploy", 90, "no redeploy after the link thinned")
        assert time.monotonic() - thin < 90
        final = moved["redeployed_to"]
        where = actual(REST, final, OPS)
        assert where["filter"] == {"edge-1"}, where  # the filter now runs where the data is born
        n = len(decisions(log))
        wait_for(log, lambda d: len(decisions(log)) >= n + 3, 90, "the loop stopped deciding")
        assert len([d for d in decisions(log) if d["action"] == "redeploy"]) == 1  # and it stays there
    finally:
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=120)
        edgeplace("testbed", "wan", "--mbit", "8", "--site", "edge-1")
        still = jobs_started_since(REST, started)
    try:
        assert loop.returncode == 0, err
        assert out.strip().splitlines()[-1] == final and still == [final]
    finally:
        for j in still:  # whatever runs now, also when the test failed: the shared testbed's slots are free again
            stop_with_savepoint(REST, j, tmp_path / "sp")
