"""The testbed on the real machine: registration, shaping, CPU quota, clean teardown (also after SIGKILL)."""
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
import requests

from experiments.testbed import cgroups, state as st
from experiments.testbed.linkprobe import measure_mbit
from experiments.testbed.spec import TestbedSpec, gateway
from experiments.testbed.testbed import set_wan, site_argv
from tests.conftest import TEST_ARGS, TEST_ENV, edgeplace

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.lifecycle]
REST = "http://127.0.0.1:18081"


def snapshot() -> dict:
    """What `down` must leave as it found: namespaces, links, qdiscs, edgeplace cgroups, Flink processes."""
    def out(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True).stdout
    flink = sorted(p.pid for p in psutil.process_iter(["name", "cmdline"])
                   if p.info["name"] == "java" or any(w in " ".join(p.info["cmdline"] or [])
                                                      for w in ("pyflink", "pyworkers")))
    return {"netns": out("ip", "netns", "list"),
            "links": sorted(l.split(":")[1].split("@")[0].strip() for l in out("ip", "-o", "link").splitlines()),
            "qdiscs": sorted(q for q in out("tc", "qdisc").splitlines() if "htb" in q or "epbr" in q),
            "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").rglob("edgeplace")),
            "flink_processes": flink}


@pytest.fixture
def clean_machine(root_required):
    """The machine as it was before; asserts it is the same afterwards."""
    edgeplace("testbed", "down")
    before = snapshot()
    yield before
    edgeplace("testbed", "down")
    assert snapshot() == before


