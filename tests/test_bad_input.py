"""Bad input of every kind to the real CLI, without a cluster: each ends within seconds with exit != 0, at
most 3 lines on stderr and no traceback, and leaves nothing behind but the files the test wrote."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from costmodel.problem import to_json
from tests.conftest import edgeplace
from tests.test_costmodel_units import chain

# src (pinned to edge-1) → filter → sink on a 0.5-core edge and a 2-core cloud, 1 Mbit/s: a valid problem
GOOD = to_json(chain(("filter", 2e-4, 0.01, 100, False), ("sink", 1e-5, 1.0, 0, False)))


def fails_cleanly(tmp_path: Path, *args: str, code: int | None = None, says: str = "") -> str:
    """Run the CLI; assert the clean failure; return stderr."""
    before = sorted(tmp_path.rglob("*"))
    res = edgeplace(*args, timeout=30)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and (code is None or res.returncode == code), (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and 1 <= len(lines) <= 3, res.stderr
    assert says in res.stderr, res.stderr
    assert sorted(tmp_path.rglob("*")) == before, "it left files behind"
    return res.stderr


def problem_file(tmp_path: Path, mutate=None, raw: str | None = None) -> str:
    d = json.loads(json.dumps(GOOD))
    if mutate:
        mutate(d)
    f = tmp_path / "p.json"
    f.write_text(raw if raw is not None else json.dumps(d))
    return str(f)


@pytest.mark.parametrize("mutate, raw, says", [
    (lambda d: d["operators"][1].update(cost_s_per_record=float("nan")), None, "operators[1].cost_s_per_record"),
    (lambda d: d["operators"][1].update(cost_s_per_record=float("inf")), None, "finite"),
    (lambda d: d["nodes"][0].update(speed=float("nan")), None, "nodes[0].speed"),
    (lambda d: d.update(source_rates={"src": -1}), None, "source_rates.src"),
    (lambda d: d["links"][0].update(up_bytes_per_s=float("nan")), None, "links[0].up_bytes_per_s"),
    (lambda d: d["nodes"].append(dict(d["nodes"][1])), None, "node ids must be unique"),
    (lambda d: d["operators"][1].update(stateful="false"), None, "operators[1].stateful"),
    (lambda d: d["operators"][1].update(parallelism=1.9), None, "operators[1].parallelism"),
    (lambda d: d["operators"][1].update(checkpoint_ack_bytes=float("inf")), None, "operators[1].checkpoint_ack_bytes"),
    (lambda d: d["links"][0].update(heartbeat_timeout_s=None), None, "links[0].heartbeat_timeout_s"),
    (lambda d: d.update(operators=[]), None, "operators: must not be empty"),
    (lambda d: d.update(source_rates={"src": "fast"}), None, "source_rates.src"),
    (lambda d: d.update(source_rates={"filter": 1.0}), None, "source_rates names filter, which has inputs"),
    (lambda d: d.update(source_rates={"ghost": 1.0}), None, "source_rates names unknown operator 'ghost'"),
    (lambda d: d.update(extra=1), None, "unknown field(s) 'extra'"),
    (None, "[1, 2]", "(top level)"),
    (None, "{not json", "not valid JSON"),
    (None, '{"operators": NaN}', "operators: must be a finite number"),
])
def test_bad_problem_files(tmp_path, mutate, raw, says):
    f = problem_file(tmp_path, mutate, raw)
    fails_cleanly(tmp_path, "plan", "--problem", f, "--policy", "optimal", "--out", str(tmp_path / "o.json"), says=says)


def test_plan_into_a_missing_folder_and_with_bad_options(tmp_path):
    f = problem_file(tmp_path)
    fails_cleanly(tmp_path, "plan", "--problem", f, "--policy", "optimal", "--out", str(tmp_path / "no" / "o.json"),
                  says="cannot write placement")
    fails_cleanly(tmp_path, "plan", "--problem", f, "--policy", "magic", "--out", str(tmp_path / "o.json"),
                  says="unknown policy 'magic'")
    fails_cleanly(tmp_path, "plan", "--problem", f, "--policy", "optimal", "--target-rate", "nan",
                  "--out", str(tmp_path / "o.json"), code=2, says="--target-rate")
    fails_cleanly(tmp_path, "plan", "--problem", str(tmp_path / "missing.json"), "--policy", "optimal",
                  "--out", str(tmp_path / "o.json"), says="cannot read problem file")


def test_predict_refuses_bad_rates_and_placements_and_never_prints_infinity(tmp_path):
    f = problem_file(tmp_path)
    pl = tmp_path / "pl.json"
    pl.write_text(json.dumps({"version": 1, "assignments": {"src": "edge-1", "filter": "edge-1", "sink": "cloud-1"}}))
    for rate in ("nan", "-5", "inf", "abc"):
        fails_cleanly(tmp_path, "predict", "--problem", f, "--placement", str(pl), "--rate", rate, code=2, says="--rate")
    for bad, says in ((["x"], "placement"), ({"version": 1, "assignments": {"src": "edge-1"}, "meta": [1]}, "meta"),
                      ({"version": 1, "assignments": {"ghost": "edge-1"}}, "ghost")):
        pl.write_text(json.dumps(bad))
        fails_cleanly(tmp_path, "predict", "--problem", f, "--placement", str(pl), says=says)
    free = problem_file(tmp_path, lambda d: [o.update(cost_s_per_record=0) for o in d["operators"]])
    pl.write_text(json.dumps({"version": 1, "assignments": {"src": "edge-1", "filter": "edge-1", "sink": "edge-1"}}))
    res = edgeplace("predict", "--problem", free, "--placement", str(pl), "--rate", "10", "--json")
    assert res.returncode == 0 and "Infinity" not in res.stdout and "NaN" not in res.stdout
    assert json.loads(res.stdout)["max_rate"] is None  # nothing limits it: unbounded is null


CONFIG = '''name = "t"
policies = {policies}
bandwidths_mbit = {bw}
seed = {seed}
[[queries]]
name = "nexmark"
{queries}
'''


@pytest.mark.parametrize("policies, bw, seed, queries, says", [
    ("5", "[1]", "1", 'args = ["--opt", "query=q2"]', "policies: 5 is not of type 'array'"),
    ('"optimal"', "[1]", "1", 'args = ["--opt", "query=q2"]', "policies: 'optimal' is not of type 'array'"),
    ("[]", "[1]", "1", 'args = ["--opt", "query=q2"]', "policies: must not be empty"),
    ('["optimal"]', "[1]", '"abc"', 'args = ["--opt", "query=q2"]', "seed: 'abc' is not of type 'integer'"),
    ('["optimal"]', "[nan]", "1", 'args = ["--opt", "query=q2"]', "bandwidths_mbit[0]: must be a finite number"),
    ('["optimal"]', "[1]", "1", 'args = ["--opt", "query=q99"]', "unknown Nexmark query 'q99'"),
    ('["optimal"]', "[1]", "1", 'args = [1]', "queries[0].args[0]"),
    ('["optimal"]', "[1]", "1", 'args = ["--rate", "x"]', "--rate"),
])
def test_bad_experiment_configs_start_nothing_and_write_nothing(tmp_path, policies, bw, seed, queries, says):
    conf = tmp_path / "c.toml"
    conf.write_text(CONFIG.format(policies=policies, bw=bw, seed=seed, queries=queries))
    fails_cleanly(tmp_path, "run", str(conf), "--results", str(tmp_path / "results"), says=says)


def test_profile_plot_and_report_on_foreign_or_damaged_files(tmp_path):
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "other.parquet")
    fails_cleanly(tmp_path, "profile", str(tmp_path / "other.parquet"), says="lacks column(s)")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    fails_cleanly(tmp_path, "profile", str(tmp_path / "junk.parquet"), says="cannot read samples")
    res = tmp_path / "results"
    res.mkdir()
    (res / "cells.parquet").write_bytes(b"PAR1 damaged")
    for cmd in ("plot", "report"):
        fails_cleanly(tmp_path, cmd, str(res), says="not a readable results table")
    pd.DataFrame({"query": ["q"]}).to_parquet(res / "cells.parquet")
    fails_cleanly(tmp_path, "report", str(res), says="lacks column(s)")
    fails_cleanly(tmp_path, "plot", str(tmp_path / "nowhere"), says="has no cells.parquet")


def test_collect_and_calibrate_refuse_non_finite_numbers(tmp_path):
    fails_cleanly(tmp_path, "collect", "--job", "x", "--duration", "nan", "--out", str(tmp_path / "s.parquet"),
                  code=2, says="--duration")
    fails_cleanly(tmp_path, "calibrate", "--rate", "nan", code=2, says="--rate")


def test_a_speeds_file_with_nan_is_refused(tmp_path):
    from common.errors import EdgeplaceError
    from experiments.calibration import read_speeds
    (tmp_path / "s.json").write_text('{"edge-1": {"speed": NaN}}')
    with pytest.raises(EdgeplaceError, match=r"edge-1.speed: must be a finite number"):
        read_speeds(tmp_path / "s.json")
    (tmp_path / "s.json").write_text('{"edge-1": {"speed": 0}}')
    with pytest.raises(EdgeplaceError, match="edge-1.speed"):
        read_speeds(tmp_path / "s.json")


def test_testbed_down_removes_only_what_the_testbed_can_have_made(tmp_path):
    """A damaged or planted state file that lists other folders, cgroups, namespaces or interfaces does not
    make `down` touch them."""
    import os
    import subprocess
    import sys
    home = tmp_path / "home"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    own = home / "testbed" / "run"
    own.mkdir(parents=True)
    state = {"spec": {}, "mode": "loopback", "owner_pid": 999999999, "phase": "failed",
             "resources": [{"kind": "dir", "path": str(victim)}, {"kind": "dir", "path": str(own / "..")},
                           {"kind": "netns", "name": "somebody-elses"}, {"kind": "link", "name": "eth0"},
                           {"kind": "cgroup", "path": "/sys/fs/cgroup/system.slice"}, {"kind": "dir", "path": str(own)}]}
    (home / "testbed" / "state.json").write_text(json.dumps(state))
    res = subprocess.run([sys.executable, "-m", "experiments.cli", "testbed", "down"], capture_output=True, text=True,
                         env={**os.environ, "EDGEPLACE_HOME": str(home)}, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (victim / "precious").read_text() == "keep me"
    assert not own.exists()  # its own folder is removed
    assert res.stderr.count("left alone") == 5  # two folders outside its own, the namespace, interface, cgroup


def test_what_down_counts_as_the_testbeds_own():
    from experiments.testbed.teardown import owned
    assert owned({"kind": "netns", "name": "ep7-edge-1"}) and owned({"kind": "link", "name": "ep7e1h"})
    assert owned({"kind": "link", "name": "epbr7"}) and not owned({"kind": "link", "name": "epbr7; rm"})
    assert owned({"kind": "cgroup", "path": "/sys/fs/cgroup/cpu/edgeplace/x/edge-1"})
    assert not owned({"kind": "cgroup", "path": "/sys/fs/cgroup/cpu/edgeplace/../system.slice"})
    from experiments.testbed.sshhosts import FLINK_USER, HOSTS_BASE, hosts_root
    assert owned({"kind": "dir", "path": str(hosts_root("10.213.9.0/24"))})
    assert not owned({"kind": "dir", "path": str(HOSTS_BASE)})
    assert not owned({"kind": "dir", "path": str(HOSTS_BASE / ".." / "dpkg")})
    assert owned({"kind": "user", "name": FLINK_USER}) and not owned({"kind": "user", "name": "root"})


@pytest.mark.parametrize("value, says", [("-3", "pad must be ≥ 0"), ("x", "invalid literal")])
def test_a_bad_job_option_is_refused_before_any_job_is_built(value, says):
    from common.errors import EdgeplaceError
    from placement.realize import operators
    with pytest.raises(EdgeplaceError, match=f"counts: bad job argument: {says}"):
        operators("counts", ["--opt", f"pad={value}"])


@pytest.mark.parametrize("cluster, says", [
    ("cloud_slots = 1", "a testbed of another shape is up: cloud_slots 8 (the config: 1)"),
    ("cloud_slots = 8\nedge_cpu = 0.25", "edge_cpu 0.5 (the config: 0.25)"),
    ("cloud_slots = 8\n[cluster.sites.edge-7]\nmbit = 3", "[cluster.sites] names edge-7, not an edge site"),
])
def test_a_config_that_does_not_fit_the_testbed_up_starts_nothing_and_writes_nothing(tmp_path, monkeypatch,
                                                                                      cluster, says):
    """A testbed recorded as up (in a home of the test's own, on ports nothing listens on) whose slots or quota
    differ from the config's, or a config naming a site the testbed lacks: refused before any job is submitted
    or any results folder written (both used to happen: the run profiled on the testbed that was up)."""
    import os
    from experiments.testbed import state as st
    from experiments.testbed.spec import TestbedSpec
    monkeypatch.setenv("EDGEPLACE_HOME", str(tmp_path / "home"))
    up = TestbedSpec(edge=1, cloud=1, edge_slots=4, cloud_slots=8, edge_cpu=0.5, wan_mbit=None, rest_port=18997,
                     rpc_port=18996)
    st.State(spec=up.to_dict(), mode="isolated", owner_pid=os.getpid(), phase="up").save()
    conf = tmp_path / "c.toml"
    conf.write_text('name = "t"\npolicies = ["cloud-only"]\nbandwidths_mbit = [1]\n[[queries]]\nname = "qa"\n'
                    f'[cluster]\nedge = 1\ncloud = 1\nedge_slots = 4\nrest_port = 18997\nrpc_port = 18996\n{cluster}\n')
    fails_cleanly(tmp_path, "run", str(conf), "--results", str(tmp_path / "results"), says=says)
    assert st.load().phase == "up"  # the testbed that was up is left as it was


@pytest.mark.parametrize("command", ["facts", "provision", "start"])
@pytest.mark.parametrize("text, says", [
    ("all: [1, 2\n", "cannot be read: Failed to parse inventory with 'auto' plugin: YAML parsing failed"),
    ("all:\n  hosts: {}\n", "has no host in group 'cloud'"),
])
def test_a_malformed_or_empty_inventory_is_refused_before_anything_runs(tmp_path, command, text, says):
    """Ansible reads an inventory no plugin can parse as an empty one, with warnings (ansible.cfg makes it an
    error); `provision` checks it before it builds the wheels it would ship."""
    (tmp_path / "inv.yml").write_text(text)
    err = fails_cleanly(tmp_path, "cluster", command, "-i", str(tmp_path / "inv.yml"), says=says)
    assert "wheel" not in err
