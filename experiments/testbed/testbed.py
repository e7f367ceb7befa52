"""`edgeplace testbed up/down/heal/status`: a real Flink session cluster with emulated edge sites."""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import psutil

from common.errors import EdgeplaceError
from common.say import Say
from experiments.testbed import cgroups, flinkconf, network, pyworkers, state as st
from experiments.testbed.processes import ProcRef, terminate, with_descendants
from experiments.testbed.spec import TestbedSpec, members
from placement import flinkdist
from placement.checks import ready_ids
from experiments.testbed.launch import flink_lib, start, start_ssh_hosts, wait_registered, write_conf
from experiments.testbed.links import NETEM_MISSING, build_network, check_subnet_unused, set_wan, site_argv, wan_counters
from experiments.testbed.state import client_conf_dir, require, rest_of
from experiments.testbed.teardown import record_workers, teardown

__all__ = ["up", "down", "heal", "status", "require", "rest_of", "client_conf_dir", "set_wan", "site_argv",
           "wan_counters", "NETEM_MISSING"]


def up(spec: TestbedSpec, say: Say = print, timeout: float = 90.0) -> st.State:
    """Start the testbed; return its state once every TaskManager is registered, or clean up and raise."""
    spec.validate()
    with st.locked():
        _clear_leftovers(say)
        mode, why = _choose_mode(spec)
        if mode == "loopback" and spec.ssh_hosts:
            raise EdgeplaceError(f"--ssh-hosts needs network namespaces, but {why}")
        if mode == "loopback":
            spec = TestbedSpec(**{**spec.to_dict(), "isolate": False})
            say(f"WARNING: {why}: all TaskManagers run on loopback, with NO WAN shaping and NO CPU quota")
        if mode == "isolated":
            check_subnet_unused(spec)
        for port, what in ((spec.rest_port, "--rest-port"), (spec.rpc_port, "--rpc-port")):
            if not _port_free(port):
                raise EdgeplaceError(f"port {port} ({what}) is in use; pick another or stop what holds it")
        state = st.State(spec=spec.to_dict(), mode=mode, owner_pid=os.getpid(), started_at=time.time(),
                         workdir=str(st.home() / "testbed" / "run"))
        if why and mode == "loopback":
            state.warnings.append(why)
        state.save()
        try:
            _build(spec, state, say, timeout)
        except BaseException as exc:
            say(f"testbed up failed: {exc}" if isinstance(exc, EdgeplaceError) else
                f"testbed up interrupted ({type(exc).__name__}); cleaning up")
            state.phase = "failed"
            state.save()
            teardown(state, say)
            raise
        return state


def _build(spec: TestbedSpec, state: st.State, say: Say, timeout: float) -> None:
    t0 = time.monotonic()
    workdir = Path(state.workdir)
    state.record("dir", path=str(workdir))
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if spec.isolate:
        build_network(spec, state, say)
    if spec.ssh_hosts:
        start_ssh_hosts(spec, state, say)
        return
    java_opts = flinkdist.shipped_java_opts()
    python = flinkdist.python_executable()
    launcher = workdir / "python-worker"
    launcher.write_text(pyworkers.launcher_script(python))
    launcher.chmod(0o755)
    write_conf(workdir / "client", flinkconf.client(spec, java_opts, python, str(launcher)))
    flinkdist.make_lean_client(workdir / "client")  # jobs ship no flink-python: the TaskManagers have it
    flinkdist.python_lib(flink_lib(state))

    jm_dir = workdir / "jobmanager"
    write_conf(jm_dir, flinkconf.jobmanager(spec, java_opts, str(jm_dir / "tmp")))
    start(state, "jobmanager", "jobmanager", jm_dir, spec.isolate, None, None,
           extra_env={"FLINK_LIB_DIR": str(flink_lib(state))})
    for m in members(spec):
        d = workdir / m.id
        write_conf(d, flinkconf.taskmanager(spec, m, java_opts, str(d / "tmp")))
        start(state, m.id, "taskmanager", d, spec.isolate, m.netns, m.cpu_cores)
        state.taskmanagers.append({"id": m.id, "site": m.site, "host": m.host, "slots": m.slots,
                                   "resource": m.resource, "netns": m.netns, "cpu_cores": m.cpu_cores})
    state.save()
    say(f"started JobManager and {len(state.taskmanagers)} TaskManagers; waiting for registration")
    wait_registered(state, timeout)
    state.phase = "up"
    state.up_seconds = round(time.monotonic() - t0, 1)
    state.save()
    say(f"testbed up in {state.up_seconds} s: REST http://127.0.0.1:{spec.rest_port}, "
        f"{spec.edge} edge + {spec.cloud} cloud TaskManagers")


def _choose_mode(spec: TestbedSpec) -> tuple[str, str]:
    if not spec.isolate:
        return "loopback", "isolation switched off (--no-isolation)"
    if os.geteuid() != 0:
        return "loopback", "not running as root, so no network namespaces, tc shaping or cgroups"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "loopback", "iproute2 (ip, tc) is not installed"
    if cgroups.version() is None:
        return "loopback", "no cgroup cpu controller is mounted"
    probe = "epprobe" + str(os.getpid() % 10000)
    if not network.ok_netns(probe):
        return "loopback", "network namespaces cannot be created here"
    return "isolated", ""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _clear_leftovers(say: Say) -> None:
    old = st.load()
    if old is None:
        return
    if old.phase == "up":
        raise EdgeplaceError("a testbed is already up (see `edgeplace testbed status`); "
                             "run `edgeplace testbed down` first")
    if psutil.pid_exists(old.owner_pid) and old.owner_pid != os.getpid():
        raise EdgeplaceError(f"another `testbed up` (PID {old.owner_pid}) is still starting a testbed")
    say(f"found leftovers of a testbed that did not come up ({old.phase}); removing them first")
    teardown(old, say)


