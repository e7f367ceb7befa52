"""Ansible provisioning: lint and syntax of every playbook, the TaskManager template against the testbed's rules,
and a real run over SSH into testbed namespaces (provision, start, WAN shaping, idempotence, stop)."""
from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import pandas as pd
import psutil
import pytest
import requests
import yaml

from experiments import cluster
from experiments.slimwheel import HOST_UNUSED
from experiments.testbed import flinkconf, network, sshhosts
from experiments.testbed.spec import TestbedSpec, members
from placement import flinkdist
from tests.conftest import STOPS_FAST, edgeplace
from tests.counts_sink import assert_exact, read_sink, wait_rows

# ~420 MB of wheels for the hosts, built once per interpreter version with the hosts' own interpreter and
# kept (in root's private cache, not a shared /tmp path)
HOST_PYTHON = sshhosts.host_python()
HOST_VERSION = subprocess.run([HOST_PYTHON, "-c", "import platform; print(platform.python_version())"],
                              capture_output=True, text=True, check=True).stdout.strip()
WHEELHOUSE = Path.home() / ".cache" / "edgeplace" / f"test-wheelhouse-{HOST_VERSION}"

ANSIBLE = cluster.ANSIBLE_DIR
BIN = Path(sys.executable).parent
SSH_ARGS = ["--ssh-hosts", "--edge", "2", "--unshaped", "--edge-cpu", "1.0", "--subnet", "10.213.9.0/24",
            "--rest-port", "18091", "--rpc-port", "16133"]


