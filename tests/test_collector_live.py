"""Collector against real Flink on the shared testbed: true rates, selectivity, bytes, WAN truth, failures."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from collectors.profiles import profiles, wan_rates
from collectors.rest import FlinkRest
from collectors.store import load_samples
from experiments.testbed import state as st
from experiments.testbed.testbed import set_wan
from placement.flink import stop_with_savepoint
from placement.model import Placement
from tests.conftest import STOPS_FAST, TEST_ENV, edgeplace

pytestmark = [pytest.mark.live, pytest.mark.slow]
REST = FlinkRest("http://127.0.0.1:18081")


def deploy(tmp_path: Path, assignments: dict, *args: str) -> str:
    Placement(assignments).write(tmp_path / "p.json")
    res = edgeplace("deploy", "--query", "calibrate", "--placement", str(tmp_path / "p.json"), *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


def by_name(profs):
    return {p.name: p for p in profs}


def _run_calibrate(tmp_path: Path, rate: str, duration: str, **opt) -> tuple:
    job = deploy(tmp_path, {"src-edge-1": "edge-1", "work": "cloud-1", "sink": "cloud-1"}, "--rate", rate,
                 *[a for k, v in opt.items() for a in ("--opt", f"{k}={v}")])
    out = tmp_path / f"s-{rate}.parquet"
    res = edgeplace("collect", "--job", job, "--warmup", "10", "--duration", duration, "--interval", "5",
                    "--out", str(out))
    assert res.returncode == 0, res.stderr
    stop_with_savepoint(REST, job, tmp_path / "sp")
    return by_name(profiles(load_samples(out)[0]))["Work"], out


def _cpu_stall_seconds() -> float:
    """Seconds, summed since boot, in which some task of this machine waited for a CPU (Linux PSI)."""
    line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    return int(line.rsplit("total=", 1)[1]) / 1e6


@pytest.mark.first_on_shared_testbed
def test_true_processing_rate_of_an_operator_with_known_cost(shared_testbed, tmp_path):
    """The known cost is 20 ms of sleep per record at 30 records/s: the true rate is 50/s. It runs first on
    the shared testbed: a Python operator's busy time is the Java task's, which hands records to its Python
    worker and waits, so how records arrive shifts it. On TaskManagers that had run the other tests' jobs
    it read 39–43/s (CI, twice) and, after the adapt tests, 25.5/s at 50 ms per record (expected 20, more
    records came in than the source's rate); alone it reads 48.6–49.8/s. A low reading is measured once
    more; the printout shows the CPU wait of the machine (Linux PSI)."""
    cost_ms = 20.0
    for attempt in (1, 2):
        t0, stall0 = time.monotonic(), _cpu_stall_seconds()
        (run := tmp_path / f"try-{attempt}").mkdir()
        work, out = _run_calibrate(run, "30", "50", cost_ms=cost_ms, keep_every=2, payload=100)
        stalled = (_cpu_stall_seconds() - stall0) / (time.monotonic() - t0)
        print(f"Work: true rate {work.true_processing_rate:.1f}/s (expected {1000 / cost_ms:.0f}), busy "
              f"{work.busy:.0%}, observed {work.observed_in_rate:.1f}/s, interval spread {work.spread:.0%}; "
              f"tasks waited for a CPU {stalled:.0%} of the time")
        if work.true_processing_rate >= 0.9 * 1000 / cost_ms:
            break
    assert work.true_processing_rate == pytest.approx(1000 / cost_ms, rel=0.10)
    assert 0.3 < work.busy < 0.9  # not saturated: the rate really comes from busy time
    # sleeping is busy time, not CPU: the operator's own Python worker says how little CPU it took
    ((_, _, cores),) = work.workers
    assert 0 < cores < 0.25 * work.busy, (cores, work.busy)
    rep = edgeplace("profile", str(out), "--json")
    assert rep.returncode == 0 and any(o["name"] == "Work" for o in json.loads(rep.stdout)["operators"])


def test_selectivity_bytes_per_record_and_the_cpu_a_python_worker_reports(shared_testbed, tmp_path):
    # many records, so the ~1 bundle (200 records) a Python worker holds in flight is < 2 % of the window
    payload = 500
    work, out = _run_calibrate(tmp_path, "400", "40", cost_ms=1, busy=1, keep_every=4, payload=payload)
    print(f"Work: selectivity {work.selectivity:.4f} over {work.observed_in_rate * 40:.0f} records, "
          f"{work.bytes_out_per_record:.1f} B/record, worker {work.workers}")
    assert work.selectivity == pytest.approx(0.25, rel=0.02)
    expected_bytes = 8 + 2 + payload + 8  # long + string (varint length + ASCII) + double, Flink-serialised
    assert work.bytes_out_per_record == pytest.approx(expected_bytes, rel=0.10)
    # 1 ms of spinning per record: the CPU its worker reports is that (on 2 shared cores a spin by the wall
    # clock can take less CPU, never much more) plus Python's own per record
    ((tm, pid, cores),) = work.workers
    spin = work.observed_in_rate * 0.001
    assert tm == "cloud-1" and 0.75 * spin < cores < 1.25 * spin + 0.03, (cores, spin)
    gen = by_name(profiles(load_samples(out)[0]))["Events edge-1 gen"]
    assert [w[:1] for w in gen.workers] == [("edge-1",)] and gen.workers[0][1] != pid  # a worker per slot


def test_wan_bytes_match_the_shaped_link_and_flink_byte_counters(shared_testbed, tmp_path):
    set_wan(4.0, sites=["edge-1"], say=lambda m: None)
    try:
        job = deploy(tmp_path, {"src-edge-1": "edge-1", "work": "edge-1", "sink": "cloud-1"}, "--rate", "0",
                     "--opt", "cost_ms=0", "--opt", "keep_every=1", "--opt", "payload=2000")
        out = tmp_path / "w.parquet"
        res = edgeplace("collect", "--job", job, "--warmup", "15", "--duration", "30", "--interval", "5",
                        "--out", str(out))
        assert res.returncode == 0, res.stderr
        stop_with_savepoint(REST, job, tmp_path / "sp")
    finally:
        set_wan(8.0, sites=["edge-1"], say=lambda m: None)
    df = load_samples(out)[0]
    rates = wan_rates(df)
    wan = rates["edge-1:up"]
    crossing = by_name(profiles(df))["Work"].bytes_out_rate
    print(f"edge-1 up: tc {wan * 8 / 1e6:.3f} Mbit/s, Flink numBytesOut of Work {crossing * 8 / 1e6:.3f} Mbit/s, "
          f"TaskManagers' own traffic (sent, B/s): edge-1 {rates['edge-1:ctl-up']:.0f}, "
          f"cloud-1 {rates['cloud-1:ctl-up']:.0f}")
    assert wan == pytest.approx(4e6 / 8, rel=0.10)
    assert crossing == pytest.approx(wan, rel=0.10)
    # what the TaskManagers sent the JobManager, counted per socket: some (heartbeats, metrics, checkpoint
    # acks), and on edge-1 a small part of its link next to 4 Mbit/s of records
    assert 0 < rates["edge-1:ctl-up"] < 0.1 * wan and rates["cloud-1:ctl-up"] > 0


def test_unknown_job_and_unreachable_jobmanager_fail_in_one_line(shared_testbed, tmp_path):
    res = edgeplace("collect", "--job", "0" * 32, "--duration", "5", "--out", str(tmp_path / "x.parquet"))
    assert res.returncode == 1 and "unknown" in res.stderr.strip().splitlines()[-1]
    res = edgeplace("collect", "--job", "0" * 32, "--rest", "http://127.0.0.1:9", "--duration", "5",
                    "--out", str(tmp_path / "x.parquet"))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "unreachable" in lines[0]


def _jobmanager_pid() -> int:
    p = next(p for p in st.load().of_kind("process") if p["name"] == "jobmanager")
    proc = psutil.Process(p["pid"])
    return next(q.pid for q in [proc, *proc.children(recursive=True)] if q.name() == "java")


def _collect_in_background(job: str, out: Path, duration: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments.cli", "collect", "--job", job, "--duration",
                             str(duration), "--interval", "1", "--out", str(out)], env={**os.environ, **TEST_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_samples(out: Path, polls: int, timeout: float = 60) -> None:
    """Until `collect` (which writes as it goes) has stored `polls` polls with records counted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists():
            df, _ = load_samples(out)
            if df[df["metric"] == "numRecordsOut"]["time"].nunique() >= polls:
                return
        time.sleep(0.5)
    pytest.fail(f"collect stored fewer than {polls} polls in {timeout:.0f} s")


def test_paused_jobmanager_leaves_a_marked_gap(shared_testbed, tmp_path):
    job = deploy(tmp_path, {"src-edge-1": "edge-1", "work": "cloud-1", "sink": "cloud-1"}, "--rate", STOPS_FAST,
                 "--opt", "cost_ms=1")
    out = tmp_path / "g.parquet"
    coll = _collect_in_background(job, out, 25)
    _wait_for_samples(out, 2)
    jm = _jobmanager_pid()
    os.kill(jm, signal.SIGSTOP)
    time.sleep(6)  # the pause itself: 6 s without answers
    os.kill(jm, signal.SIGCONT)
    _, err = coll.communicate(timeout=120)
    assert coll.returncode == 0, err
    df, meta = load_samples(out)
    gaps = df[df["metric"] == "gap"]
    assert len(gaps) >= 1 and gaps["value"].max() >= 3
    assert len(meta["gaps"]) >= 1
    after = df[(df["metric"] == "numRecordsOut") & (df["time"] > gaps["time"].max() + 0.5)]["time"].nunique()
    assert after >= 3, "sampling did not go on after the gap"  # polls after the one that closed the gap
    stop_with_savepoint(REST, job, tmp_path / "sp")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_collect_keeps_what_it_sampled(shared_testbed, tmp_path, sig):
    job = deploy(tmp_path, {"src-edge-1": "edge-1", "work": "cloud-1", "sink": "cloud-1"}, "--rate", STOPS_FAST,
                 "--opt", "cost_ms=1")
    out = tmp_path / "i.parquet"
    coll = _collect_in_background(job, out, 120)
    _wait_for_samples(out, 3)
    coll.send_signal(sig)
    _, err = coll.communicate(timeout=60)
    assert coll.returncode == 130 and "samples taken so far are in" in err, err
    df, meta = load_samples(out)
    assert df[df["metric"] == "numRecordsOut"]["time"].nunique() >= 3 and meta["job"] == job
    stop_with_savepoint(REST, job, tmp_path / "sp")


@pytest.mark.destructive
def test_killed_jobmanager_ends_collect_and_keeps_samples(shared_testbed, tmp_path):
    job = deploy(tmp_path, {"src-edge-1": "edge-1", "work": "cloud-1", "sink": "cloud-1"}, "--rate", STOPS_FAST,
                 "--opt", "cost_ms=1")
    out = tmp_path / "k.parquet"
    coll = _collect_in_background(job, out, 120)
    _wait_for_samples(out, 2)
    os.kill(_jobmanager_pid(), signal.SIGKILL)
    _, err = coll.communicate(timeout=120)
    assert coll.returncode == 1
    assert "collection stopped early" in err.strip().splitlines()[-1] and "has not answered" in err
    df, _ = load_samples(out)
    assert (df["metric"] == "numRecordsOut").sum() > 0