def heal(state: st.State, say: Say = print, timeout: float = 90.0, settle: float = 30.0) -> list[str]:
    """Restart TaskManagers that died (Flink's Python runner can take a TaskManager down when a job is
    cancelled). A TaskManager that is alive but not registered with its external resource is given `settle`
    seconds (it may be exiting, or registering: after a heartbeat timeout it registers anew, and reports its
    resource a moment later); after that it is ended by its recorded PID and restarted too.
    Each is restarted only once the JobManager has dropped the dead one (`_wait_dropped`).
    Returns the ids restarted, once they are registered again."""
    spec = TestbedSpec.from_dict(state.spec)
    rest = rest_of(state, timeout=2.0, retries=0)
    deadline = time.monotonic() + settle
    while True:
        latest = {p["name"]: p for p in state.of_kind("process")}
        alive = {m.id: ProcRef.recorded(latest[m.id]).alive() for m in members(spec)}
        try:
            registered = ready_ids(rest.taskmanagers())
        except Exception:
            registered = set()
        limbo = [i for i, p in alive.items() if p is not None and i not in registered]
        if not limbo or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    broken = [m for m in members(spec) if alive[m.id] is None or m.id in limbo]
    if not broken:
        return []
    with st.locked():
        for m in broken:
            if alive[m.id] is not None:
                terminate(with_descendants(alive[m.id]))
            say(f"TaskManager {m.id} is not running; restarting it")
        _wait_dropped(rest, [m.id for m in broken], say)
        for m in broken:
            start(state, m.id, "taskmanager", Path(state.workdir) / m.id, spec.isolate, m.netns, m.cpu_cores)
        wait_registered(state, timeout)
    return [m.id for m in broken]


# the ResourceManager drops a dead TaskManager after two failed heartbeat RPCs (10 s apart), or at the latest
# when its heartbeat times out
DROP_TIMEOUT_S = flinkconf.HEARTBEAT_TIMEOUT_MS / 1000 + 15


def _wait_dropped(rest, ids: list[str], say: Say, timeout: float = DROP_TIMEOUT_S) -> None:
    """Until the JobManager no longer lists the dead TaskManagers `ids`. A TaskManager that registers under
    the id of one still listed replaces its registration, but not the heartbeat target: the ResourceManager
    keeps sending heartbeats to the dead process and, once they fail, closes the new connection by its id
    (9 s after a restart here). A job deployed on it in between would lose its slots."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            listed = sorted({tm["id"] for tm in rest.taskmanagers()} & set(ids))
        except Exception:
            return  # no JobManager to ask: nothing is listed (the wait for registration says why)
        if not listed:
            return
        if time.monotonic() > deadline:
            raise EdgeplaceError(f"the JobManager still lists {', '.join(listed)} {timeout:.0f} s after it "
                                 "was ended; it cannot be restarted under the same id")
        if not told:
            say(f"waiting for the JobManager to drop {', '.join(listed)} (it notices within ~20 s)")
            told = True
        time.sleep(0.5)


def down(say: Say = print) -> bool:
    """Remove everything the state file records. Idempotent; returns False when nothing was recorded."""
    with st.locked():
        state = st.load()
        if state is None:
            say("no testbed is recorded; nothing to remove")
            return False
        teardown(state, say)
        return True


def status(state: st.State) -> dict:
    """TaskManagers (registered, slots, resources, alive), links (rate, delay, bytes each way), warnings."""
    registered: dict[str, dict] = {}
    rest_ok = True
    try:
        registered = {tm["id"]: tm for tm in rest_of(state, retries=0).taskmanagers()}
    except Exception:
        rest_ok = False
    procs = {p["name"]: ProcRef.recorded(p).alive() is not None
             for p in state.of_kind("process")}  # later records of a name (restarts) win
    tms = []
    for tm in state.taskmanagers:
        reg = registered.get(tm["id"])
        tms.append({**tm, "alive": procs.get(tm["id"], False), "registered": reg is not None,
                    "slots_total": reg["slotsNumber"] if reg else None,
                    "slots_free": reg["freeSlots"] if reg else None,
                    "resources": reg.get("totalResource", {}).get("extendedResources", {}) if reg else {}})
    links = []
    for link in state.links:
        up_c = network.counters(link["ns_if"], link["netns"])
        down_c = network.counters(link["host_if"])
        links.append({**link, "shaped": up_c.shaped and down_c.shaped,
                      "up_bytes": up_c.bytes_sent, "down_bytes": down_c.bytes_sent})
    workers = record_workers(state)
    return {"mode": state.mode, "phase": state.phase, "rest": f"http://127.0.0.1:{state.spec['rest_port']}",
            "rest_reachable": rest_ok, "jobmanager_alive": procs.get("jobmanager", False),
            "shaping": state.mode == "isolated" and any(l["mbit"] for l in state.links),
            "up_seconds": state.up_seconds, "taskmanagers": tms, "links": links,
            "python_workers": workers, "warnings": state.warnings}