def test_ansible_lint_production_profile_passes():
    """Lint's unskippable syntax-check rule runs `ansible-playbook --syntax-check` on every playbook (an unknown
    play keyword in wan.yml or cluster-stop.yml fails this test), so no separate syntax test is needed."""
    proc = subprocess.run([str(BIN / "ansible-lint"), "--profile", "production", "--offline"], cwd=ANSIBLE,
                          capture_output=True, text=True, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in (proc.stdout + proc.stderr)


def _defaults() -> dict:
    return yaml.safe_load((ANSIBLE / "roles/flink/defaults/main.yml").read_text())


def _render(template: str, **variables) -> str:
    """One of the flink role's templates, rendered strictly (a variable it needs and lacks fails)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string((ANSIBLE / "roles/flink/templates" / template).read_text()).render(**variables)


def test_taskmanager_template_follows_the_testbed_rules():
    """The provisioned TaskManager config has every key the local testbed sets, with the same values for
    the rules that make placement work (unique id and resource, debloat, exit-on-OOM, segment size)."""
    spec = TestbedSpec(edge=1, cloud=1, subnet="10.213.9.0/24")
    m = next(x for x in members(spec) if x.is_edge)
    ours = flinkconf.taskmanager(spec, m, "-Dx=1", "/t")
    text = _render(
        "taskmanager.yaml.j2",
        flink_java_opts="-Dx=1", flink_jobmanager_address="10.213.9.1", flink_rpc_port=spec.rpc_port,
        flink_rest_port=spec.rest_port, flink_resource_id=m.id, flink_address=m.host, flink_slots=m.slots,
        flink_tm_memory_mb=m.memory_mb, flink_segment_size="4kb", flink_resource_name=m.resource,
        flink_root="/opt/edgeplace", flink_site=m.site, flink_heartbeat_timeout_ms=flinkconf.HEARTBEAT_TIMEOUT_MS,
        flink_python_parent_first=_defaults()["flink_python_parent_first"])
    theirs = yaml.safe_load(text)
    assert set(ours) - {"rest.address"} <= set(theirs)
    for key in ("taskmanager.resource-id", "taskmanager.host", "taskmanager.numberOfTaskSlots",
                "taskmanager.jvm-exit-on-oom", "taskmanager.network.memory.buffer-debloat.enabled",
                "taskmanager.memory.segment-size", "external-resources", f"external-resource.{m.resource}.amount",
                "taskmanager.memory.process.size", "jobmanager.rpc.port", "env.java.opts.all",
                "classloader.parent-first-patterns.additional", "pekko.ask.timeout", "taskmanager.slot.timeout",
                "cluster.registration.error-delay"):
        assert theirs[key] == ours[key], key


def test_jobmanager_template_follows_the_testbed_rules():
    """The provisioned JobManager times out as the local testbed's: heartbeats, and the asks of its REST
    handlers and metric fetcher (a fetch that waits on a dead TaskManager holds every metric still)."""
    spec = TestbedSpec(edge=1, cloud=1, subnet="10.213.9.0/24")
    ours = flinkconf.jobmanager(spec, "-Dx=1", "/t")
    text = _render(
        "jobmanager.yaml.j2",
        flink_java_opts="-Dx=1", flink_address="10.213.9.1", flink_rpc_port=spec.rpc_port, flink_jm_memory_mb=1024,
        flink_rest_port=spec.rest_port, flink_python_parent_first="x", flink_root="/opt/edgeplace",
        flink_heartbeat_timeout_ms=_defaults()["flink_heartbeat_timeout_ms"])
    theirs = yaml.safe_load(text)
    for key in ("heartbeat.timeout", "web.timeout", "jobmanager.execution.failover-strategy", "web.submit.enable",
                "parallelism.default", "jobmanager.rpc.port"):
        assert theirs[key] == ours[key], key


def test_flink_runs_as_its_own_user_with_no_way_to_gain_privileges():
    """The systemd unit (real hosts) runs Flink as the role's unprivileged user; the daemon scripts (hosts
    without systemd, as the testbed's) start and stop it through setpriv as that user."""
    defaults = _defaults()
    assert defaults["flink_user"] not in ("root", "") and defaults["flink_user"] == sshhosts.FLINK_USER
    unit = _render(
        "edgeplace-flink.service.j2",
        item="taskmanager", flink_resource_id="pi-1", flink_root="/opt/edgeplace", flink_lib_dir="/opt/edgeplace/lib",
        flink_home="/opt/edgeplace/venv/lib/pyflink", flink_user="edgeplace-flink",
        flink_data_dir="/opt/edgeplace/data", flink_taskmanager_restart_s=defaults["flink_taskmanager_restart_s"])
    lines = set(unit.splitlines())
    assert {"User=edgeplace-flink", "Group=edgeplace-flink", "NoNewPrivileges=true", "PrivateTmp=true"} <= lines
    # a TaskManager that died is restarted only after the JobManager dropped it: two heartbeats (Flink's
    # heartbeat.interval, 10 s by default) after it died
    (restart,) = [int(ln.split("=")[1]) for ln in lines if ln.startswith("RestartSec=")]
    assert restart > 2 * 10
    tasks = yaml.safe_load((ANSIBLE / "roles/flink/tasks/daemon.yml").read_text())
    argvs = [t["ansible.builtin.command"]["argv"] for t in tasks if "ansible.builtin.command" in t]
    assert len(argvs) == 2 and all(a.startswith("{{ flink_as_user + ") for a in argvs)
    as_user = yaml.safe_load((ANSIBLE / "roles/flink/vars/main.yml").read_text())["flink_as_user"]
    assert as_user[0] == "setpriv" and "--reuid={{ flink_user }}" in as_user and as_user[-1] == "--"


def test_tc_module_uses_the_testbed_queue_and_parses_rates():
    sys.path.insert(0, str(ANSIBLE / "roles/wan/library"))
    try:
        import edgeplace_tc as tc
    finally:
        sys.path.pop(0)
    assert tc.rate_bit("class htb 1:10 root leaf 10: prio 0 rate 250Kbit ceil 250Kbit") == 250e3
    assert tc.rate_bit("class htb 1:10 rate 8Mbit ceil 8Mbit") == 8e6
    for mbit in (0.1, 0.25, 1, 3.6, 8, 20, 100):  # the same queue as the local testbed's links
        assert tc.leaf_limit_bytes(mbit) == network.leaf_limit_bytes(mbit), mbit
    assert tc.leaf_limit_bytes(100) == 1_250_000


def test_missing_or_jobmanagerless_inventory_is_one_clear_error(tmp_path):
    res = edgeplace("cluster", "start", "--inventory", str(tmp_path / "nope.yml"))
    assert res.returncode == 1 and "does not exist" in res.stderr
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"edge": {"hosts": {"pi-1": {"ansible_host": "10.0.0.9"}}}}}}))
    res = edgeplace("cluster", "start", "--inventory", str(inv))
    assert res.returncode == 1 and "no host in group 'cloud'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_job_commands_reuse_the_facts_of_an_unchanged_inventory_and_cluster(tmp_path, monkeypatch):
    from experiments.environments import _matches
    monkeypatch.setenv("EDGEPLACE_HOME", str(tmp_path / "home"))
    inv = tmp_path / "inv.yml"
    hosts = {"cloud-1": {"ansible_host": "10.0.0.8"}}
    inv.write_text(yaml.safe_dump({"all": {"children": {"cloud": {"hosts": hosts}}}}))
    gathered = {"nodes": [{"id": "cloud-1", "site": "cloud", "slots": 4, "jobmanager": True, "host": "10.0.0.8"}],
                "rest_port": 18091}

    def facts_yml(action, inventory, extra, say):  # what facts.yml leaves: the cluster file
        assert action == "facts"
        Path(extra["cluster_file"]).write_text(json.dumps(gathered))
    monkeypatch.setattr(cluster, "run_playbook", facts_yml)
    assert cluster.kept_facts(str(inv), 3600) is None  # never gathered
    assert cluster.facts(str(inv), str(tmp_path / "c.json"), say=lambda m: None) == gathered
    kept = cluster.kept_facts(str(inv), 3600)
    assert kept is not None and kept["nodes"] == gathered["nodes"]
    assert cluster.kept_facts(str(inv), 0) is None  # too old
    inv.write_text(yaml.safe_dump({"all": {"children": {"cloud": {"hosts": hosts}}, "vars": {"flink_slots": 8}}}))
    assert cluster.kept_facts(str(inv), 3600) is None  # the inventory changed
    cluster.facts(str(inv), str(tmp_path / "c.json"), say=lambda m: None)
    assert cluster.kept_facts(str(inv), 3600) is not None
    cluster.forget_facts(str(inv))  # as `cluster start/stop/provision` do
    assert cluster.kept_facts(str(inv), 3600) is None
    # and the JobManager must list the same TaskManagers with the same slots
    assert _matches(gathered, [{"id": "cloud-1", "slotsNumber": 4}])
    assert not _matches(gathered, [{"id": "cloud-1", "slotsNumber": 2}])
    assert not _matches(gathered, [{"id": "cloud-1", "slotsNumber": 4}, {"id": "edge-1", "slotsNumber": 2}])
    assert not _matches(gathered, None)  # it does not answer


