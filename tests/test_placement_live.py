"""Placement on vanilla Flink 2.3, on the shared live testbed: deploy, verify, redeploy with state, rollback."""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from collectors.rest import FlinkRest, FlinkRestError
from common.errors import EdgeplaceError
from collectors.attribution import actual, vertex_owners
from collectors.checkpoints import read_state
from costmodel.pricing import link_bytes_per_s
from experiments.testbed import flinkconf
from experiments.testbed.spec import TestbedSpec
from placement.flink import stop_with_savepoint
from placement.model import Placement
from queries import options
from queries.counts import job as counts
from tests.conftest import STOPS_FAST, edgeplace
from tests.counts_sink import assert_exact, read_sink, wait_rows

pytestmark = [pytest.mark.live, pytest.mark.slow]
REST = FlinkRest("http://127.0.0.1:18081")
OPS = counts.topology(options.parse([]))


def write(tmp_path: Path, name: str, assignments: dict) -> str:
    path = tmp_path / name
    Placement(assignments).write(path)
    return str(path)


def deploy(*args: str) -> str:
    res = edgeplace("deploy", "--query", "counts", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


def running_jobs() -> list[str]:
    return [j["jid"] for j in REST.get("/jobs/overview")["jobs"] if j["state"] not in ("CANCELED", "FINISHED", "FAILED")]


def end(job_id: str, tmp_path: Path) -> None:
    """End a job gracefully (stop with savepoint), so sinks flush and no TaskManager is taken down by a cancel."""
    stop_with_savepoint(REST, job_id, tmp_path / "final-savepoints")


A = {"src-edge-1": "edge-1", "parse": "edge-1", "count": "cloud-1", "sink": "cloud-1"}
B = {"src-edge-1": "edge-1", "parse": "cloud-1", "count": "edge-1", "sink": "cloud-1"}


def test_same_job_two_placements_both_realised(shared_testbed, tmp_path):
    for name, asg in (("a", A), ("b", B)):
        job = deploy("--placement", write(tmp_path, f"{name}.json", asg), "--rate", STOPS_FAST)
        where = actual(REST, job, OPS)
        assert where == {u: {tm} for u, tm in asg.items()}, where
        w = edgeplace("where", "--job", job, "--out", str(tmp_path / f"{name}-actual.json"),
                      "--schedulercfg", str(tmp_path / f"{name}.scfg"))
        assert w.returncode == 0, w.stderr
        assert Placement.read(tmp_path / f"{name}-actual.json").assignments == asg
        scfg = (tmp_path / f"{name}.scfg").read_text()
        assert f"Parse (1/1); {'10.213.7.151' if asg['parse'] == 'edge-1' else '10.213.7.101'}" in scfg
        end(job, tmp_path)


def test_deploy_from_schedulercfg(shared_testbed, tmp_path):
    scfg = tmp_path / "b.scfg"
    scfg.write_text("Source: Events edge-1 (1/1); 10.213.7.151\nEvents edge-1 gen (1/1); 10.213.7.151\n"
                    "Parse (1/1); 10.213.7.101\nCount (1/1); 10.213.7.151\n"
                    "Counts Sink (1/1); 10.213.7.101\nSink: Counts Sink end (1/1); 10.213.7.101\n")
    job = deploy("--schedulercfg", str(scfg), "--rate", STOPS_FAST)
    assert actual(REST, job, OPS) == {u: {tm} for u, tm in B.items()}
    end(job, tmp_path)


def test_redeploy_keeps_keyed_state_exactly(shared_testbed, tmp_path):
    out = tmp_path / "out"
    job = deploy("--placement", write(tmp_path, "a.json", A), "--rate", "200", "--out", str(out))
    wait_rows(out, 500)
    res = edgeplace("redeploy", "--job", job, "--placement", write(tmp_path, "b.json", B))
    assert res.returncode == 0, res.stderr
    print([l for l in res.stderr.splitlines() if l.startswith("phases")][0])
    new_job = res.stdout.strip().splitlines()[-1]
    assert actual(REST, new_job, OPS) == {u: {tm} for u, tm in B.items()}
    before = len(read_sink(out))
    wait_rows(out, before + 500)
    end(new_job, tmp_path)
    assert_exact(read_sink(out))


def test_failed_redeploy_rolls_back_to_the_old_placement(shared_testbed, tmp_path):
    # another job holds both slots of edge-2, so a placement that needs edge-2 cannot be realised
    blocker = deploy("--placement", write(tmp_path, "blk.json", {
        "src-edge-2": "edge-2", "parse": "edge-2", "count": "cloud-1", "sink": "cloud-1"}),
        "--sites", "edge-2", "--rate", STOPS_FAST)
    job = deploy("--placement", write(tmp_path, "a.json", A), "--rate", STOPS_FAST)
    res = edgeplace("redeploy", "--job", job, "--timeout", "20", "--placement",
                    write(tmp_path, "x.json", {**A, "parse": "edge-2"}))
    assert res.returncode == 1
    assert "rolled back" in res.stderr.strip().splitlines()[-1]
    back = re.search(r"job ([0-9a-f]{32}) runs the previous placement", res.stderr).group(1)
    assert actual(REST, back, OPS) == {u: {tm} for u, tm in A.items()}
    assert sorted(running_jobs()) == sorted([back, blocker])
    end(back, tmp_path)
    end(blocker, tmp_path)


def test_bad_inputs_are_rejected_before_submission(shared_testbed, tmp_path):
    before = REST.get("/jobs/overview")["jobs"]
    cases = [
        ({**A, "ghost": "edge-1"}, "unknown operator"),
        ({k: v for k, v in A.items() if k != "sink"}, "missing from the placement"),
        ({**A, "count": "edge-7"}, "not in the cluster"),
        ({**A, "count": "edge-1", "sink": "edge-1"}, "slots but the placement puts"),
    ]
    for asg, fragment in cases:
        res = edgeplace("deploy", "--query", "counts", "--placement", write(tmp_path, "bad.json", asg))
        assert res.returncode == 1 and fragment in res.stderr.strip().splitlines()[-1], res.stderr
    (tmp_path / "bad.scfg").write_text("Parse 1/1 10.213.7.151\n")
    res = edgeplace("deploy", "--query", "counts", "--schedulercfg", str(tmp_path / "bad.scfg"))
    assert res.returncode == 1 and "malformed line" in res.stderr
    res = edgeplace("deploy", "--query", "counts", "--placement", str(tmp_path / "nope.json"))
    assert res.returncode == 1 and "cannot read placement file" in res.stderr
    res = edgeplace("deploy", "--query", "nosuch", "--placement", str(tmp_path / "bad.json"))
    assert res.returncode == 1 and "unknown query 'nosuch'" in res.stderr
    assert REST.get("/jobs/overview")["jobs"] == before  # nothing was submitted


def test_plan_from_a_live_job_profiles_it_and_writes_a_deployable_placement(shared_testbed, tmp_path):
    """`plan --job` profiles the running job (≥ 25 s) on the testbed's nodes and plans on that problem."""
    job = deploy("--placement", write(tmp_path, "p.json", {o.uid: ("edge-1" if o.is_source else "cloud-1")
                                                             for o in OPS}), "--rate", "0")
    try:
        out, prob = tmp_path / "planned.json", tmp_path / "problem.json"
        res = edgeplace("plan", "--job", job, "--policy", "optimal", "--out", str(out), "--write-problem", str(prob),
                        timeout=180)
        assert res.returncode == 0, res.stderr
        planned = Placement.read(out)
        assert set(planned.assignments) == {o.uid for o in OPS}
        problem = json.loads(prob.read_text())
        assert {n["id"] for n in problem["nodes"]} == {"edge-1", "edge-2", "cloud-1"}
        costs = {o["id"]: o["cost_s_per_record"] for o in problem["operators"]}
        assert all(0 < c < 1 for c in costs.values()), costs  # measured after the warm-up, never assumed
        assert problem["links"][0]["up_bytes_per_s"] == pytest.approx(link_bytes_per_s(8))  # the testbed's 8 Mbit/s
        # Flink's own traffic: every Flink subtask of the cloud TaskManager gets the same share (parse runs
        # two, with its key-by helper), and the keyed count carries its checkpointed state on top, as Flink's
        # checkpoint statistics give it now (the counts' state does not grow: one entry per key)
        control = {o["id"]: o.get("control_up_bytes_per_s", 0.0) for o in problem["operators"]}
        owners = vertex_owners(REST, job, OPS)
        subtasks = Counter(owners.values())
        held = sum(rate for vertex, rate in read_state(REST, job).rates.items() if owners.get(vertex) == "count")
        share = control["parse"] / subtasks["parse"]
        assert held > 0 and share > 0, (held, control)
        assert control["count"] - share * subtasks["count"] == pytest.approx(held, rel=0.25), (held, control)
        # the count's state also rides in one checkpoint's acknowledgements, against the testbed's heartbeat
        acks = {o["id"]: o.get("checkpoint_ack_bytes", 0.0) for o in problem["operators"]}
        assert acks["count"] > 0 and acks["parse"] == 0, acks
        configured = flinkconf.jobmanager(TestbedSpec(), "", "/tmp")["heartbeat.timeout"] / 1000
        assert {l["heartbeat_timeout_s"] for l in problem["links"]} == {configured}
    finally:
        end(job, tmp_path)
    again = deploy("--placement", str(out), "--rate", STOPS_FAST)  # and the placement it wrote is deployable
    try:
        assert {uid: tms for uid, tms in actual(REST, again, OPS).items() if uid in planned.assignments} == \
            {uid: {tm} for uid, tm in planned.assignments.items()}
    finally:
        end(again, tmp_path)
    res = edgeplace("plan", "--job", "0" * 32, "--policy", "optimal", "--out", str(tmp_path / "x.json"))
    assert res.returncode == 1 and "no record" in res.stderr


def test_bench_query_prints_records_per_core(shared_testbed):
    res = edgeplace("bench", "query", "nexmark", "--opt", "query=q1", "--warmup", "8", "--seconds", "10", timeout=300)
    assert res.returncode == 0, res.stderr
    row = next(l for l in res.stdout.splitlines() if "nexmark q1" in l)
    events, cores, per_core = (float(x.replace(",", "")) for x in re.findall(r"[\d,]+\.?\d*", row.split("q1", 1)[1])[:3])
    assert events > 100 and 0 < cores <= 2.5 and per_core == pytest.approx(events / cores, rel=0.02)


@pytest.mark.lifecycle
def test_a_taskmanager_dying_after_submission_is_restarted_and_the_job_realised(root_required, tmp_path,
                                                                                   monkeypatch):
    """The demo once failed like this: a cancel took a TaskManager down a moment *after* the runner had
    checked the cluster, so the next job waited for a TaskManager that no longer existed. While verifying,
    the deploy now tends the cluster (restarts dead TaskManagers). And `end` with a relative scratch dir
    stops with a savepoint (Flink read `file://results/…` as a host name and the runner fell back to cancel).
    Its own testbed: after a TaskManager is replaced during a deployment, Flink's REST metrics stand still
    for up to web.timeout (the JobManager's metric fetcher waits on the dead one), which would spoil the
    next tests on a shared testbed."""
    from tests.conftest import TEST_ARGS

    res = edgeplace("testbed", "up", "--edge", "1", "--cloud", "1", "--edge-cpu", "0.5", "--unshaped", *TEST_ARGS)
    assert res.returncode == 0, res.stderr
    try:
        _kill_a_taskmanager_while_deploying(tmp_path, monkeypatch)
    finally:
        assert edgeplace("testbed", "down").returncode == 0


def _kill_a_taskmanager_while_deploying(tmp_path, monkeypatch) -> None:
    import os
    import signal

    from experiments.testbed import cgroups
    from experiments.testbed import state as st
    from experiments.testbed.testbed import client_conf_dir, heal
    from placement import flink
    from queries import registry

    placement = Placement(A)
    pfile = tmp_path / "pins.json"
    pfile.write_text(json.dumps(placement.pins()))
    state = st.load()
    job = flink.submit(registry.script("counts"), ["--pins", str(pfile), "--rate", STOPS_FAST],
                       client_conf_dir(state), None)
    edge = [p for p in state.of_kind("process") if p["name"] == "edge-1"][-1]
    os.kill(edge["pid"], signal.SIGKILL)  # the recorded PID of the TaskManager the source must run on
    restarted: list[str] = []
    where = flink.wait_verified(REST, job, OPS, placement, timeout=120,
                                tend=lambda: restarted.extend(heal(st.load(), say=print)))
    assert restarted == ["edge-1"]
    assert where == {u: {tm} for u, tm in A.items()}
    # the REST metrics move again: the JobManager's metric fetcher, whose fetch was waiting on the dead
    # TaskManager, gives up on it within web.timeout (Flink's default of 10 min held every metric still)
    deadline = time.monotonic() + flinkconf.WEB_TIMEOUT_MS / 1000 + 30
    while (records := _records_out(job)) == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert records > 0, f"no metric moved {flinkconf.WEB_TIMEOUT_MS / 1000 + 30:.0f} s after the job was realised"
    # the restarted TaskManager started without its quota (start-up is not what it emulates) and has it again
    group = [p for p in st.load().of_kind("process") if p["name"] == "edge-1"][-1]["cgroup"]
    assert cgroups.quota_cores(Path(group)) == 0.5
    monkeypatch.chdir(tmp_path)
    flink.end(REST, job, Path("relative-scratch"))
    assert flink.final_state(REST, job) == "FINISHED"  # stopped with a savepoint, not cancelled
    assert not (tmp_path / "relative-scratch").exists()  # and the savepoint was discarded


def _records_out(job: str) -> int:
    """Records the job's tasks wrote, as REST reports them (from the JobManager's metric fetcher)."""
    return sum(v["metrics"]["write-records"] for v in REST.job(job)["vertices"])


def test_a_redeploy_whose_old_job_cannot_be_stopped_submits_nothing(shared_testbed, tmp_path):
    """The new job is built while the old one stops; if stopping fails, the waiting client is told to
    give up and ends, and no job is submitted."""
    from experiments.environments import LocalTestbed
    from placement.realize import Realizer

    def stop_old() -> str:
        raise EdgeplaceError("the old job could not be stopped")

    before = REST.get("/jobs/overview")["jobs"]
    with pytest.raises(EdgeplaceError, match="could not be stopped"):
        Realizer(LocalTestbed().target, print).deploy("counts", ["--rate", STOPS_FAST], Placement(A), stop_old=stop_old)
    assert REST.get("/jobs/overview")["jobs"] == before
    from common import paths
    assert not list((paths.home() / "placements").glob("restore-*"))  # the hand-over file is gone too


def test_key_by_helpers_are_pinned_with_their_owner_and_listed_in_schedulercfg(shared_testbed, tmp_path):
    """QA from two sites with one shared Flagger (`per_site=0`) keys a union of both sources: PyFlink's key-by
    helper has no single input group, so the job pins it with the Flagger (unpinned, Flink would put it anywhere)."""
    from queries.qa import job as qa
    asg = {"src-edge-1": "edge-1", "src-edge-2": "edge-2", "flag": "cloud-1", "metrics": "cloud-1",
           "sink": "cloud-1"}
    res = edgeplace("deploy", "--query", "qa", "--placement", write(tmp_path, "qa.json", asg),
                    "--sites", "edge-1,edge-2", "--rate", "200", "--opt", "per_site=0")
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip().splitlines()[-1]
    try:
        helpers = [v["id"] for v in REST.job(job)["vertices"] if v["name"] == "_stream_key_by_map_operator"]
        assert len(helpers) == 2
        hosts = {REST.get(f"/jobs/{job}/vertices/{h}")["subtasks"][0]["taskmanager-id"] for h in helpers}
        assert hosts == {"cloud-1"}  # one before the Flagger (union), one before QA Metrics (after Flagger)
        assert actual(REST, job, qa.topology(options.parse(["--sites", "edge-1,edge-2", "--opt", "per_site=0"]))) == \
            {u: {tm} for u, tm in asg.items()}
        w = edgeplace("where", "--job", job, "--schedulercfg", str(tmp_path / "qa.scfg"))
        assert w.returncode == 0, w.stderr
        lines = (tmp_path / "qa.scfg").read_text().splitlines()
        assert lines.count("_stream_key_by_map_operator (1/1); 10.213.7.101") == 2
    finally:
        end(job, tmp_path)


def test_calibrate_measures_node_speeds_that_plan_uses(shared_testbed, tmp_path):
    """The same fixed Python work on edge-1 and on cloud-1 (the reference). Both are this machine's CPU
    (the edge only has a quota), so the edge's speed must come out near 1."""
    speeds = tmp_path / "speeds.json"
    # the default work (40,000 loops at 40 records/s) at a fifth of the loops and 5x the rate: the same CPU
    # share, and each stop-with-savepoint is quicker (measured for counts: 3.5 s at 200/s, 10.2 s at 50/s)
    res = edgeplace("calibrate", "--node", "edge-1", "--out", str(speeds), "--loops", "8000", "--rate", "200",
                    timeout=400)
    assert res.returncode == 0, res.stderr
    data = json.loads(speeds.read_text())
    assert set(data) == {"cloud-1", "edge-1"} and data["cloud-1"]["speed"] == 1.0
    # measured on these 2 shared cores: 1.17, 1.81 (CPU share), 1.62 and 2.18 (busy time, which counts waiting
    # for a CPU), 1.12 (the worker's own CPU, as now); the bound catches a quota taken as speed (0.5) or a
    # machine's contention taken as speed
    assert 0.5 < data["edge-1"]["speed"] < 2.0, data
    assert 1e-4 < data["edge-1"]["cost_s_per_record"] < 0.05
    res = edgeplace("calibrate", "--node", "edge-9", "--out", str(tmp_path / "x.json"))
    assert res.returncode == 1 and "no such node: edge-9" in res.stderr


def test_a_job_reaches_the_edge_without_shipping_flink_python_over_the_wan(shared_testbed, tmp_path):
    """The testbed's client is lean (its TaskManagers have flink-python): a deploy on the shaped link moves
    kilobytes, not the 42.6 MB jar, and needs no lifting of the shaping."""
    from experiments.testbed.testbed import wan_counters
    before = wan_counters(shared_testbed)["edge-1:down"]
    res = edgeplace("deploy", "--query", "counts", "--placement", write(tmp_path, "a.json", A), "--rate", STOPS_FAST)
    assert res.returncode == 0, res.stderr
    assert "lifted" not in res.stderr
    shipped = wan_counters(shared_testbed)["edge-1:down"] - before
    print(f"cloud → edge-1 during the deploy: {shipped:,} bytes")
    assert shipped < 5_000_000
    end(res.stdout.strip().splitlines()[-1], tmp_path)


class _FailsOnceOnANewJob(FlinkRest):
    """The testbed's REST API, except that the first read of a job other than `old` fails, as a JobManager
    that stops answering for a moment would make it (in the middle of verifying a redeploy)."""

    def __init__(self, base_url: str, old: str):
        super().__init__(base_url)
        self.old, self.failed = old, False

    def job(self, job_id: str) -> dict:
        if job_id != self.old and not self.failed:
            self.failed = True
            raise FlinkRestError(f"GET /jobs/{job_id}: HTTP 503 (injected)")
        return super().job(job_id)


def test_a_rest_error_while_verifying_a_redeploy_leaves_the_old_placement_running(shared_testbed, tmp_path):
    from experiments.environments import LocalTestbed
    from placement.realize import Realizer, Target
    job = deploy("--placement", write(tmp_path, "a.json", A), "--rate", STOPS_FAST)
    target = LocalTestbed().target
    flaky = Target(_FailsOnceOnANewJob(target.rest.base_url, job), target.conf_dir, target.tend)
    with pytest.raises(EdgeplaceError, match="rolled back") as err:
        Realizer(flaky, print).redeploy(job, Placement(B))
    assert flaky.rest.failed  # the injected error did happen, during verification
    back = re.search(r"job ([0-9a-f]{32}) runs the previous placement", str(err.value)).group(1)
    assert running_jobs() == [back]  # the half-verified new job was cancelled, not left beside it
    assert actual(REST, back, OPS) == {u: {tm} for u, tm in A.items()}
    end(back, tmp_path)


def test_ctrl_c_during_a_redeploy_leaves_a_job_running(shared_testbed, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from tests.conftest import TEST_ENV
    job = deploy("--placement", write(tmp_path, "a.json", A), "--rate", STOPS_FAST)
    run = subprocess.Popen([sys.executable, "-m", "experiments.cli", "redeploy", "--job", job, "--placement",
                            write(tmp_path, "b.json", B)], env={**os.environ, **TEST_ENV},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in run.stderr:  # Ctrl-C once the old job has stopped: the worst moment
        seen.append(line)
        if "with savepoint" in line:
            run.send_signal(signal.SIGINT)
            break
    rest = run.stderr.read()
    run.wait(timeout=180)
    assert run.returncode == 130, "".join(seen) + rest
    import psutil
    clients = [p.pid for p in psutil.process_iter(["cmdline"]) if "--restore-from-file" in (p.info["cmdline"] or [])]
    assert not clients, "a flink run client outlived the interrupted redeploy"
    jobs = running_jobs()
    assert len(jobs) == 1, "".join(seen) + rest
    where = actual(REST, jobs[0], OPS)
    assert where in ({u: {tm} for u, tm in A.items()}, {u: {tm} for u, tm in B.items()}), where
    end(jobs[0], tmp_path)