def test_up_shapes_links_quotas_edges_and_down_restores_the_machine(clean_machine, tmp_path):
    res = edgeplace("testbed", "up", "--edge", "1", "--cloud", "1", "--wan-mbit", "8", *TEST_ARGS)
    assert res.returncode == 0, res.stderr
    state = st.load()
    print(res.stderr.strip().splitlines()[-1])

    # both TaskManagers registered, each with its own external resource = its slots
    tms = {t["id"]: t for t in requests.get(f"{REST}/taskmanagers", timeout=5).json()["taskmanagers"]}
    assert set(tms) == {"edge-1", "cloud-1"}
    assert tms["edge-1"]["totalResource"]["extendedResources"] == {"edge1": 2.0}
    assert tms["cloud-1"]["totalResource"]["extendedResources"] == {"cloud1": 4.0}

    # a bulk TCP transfer across the shaped link: 8 Mbit/s ± 20 %; unshaped it is clearly faster
    gw = gateway(TestbedSpec.from_dict(state.spec))
    shaped = measure_mbit(lambda argv: site_argv(state, "edge-1", argv), gw, seconds=3)
    set_wan(None, say=lambda m: None)
    unshaped = measure_mbit(lambda argv: site_argv(state, "edge-1", argv), gw, seconds=2)
    set_wan(8.0, say=lambda m: None)
    print(f"edge-1 → cloud: shaped {shaped:.2f} Mbit/s, unshaped {unshaped:.1f} Mbit/s")
    assert 6.4 <= shaped <= 9.6
    assert unshaped > 4 * shaped

    # the CLI's probe measures the same link; an unknown site is one clear line
    probe = edgeplace("testbed", "probe", "--site", "edge-1", "--seconds", "2")
    assert probe.returncode == 0, probe.stderr
    assert 6.4 <= float(probe.stdout.split("edge-1 → cloud:")[1].split("Mbit/s")[0]) <= 9.6, probe.stdout
    bad = edgeplace("testbed", "probe", "--site", "edge-9")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == ["edgeplace: error: unknown edge site 'edge-9'"]

    # status reports the link, its rate and the bytes that crossed it
    status = json.loads(edgeplace("testbed", "status", "--json", check=True).stdout)
    (link,) = status["links"]
    assert link["mbit"] == 8.0 and link["shaped"] and link["up_bytes"] > 2_000_000

    # the edge TaskManager is in its CPU group, limited to 0.5 cores, and a CPU burner placed the same
    # way gets no more than the quota
    proc = next(p for p in state.of_kind("process") if p["name"] == "edge-1")
    cg = Path(proc["cgroup"])
    assert cgroups.quota_cores(cg) == 0.5
    java = [p for p in psutil.Process(proc["pid"]).children(recursive=True) + [psutil.Process(proc["pid"])]
            if p.name() == "java"]
    assert java and all(p.pid in cgroups.pids(cg) for p in java)
    # beside it, in the same group, its pre-warmed Python worker server, whose parent is the TaskManager
    server = next(p for p in psutil.Process(java[0].pid).children() if "pyworkers" in " ".join(p.cmdline()))
    assert server.pid in cgroups.pids(cg)
    burner = subprocess.Popen(site_argv(state, "edge-1", [sys.executable, "-c", "while True: pass"]))
    try:
        time.sleep(1.0)  # let it join the group and start spinning
        p = psutil.Process(burner.pid)
        assert p.pid in cgroups.pids(cg)
        c0, t0 = sum(p.cpu_times()[:2]), time.monotonic()
        time.sleep(3.0)
        cores = (sum(p.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
    finally:
        burner.kill()
        burner.wait()
    print(f"CPU burner at edge-1 got {cores:.3f} cores (quota 0.5)")
    assert 0.2 < cores <= 0.55

    # up twice: one clear line, the running testbed untouched
    again = edgeplace("testbed", "up", *TEST_ARGS)
    assert again.returncode == 1 and "already up" in again.stderr.strip().splitlines()[-1]
    assert requests.get(f"{REST}/taskmanagers", timeout=5).ok

    # a second testbed (another home, subnet and ports) comes up and goes down beside it without touching
    # it: no shared CPU group, namespace or interface (their CPU groups were once one, and one testbed's
    # `down` ended the other's TaskManagers)
    other = {**os.environ, "EDGEPLACE_HOME": str(tmp_path / "other-home")}
    cli = [sys.executable, "-m", "experiments.cli", "testbed"]
    res = subprocess.run([*cli, "up", "--edge", "1", "--rest-port", "18091", "--rpc-port", "16133",
                          "--subnet", "10.213.9.0/24"], env=other, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert subprocess.run([*cli, "down"], env=other, capture_output=True, text=True, timeout=120).returncode == 0
    mine = [psutil.Process(p["pid"]) for p in state.of_kind("process")]
    assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in mine)
    assert {t["id"] for t in requests.get(f"{REST}/taskmanagers", timeout=5).json()["taskmanagers"]} == {
        "edge-1", "cloud-1"}
    assert all(Path(r["path"]).exists() for r in state.of_kind("cgroup"))

    # a crashed TaskManager: status says so, down still cleans everything (checked by the fixture)
    os.kill(java[0].pid, signal.SIGKILL)
    psutil.wait_procs(java, timeout=10)
    tm = next(t for t in json.loads(edgeplace("testbed", "status", "--json").stdout)["taskmanagers"]
              if t["id"] == "edge-1")
    assert tm["alive"] is False
    gone, _ = psutil.wait_procs([server], timeout=10)
    assert gone, "the Python worker server outlived its TaskManager"
    # heal restarts it in its group and namespace; it registers again; a second heal has nothing to do
    healed = edgeplace("testbed", "heal", timeout=180)
    assert healed.returncode == 0 and "restarted edge-1" in healed.stderr, healed.stderr
    tms = {t["id"]: t for t in requests.get(f"{REST}/taskmanagers", timeout=5).json()["taskmanagers"]}
    assert set(tms) == {"edge-1", "cloud-1"}
    # ... only once the JobManager had dropped the dead one: registered under a listed id, the new process
    # would replace its registration but not its heartbeat target, whose failure then closes the new one
    jm_log = next((Path(state.workdir) / "jobmanager" / "log").glob("*standalonesession*.log")).read_text()
    lines = jm_log.splitlines()
    closed = [i for i, ln in enumerate(lines) if "Closing TaskExecutor connection edge-1 " in ln]
    new_tm = next(i for i, ln in enumerate(lines) if f"ResourceID edge-1 ({tms['edge-1']['path']})" in ln)
    assert closed and max(closed) < new_tm, "\n".join(lines[i] for i in [*closed, new_tm])
    again = st.load()
    new = next(p for p in reversed(again.of_kind("process")) if p["name"] == "edge-1")
    assert new["pid"] != proc["pid"] and new["pid"] in cgroups.pids(cg)
    assert "every TaskManager is running" in edgeplace("testbed", "heal", timeout=120).stderr
    assert edgeplace("testbed", "down").returncode == 0
    assert st.load() is None


@pytest.mark.parametrize("kill_when", ["network", "processes"])
def test_down_after_up_was_sigkilled_midway(clean_machine, kill_when):
    up = subprocess.Popen([sys.executable, "-m", "experiments.cli", "testbed", "up", "--edge", "2",
                           *TEST_ARGS], env={**os.environ, **TEST_ENV},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until up has created some of what we want it killed among
        state = st.load() if st.state_file().exists() else None
        kinds = {r["kind"] for r in state.resources} if state else set()
        if (kill_when == "network" and "netns" in kinds) or (kill_when == "processes" and len(
                state.of_kind("process") if state else []) >= 2):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"up never reached the {kill_when} phase")
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert st.load().phase == "starting"
    res = edgeplace("testbed", "down")
    assert res.returncode == 0, res.stderr
    assert st.load() is None


def test_sigterm_during_bench_takes_down_the_testbed_it_started(clean_machine):
    """`bench` starts a testbed of its own when none is up; SIGTERM (as Ctrl-C) must end the job and take
    that testbed down, not leave it running."""
    bench = subprocess.Popen([sys.executable, "-m", "experiments.cli", "bench", "query", "counts", "--warmup", "60",
                              "--seconds", "60"], env={**os.environ, **TEST_ENV}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        running = []
        while time.monotonic() < deadline and bench.poll() is None and not running:
            state = st.load()
            if state is not None and state.phase == "up":
                try:
                    jobs = requests.get(f"http://127.0.0.1:{state.spec['rest_port']}/jobs/overview", timeout=2).json()
                    running = [j for j in jobs["jobs"] if j["state"] == "RUNNING"]
                except requests.RequestException:
                    pass
            time.sleep(0.5)
        assert running, f"bench never ran its job: {bench.stderr.read() if bench.poll() is not None else ''}"
    finally:
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=120)
    assert bench.returncode == 130, err
    assert "edgeplace: interrupted" in err and st.load() is None