REAL_CONFIG = """
name = "real"
policies = ["cloud-only"]
bandwidths_mbit = [2]
repetitions = 1
warmup_s = 8
duration_s = 10
[cluster]
kind = "ansible"
inventory = "{inventory}"
[[queries]]
name = "nexmark"
args = ["--opt", "query=q1"]
"""


def _flink_in(netns: str) -> list[int]:
    return [p for p in network.netns_pids(netns)
            if psutil.pid_exists(p) and psutil.Process(p).name() == "java"]


def _deploy_where_redeploy_keep_state(inv: str, tmp_path: Path) -> None:
    """The job commands on the cluster of an inventory: deploy, where, redeploy (state kept), end."""
    from placement.model import Placement
    a = {"src-edge-1": "edge-1", "parse": "edge-1", "count": "cloud-1", "sink": "cloud-1"}
    b = {**a, "parse": "cloud-1", "count": "edge-1"}
    for name, asg in (("a", a), ("b", b)):
        Placement(asg).write(tmp_path / f"{name}.json")
    # Flink writes in the cluster's data dir only (it runs as its own user); the hosts share this machine's
    # file system, so the sink's files are readable here
    data = Path(yaml.safe_load(Path(inv).read_text())["all"]["vars"]["flink_data_dir"])
    out = data / "counts-out"
    res = edgeplace("deploy", "-i", inv, "--query", "counts", "--placement", str(tmp_path / "a.json"),
                    "--rate", STOPS_FAST, "--out", str(out), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    job = res.stdout.strip().splitlines()[-1]
    res = edgeplace("where", "-i", inv, "--job", job, "--out", str(tmp_path / "where.json"), timeout=300)
    assert res.returncode == 0 and Placement.read(tmp_path / "where.json").assignments == a, res.stderr
    assert "cluster facts of" in res.stderr  # gathered once (`cluster facts`), not again by each command
    wait_rows(out, 200, timeout=120)
    res = edgeplace("redeploy", "-i", inv, "--job", job, "--placement", str(tmp_path / "b.json"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    new = res.stdout.strip().splitlines()[-1]
    res = edgeplace("where", "-i", inv, "--job", new, "--out", str(tmp_path / "where.json"), timeout=300)
    assert res.returncode == 0 and Placement.read(tmp_path / "where.json").assignments == b, res.stderr
    wait_rows(out, len(read_sink(out)) + 200, timeout=120)
    res = edgeplace("redeploy", "-i", inv, "--job", new, "--placement", str(tmp_path / "a.json"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    from collectors.rest import FlinkRest
    from placement.flink import stop_with_savepoint
    host = yaml.safe_load(Path(inv).read_text())["all"]["children"]["cloud"]["hosts"]["cloud-1"]["ansible_host"]
    stop_with_savepoint(FlinkRest(f"http://{host}:18091"), res.stdout.strip().splitlines()[-1], data / "sp",
                        make=False)
    assert {p.owner() for p in data.iterdir()} == {sshhosts.FLINK_USER}  # Flink made them, as its user
    assert_exact(read_sink(out))


def _runs_as_flinks_own_user(state, inv: str) -> None:
    """Every Flink process (JobManager, TaskManagers) runs as the unprivileged user the role made, and that
    user can change neither the code it runs nor its configuration."""
    uid = pwd.getpwnam(sshhosts.FLINK_USER).pw_uid
    assert uid != 0
    procs = [psutil.Process(p) for h in state.ssh_hosts for p in _flink_in(h["netns"])]
    assert len(procs) == 3 and {p.uids().real for p in procs} == {uid}, [(p.pid, p.uids()) for p in procs]
    hostvars = yaml.safe_load(Path(inv).read_text())["all"]["children"]["cloud"]["hosts"]["cloud-1"]
    root = Path(hostvars["flink_root"])
    for path in (root / "venv", root / "venv" / "bin" / "python", root / "jobmanager" / "conf" / "config.yaml",
                 root / "lib"):
        st_ = path.stat()
        assert st_.st_uid == 0 and not st_.st_mode & 0o022, (path, oct(st_.st_mode))


def _wan_changed(inv: str, *args: str) -> int:
    """`cluster wan` with `args`; the number of tasks it changed (the edge host's recap line)."""
    res = edgeplace("cluster", "wan", "-i", inv, *args, timeout=300)
    assert res.returncode == 0, res.stderr
    recap = [l for l in res.stderr.splitlines() if " ok=" in l]
    assert len(recap) == 1, res.stderr  # one edge host
    return int(recap[0].split("changed=")[1].split()[0])


@pytest.mark.live
@pytest.mark.slow
@pytest.mark.lifecycle
def test_real_run_over_ssh_into_testbed_namespaces(root_required, tmp_path):
    """Two hosts = two namespaces with sshd; provision (offline wheelhouse), start, see both TaskManagers
    registered with their resources, shape and clear the WAN, re-provision with changed=0, stop."""
    edgeplace("testbed", "down")
    res = edgeplace("testbed", "up", *SSH_ARGS)
    assert res.returncode == 0, res.stderr
    from experiments.testbed import state as st
    state = st.load()
    inv = str(Path(state.workdir) / "inventory.yml")
    hosts = {h["addr"]: h for h in state.ssh_hosts}
    try:
        wheelhouse = WHEELHOUSE  # kept across runs: the hosts have no route to PyPI
        t0 = time.monotonic()
        res = edgeplace("cluster", "provision", "-i", inv, "--wheelhouse", str(wheelhouse), "--wheel-python",
                        HOST_PYTHON, timeout=1800)
        assert res.returncode == 0, res.stderr[-3000:]
        print(f"first provision of 2 hosts: {time.monotonic() - t0:.0f} s")
        # installed, the wheelhouse is not kept on the hosts
        installs = sshhosts.hosts_root("10.213.9.0/24")
        assert len(list(installs.glob("*/venv"))) == 2 and not list(installs.glob("*/wheelhouse*"))
        # each host's Flink lib: the distribution's lib/ plus flink-python, as the local testbed's (not all of
        # opt/), less what hosts never load (the Table planner)
        dist = flinkdist.flink_home()
        want = {j.name for j in (dist / "lib").glob("*.jar") if not f"pyflink/lib/{j.name}".startswith(HOST_UNUSED)} | \
            {j.name for j in (dist / "opt").glob("flink-python*")}
        for lib in installs.glob("*/lib"):
            assert {j.name for j in lib.iterdir()} == want and all(j.resolve().is_file() for j in lib.iterdir())
        res = edgeplace("cluster", "start", "-i", inv, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        jm = state.ssh_hosts[0]["addr"]
        tms = requests.get(f"http://{jm}:18091/taskmanagers", timeout=5).json()["taskmanagers"]
        assert {t["id"]: t["totalResource"]["extendedResources"] for t in tms} == \
            {"cloud-1": {"cloud1": 4.0}, "edge-1": {"edge1": 2.0}}
        assert {t["id"]: t["slotsNumber"] for t in tms} == {"cloud-1": 4, "edge-1": 2}
        _runs_as_flinks_own_user(state, inv)
        # facts see the CPU quota each host runs under (--edge-cpu 1.0 of this machine's CPUs), not its CPUs
        res = edgeplace("cluster", "facts", "-i", inv, "--out", str(tmp_path / "cluster.json"), timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        nodes = json.loads((tmp_path / "cluster.json").read_text())["nodes"]
        # (inside a namespace /sys hides the cgroup files, so the hosts measure it: within 15 %)
        assert {n["id"] for n in nodes} == {"cloud-1", "edge-1"}
        assert all(float(n["cores"]) == pytest.approx(1.0, rel=0.15) for n in nodes), nodes
        assert all(int(n["cpus"]) == len(os.sched_getaffinity(0)) for n in nodes)

        # an experiment targets the cluster through its inventory: deploy, shape with wan.yml, WAN over SSH
        cfg = tmp_path / "real.toml"
        cfg.write_text(REAL_CONFIG.format(inventory=inv))
        res = edgeplace("run", str(cfg), "--results", str(tmp_path / "results"), timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        cells = pd.read_parquet(next((tmp_path / "results").glob("real-*/cells.parquet")))
        assert len(cells) == 1 and cells.measured_rate[0] > 0
        placed = json.loads(cells.placement[0])["assignments"]
        assert placed["src-edge-1"] == "edge-1" and {placed[u] for u in ("bids", "convert", "sink")} == {"cloud-1"}
        # 2 Mbit/s carried the events across the shaped uplink: ≈ payload bytes per event crossed it
        assert 50 < cells.wan_bytes_per_event[0] < 400
        assert cells.measured_rate[0] * cells.wan_bytes_per_event[0] * 8 < 2.0e6 * 1.1
        # CPU per TaskManager was read over SSH, on both hosts: what each process tree used, within its quota
        cores = json.loads(cells.cpu_cores[0])
        assert set(cores) == {"cloud-1", "edge-1"} and all(0 < c <= 1.15 for c in cores.values()), cores
        # the report describes the cluster that ran (its facts, not the testbed defaults) and draws what it
        # measured there (latency is measured here, where the hosts' sink files are on this machine's file system)
        root = next((tmp_path / "results").glob("real-*"))
        ran = json.loads((root / "metadata.json").read_text())["cluster"]
        assert ran["kind"] == "ansible"
        assert {n["id"]: n["host"] for n in ran["nodes"]} == {n["id"]: n["host"] for n in nodes}
        assert all(float(n["cores"]) == pytest.approx(1.0, rel=0.15) for n in ran["nodes"]), ran  # facts, again
        res = edgeplace("report", str(root))
        assert res.returncode == 0, res.stderr
        report = (root / "report.md").read_text()
        host = next(n["host"] for n in nodes if n["id"] == "edge-1")
        assert f"edge-1 on {host} (site edge-1" in report
        assert "CPU per TaskManager" not in report.split("not measured there: ")[-1].split(".")[0]
        assert (root / "figures" / "cpu_per_node.png").exists()
        assert (root / "figures" / "latency.png").exists() == cells.latency_p50.notna().any() == ("p50_ms" in report)

        _deploy_where_redeploy_keep_state(inv, tmp_path)

        assert cluster.facts_cache(inv).exists()
        res = edgeplace("cluster", "start", "-i", inv, timeout=600)
        recaps = [l for l in res.stderr.splitlines() if "ok=" in l]
        assert res.returncode == 0 and len(recaps) == 2 and all("changed=0" in l for l in recaps), res.stderr
        assert not cluster.facts_cache(inv).exists()  # a (re)start forgets them

        edge = state.ssh_hosts[1]
        assert _wan_changed(inv, "--mbit", "4") == 1
        shown = subprocess.run(["ip", "netns", "exec", edge["netns"], "tc", "class", "show", "dev", edge["ifname"]],
                               capture_output=True, text=True).stdout
        assert "htb 1:10" in shown and "rate 4Mbit" in shown
        assert _wan_changed(inv, "--mbit", "4") == 0  # shaping twice at the same rate changes nothing
        assert _wan_changed(inv, "--mbit", "3") == 1
        assert _wan_changed(inv, "--clear") == 1
        shown = subprocess.run(["ip", "netns", "exec", edge["netns"], "tc", "qdisc", "show", "dev", edge["ifname"]],
                               capture_output=True, text=True).stdout
        assert "htb" not in shown
        assert _wan_changed(inv, "--clear") == 0

        t0 = time.monotonic()
        res = edgeplace("cluster", "provision", "-i", inv, "--wheelhouse", str(wheelhouse), timeout=1200)
        assert res.returncode == 0, res.stderr[-3000:]
        print(f"provision with nothing to change: {time.monotonic() - t0:.0f} s")
        recap = [l for l in res.stderr.splitlines() if " ok=" in l]
        assert len(recap) == 2 and all("changed=0" in l for l in recap), recap

        res = edgeplace("cluster", "stop", "-i", inv, timeout=300)
        assert res.returncode == 0, res.stderr
        assert not _flink_in(state.ssh_hosts[0]["netns"]) and not _flink_in(edge["netns"])
    finally:
        res = edgeplace("testbed", "down")
    assert res.returncode == 0, res.stderr
    assert not any(network.netns_exists(h["netns"]) for h in hosts.values())
    assert st.load() is None
    # nothing of the hosts is left: their installs, and the user provisioning made for Flink
    assert not sshhosts.hosts_root("10.213.9.0/24").exists() and not sshhosts.user_exists(sshhosts.FLINK_USER)
