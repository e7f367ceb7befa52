"""`edgeplace testbed up/down/status/wan`: a real Flink session cluster with emulated edge sites."""
from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import psutil
import yaml

from collectors.rest import FlinkRest
from experiments import flinkdist
from experiments.errors import EdgeplaceError
from experiments.testbed import cgroups, flinkconf, network, pyworkers, sshhosts, state as st
from experiments.testbed.processes import ProcRef, same_group, terminate, with_descendants
from experiments.testbed.spec import TestbedSpec, bridge_name, gateway, members, site_links

Say = Callable[[str], None]
NETEM_MISSING = ("WAN delay emulation is unavailable: this kernel has no netem qdisc; "
                 "--wan-delay-ms is ignored here (real hosts provisioned with Ansible use netem)")


# ---------------------------------------------------------------- up

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
            _check_subnet_unused(spec)
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
            _teardown(state, say)
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
        _build_network(spec, state, say)
    if spec.ssh_hosts:
        _start_ssh_hosts(spec, state, say)
        return
    java_opts = flinkdist.shipped_java_opts()
    python = flinkdist.python_executable()
    launcher = workdir / "python-worker"
    launcher.write_text(pyworkers.launcher_script(python))
    launcher.chmod(0o755)
    _write_conf(workdir / "client", flinkconf.client(spec, java_opts, python, str(launcher)))
    flinkdist.make_lean_client(workdir / "client")  # jobs ship no flink-python: the TaskManagers have it
    flinkdist.python_lib(_flink_lib(state))

    jm_dir = workdir / "jobmanager"
    _write_conf(jm_dir, flinkconf.jobmanager(spec, java_opts, str(jm_dir / "tmp")))
    _start(state, "jobmanager", "jobmanager", jm_dir, spec.isolate, None, None,
           extra_env={"FLINK_LIB_DIR": str(_flink_lib(state))})
    for m in members(spec):
        d = workdir / m.id
        _write_conf(d, flinkconf.taskmanager(spec, m, java_opts, str(d / "tmp")))
        _start(state, m.id, "taskmanager", d, spec.isolate, m.netns, m.cpu_cores)
        state.taskmanagers.append({"id": m.id, "site": m.site, "host": m.host, "slots": m.slots,
                                   "resource": m.resource, "netns": m.netns, "cpu_cores": m.cpu_cores})
    state.save()
    say(f"started JobManager and {len(state.taskmanagers)} TaskManagers; waiting for registration")
    _wait_registered(state, timeout)
    state.phase = "up"
    state.up_seconds = round(time.monotonic() - t0, 1)
    state.save()
    say(f"testbed up in {state.up_seconds} s: REST http://127.0.0.1:{spec.rest_port}, "
        f"{spec.edge} edge + {spec.cloud} cloud TaskManagers")


def _start_ssh_hosts(spec: TestbedSpec, state: st.State, say: Say) -> None:
    """sshd in every edge namespace (inside its CPU group) and an inventory for Ansible; no Flink."""
    d = Path(state.workdir) / "ssh"
    key = sshhosts.make_keys(d)
    hosts = []
    for m in (m for m in members(spec) if m.is_edge):
        conf = sshhosts.sshd_config(d, m.host)
        _start(state, f"sshd-{m.id}", "sshd", d / m.id, True, m.netns, m.cpu_cores, sshhosts.sshd_argv(conf))
        ns_if = next(l.ns_if for l in site_links(spec) if l.netns == m.netns)
        hosts.append({"name": m.id, "addr": m.host, "site": m.site, "netns": m.netns, "ifname": ns_if,
                      "slots": spec.cloud_slots if not hosts else m.slots})  # the first is the cloud host
    state.ssh_hosts = hosts
    inv = Path(state.workdir) / "inventory.yml"
    sshhosts.write_inventory(inv, sshhosts.inventory(hosts, key, Path(state.workdir) / "hosts",
                                                     spec.rest_port, spec.rpc_port))
    deadline = time.monotonic() + 15
    pending = list(hosts)
    while pending and time.monotonic() < deadline:
        pending = [h for h in pending if not _port_open(h["addr"], 22)]
        time.sleep(0.2)
    if pending:
        raise EdgeplaceError(f"sshd did not start on {', '.join(h['addr'] for h in pending)} "
                             f"(logs under {d})")
    state.phase = "up"
    state.up_seconds = round(time.time() - state.started_at, 1)
    state.save()
    say(f"{len(hosts)} SSH hosts up ({', '.join(h['addr'] for h in hosts)}); inventory: {inv}")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _check_subnet_unused(spec: TestbedSpec) -> None:
    """The testbed's subnet must not overlap any address this machine already has."""
    net = ipaddress.ip_network(spec.subnet)
    for ifname, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == socket.AF_INET and a.netmask:
                other = ipaddress.ip_network(f"{a.address}/{a.netmask}", strict=False)
                if other.overlaps(net):
                    raise EdgeplaceError(f"--subnet {spec.subnet} overlaps {other} already on {ifname}; "
                                         "choose an unused private /24")


def _build_network(spec: TestbedSpec, state: st.State, say: Say) -> None:
    br = bridge_name(spec)
    hosts = [m.host for m in members(spec) if not m.is_edge]
    for name in [br] + [l.host_if for l in site_links(spec)]:
        if network.link_exists(name):
            raise EdgeplaceError(f"interface {name} exists but is not recorded by edgeplace; "
                                 f"remove it (`ip link del {name}`) or use another --subnet")
    state.record("link", name=br)
    network.add_bridge(br, [f"{gateway(spec)}/24"] + [f"{h}/24" for h in hosts])
    delay_warned = False
    for link in site_links(spec):
        if network.netns_exists(link.netns):
            raise EdgeplaceError(f"network namespace {link.netns} exists but is not recorded by edgeplace; "
                                 f"remove it (`ip netns del {link.netns}`) or use another --subnet")
        state.record("netns", name=link.netns)
        state.record("link", name=link.host_if)
        network.add_site(link.netns, br, link.host_if, link.ns_if, f"{link.ns_addr}/24")
        entry = {"site": link.site, "netns": link.netns, "host_if": link.host_if, "ns_if": link.ns_if,
                 "addr": link.ns_addr, "mbit": None, "delay_ms": 0.0}
        state.links.append(entry)
        state.save()
        if spec.wan_mbit is not None:
            delay_warned |= _shape_link(entry, spec.wan_mbit, spec.wan_delay_ms, state, say, delay_warned)
    state.save()


def _shape_link(link: dict, mbit: float | None, delay_ms: float, state: st.State, say: Say,
                warned: bool) -> bool:
    """Shape both directions of one site link; returns True when the netem warning was given."""
    network.unshape(link["ns_if"], link["netns"])
    network.unshape(link["host_if"])
    link["mbit"], link["delay_ms"] = mbit, 0.0
    if mbit is None:
        return False
    network.shape(link["ns_if"], mbit, link["netns"])
    network.shape(link["host_if"], mbit)
    if delay_ms > 0:
        half = delay_ms / 2  # RTT split over both directions
        if network.add_delay(link["ns_if"], half, link["netns"]) and network.add_delay(link["host_if"], half):
            link["delay_ms"] = delay_ms
        elif not warned:
            say(f"WARNING: {NETEM_MISSING}")
            if NETEM_MISSING not in state.warnings:
                state.warnings.append(NETEM_MISSING)
            return True
    return warned


def _write_conf(d: Path, conf: dict) -> None:
    (d / "log").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    (d / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    flinkdist.copy_log_configs(d)


def _flink_lib(state: st.State) -> Path:
    """FLINK_LIB_DIR of the JobManager and TaskManagers: Flink's lib plus flink-python."""
    return Path(state.workdir) / "flink-lib"


def _start(state: st.State, name: str, kind: str, d: Path, isolate: bool, netns: str | None,
           cores: float | None, argv: list[str] | None = None, extra_env: dict[str, str] | None = None) -> None:
    """Start a Flink process of `kind` (or `argv`, e.g. an sshd) in its CPU group and namespace; record it.
    A TaskManager gets its pre-warmed Python worker server (`pyworkers`) beside it, as its child."""
    fg = argv or [str(flinkdist.flink_home() / "bin" / f"{kind}.sh"), "start-foreground"]
    extra_env = dict(extra_env or {})
    if kind == "taskmanager" and argv is None:
        sock = pyworkers.socket_name(state.workdir, name)
        extra_env.update({pyworkers.ENV_SOCKET: sock, "FLINK_LIB_DIR": str(_flink_lib(state))})
        serve = shlex.join([flinkdist.python_executable(), "-m", "experiments.testbed.pyworkers", "serve", sock])
        fg = ["sh", "-c", f"{serve} $$ >> {shlex.quote(str(d / 'log' / 'pyworkers.out'))} 2>&1 & exec {shlex.join(fg)}"]
    cmd = shlex.join(fg)
    cg_path = None
    if isolate:
        cg_name = f"edgeplace/{Path(state.workdir).parent.name}/{name}"
        cg_path = cgroups.group_path(cg_name)
        state.record("cgroup", path=str(cg_path))
        cgroups.create(cg_name, cores)
        prefix = f"ip netns exec {shlex.quote(netns)} " if netns else ""
        argv = ["sh", "-c", f"echo $$ > {shlex.quote(str(cg_path / 'cgroup.procs'))} && exec {prefix}{cmd}"]
    else:
        argv = fg
    env = {**os.environ, "FLINK_CONF_DIR": str(d), "FLINK_LOG_DIR": str(d / "log"), "FLINK_PID_DIR": str(d / "tmp"),
           **extra_env}
    (d / "log").mkdir(parents=True, exist_ok=True)
    with open(d / "log" / "console.out", "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    ref = ProcRef.of(proc.pid)
    state.record("process", name=name, pid=ref.pid, create_time=ref.create_time,
                 cgroup=str(cg_path) if cg_path else None, log=str(d / "log"))


def _wait_registered(state: st.State, timeout: float, stale: dict[str, str | None] | None = None) -> None:
    """Until every TaskManager is registered with its resource; for ids in `stale`, a registration under the
    old RPC path (the dead process, until the JobManager's heartbeat times out) does not count."""
    stale = stale or {}
    rest = rest_of(state, timeout=2.0, retries=0)
    want = {tm["id"] for tm in state.taskmanagers}  # each with its resource
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        for p in {p["name"]: p for p in state.of_kind("process")}.values():
            if ProcRef(p["pid"], p["create_time"]).alive() is None:
                raise EdgeplaceError(f"{p['name']} exited during start-up; last log lines:\n{_log_tail(p['log'])}")
        try:  # registered AND reporting its external resource (it arrives a moment after registration)
            seen = {tm["id"] for tm in rest.taskmanagers()
                    if tm.get("totalResource", {}).get("extendedResources") and
                    (tm["id"] not in stale or tm.get("path") != stale[tm["id"]])}
        except Exception:
            seen = set()
        if want <= seen:
            return
        time.sleep(0.3)
    missing = sorted(want - seen)
    raise EdgeplaceError(f"timed out after {timeout:.0f} s waiting for TaskManagers {', '.join(missing)} "
                         f"to register (logs under {state.workdir})")


def _log_tail(log_dir: str, lines: int = 15) -> str:
    logs = sorted(Path(log_dir).glob("*.log")) + [Path(log_dir) / "console.out"]
    for f in logs:
        if f.exists() and f.stat().st_size:
            return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
    return "(no log output)"


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
    _teardown(old, say)


def heal(state: st.State, say: Say = print, timeout: float = 90.0, settle: float = 30.0) -> list[str]:
    """Restart TaskManagers that died (Flink's Python runner can take a TaskManager down when a job is
    cancelled). A TaskManager that is alive but not registered is given `settle` seconds (it may be
    exiting, or registering); after that it is ended by its recorded PID and restarted too.
    Returns the ids restarted, once they are registered again."""
    spec = TestbedSpec.from_dict(state.spec)
    rest = rest_of(state, timeout=2.0, retries=0)
    deadline = time.monotonic() + settle
    while True:
        latest = {p["name"]: p for p in state.of_kind("process")}
        alive = {m.id: ProcRef(latest[m.id]["pid"], latest[m.id]["create_time"]).alive() for m in members(spec)}
        try:
            registered = {t["id"] for t in rest.taskmanagers()}
        except Exception:
            registered = set()
        limbo = [i for i, p in alive.items() if p is not None and i not in registered]
        if not limbo or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    broken = [m for m in members(spec) if alive[m.id] is None or m.id in limbo]
    if not broken:
        return []
    try:
        stale = {t["id"]: t.get("path") for t in rest.taskmanagers()}
    except Exception:
        stale = {}
    with st.locked():
        for m in broken:
            if alive[m.id] is not None:
                terminate(with_descendants(alive[m.id]))
            say(f"TaskManager {m.id} is not running; restarting it")
            _start(state, m.id, "taskmanager", Path(state.workdir) / m.id, spec.isolate, m.netns, m.cpu_cores)
        _wait_registered(state, timeout, stale={m.id: stale.get(m.id) for m in broken})
    return [m.id for m in broken]


# ---------------------------------------------------------------- down

def down(say: Say = print) -> bool:
    """Remove everything the state file records. Idempotent; returns False when nothing was recorded."""
    with st.locked():
        state = st.load()
        if state is None:
            say("no testbed is recorded; nothing to remove")
            return False
        _teardown(state, say)
        return True


def _teardown(state: st.State, say: Say) -> None:
    t0 = time.monotonic()
    errors: list[str] = []
    procs = _testbed_processes(state)
    if procs:
        terminate(procs)
    for r in reversed(state.resources):
        try:
            if r["kind"] == "cgroup":
                cgroups.remove(Path(r["path"]))
            elif r["kind"] == "netns":
                network.delete_netns(r["name"])
            elif r["kind"] == "link":
                network.delete_link(r["name"])
            elif r["kind"] == "dir":
                shutil.rmtree(r["path"], ignore_errors=True)
        except EdgeplaceError as exc:
            errors.append(str(exc))
    if errors:
        state.save()
        raise EdgeplaceError("testbed down could not remove everything: " + "; ".join(errors))
    st.forget()
    say(f"testbed down: {len(procs)} processes ended, {len(state.resources)} recorded resources removed "
        f"in {time.monotonic() - t0:.1f} s")


def _testbed_processes(state: st.State) -> list[psutil.Process]:
    """Recorded processes, their descendants, their process groups and everything in their cgroups."""
    found: dict[int, psutil.Process] = {}
    for p in state.of_kind("process"):
        ref = ProcRef(p["pid"], p["create_time"])
        live = ref.alive()
        if live:
            for q in with_descendants(live):
                found[q.pid] = q
        for q in same_group(ref.pid):
            try:
                if q.create_time() >= ref.create_time - 0.05:
                    found[q.pid] = q
            except psutil.Error:
                pass
    for r in state.of_kind("netns"):  # whatever runs in our namespaces (e.g. started over SSH)
        for pid in network.netns_pids(r["name"]):
            try:
                found[pid] = psutil.Process(pid)
            except psutil.Error:
                pass
    for r in state.of_kind("cgroup"):
        for pid in cgroups.pids(Path(r["path"])):
            try:
                found[pid] = psutil.Process(pid)
            except psutil.Error:
                pass
    found.pop(os.getpid(), None)
    return list(found.values())


# ---------------------------------------------------------------- status, wan, helpers

def require(phase: str = "up") -> st.State:
    state = st.load()
    if state is None:
        raise EdgeplaceError("no testbed is up; start one with `edgeplace testbed up`")
    if state.phase != phase:
        raise EdgeplaceError(f"the testbed is {state.phase}, not {phase}; run `edgeplace testbed down`")
    return state


def rest_of(state: st.State, **kwargs) -> FlinkRest:
    return FlinkRest(f"http://127.0.0.1:{state.spec['rest_port']}", **kwargs)


def client_conf_dir(state: st.State) -> Path:
    return Path(state.workdir) / "client"


def status(state: st.State) -> dict:
    """TaskManagers (registered, slots, resources, alive), links (rate, delay, bytes each way), warnings."""
    registered: dict[str, dict] = {}
    rest_ok = True
    try:
        registered = {tm["id"]: tm for tm in rest_of(state, retries=0).taskmanagers()}
    except Exception:
        rest_ok = False
    procs = {p["name"]: ProcRef(p["pid"], p["create_time"]).alive() is not None
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
    workers = _record_workers(state)
    return {"mode": state.mode, "phase": state.phase, "rest": f"http://127.0.0.1:{state.spec['rest_port']}",
            "rest_reachable": rest_ok, "jobmanager_alive": procs.get("jobmanager", False),
            "shaping": state.mode == "isolated" and any(l["mbit"] for l in state.links),
            "up_seconds": state.up_seconds, "taskmanagers": tms, "links": links,
            "python_workers": workers, "warnings": state.warnings}


def _record_workers(state: st.State) -> list[int]:
    """PIDs in the testbed's cgroups/process groups that it did not start itself (Python UDF workers)."""
    started = {p["pid"] for p in state.of_kind("process")}
    extra = sorted(p.pid for p in _testbed_processes(state)
                   if p.pid not in started and _is_python(p))
    return extra


def _is_python(p: psutil.Process) -> bool:
    try:
        return "python" in p.name() or "beam" in p.name() or "pyflink" in " ".join(p.cmdline())
    except psutil.Error:
        return False


def wan_counters(state: st.State) -> dict[str, int]:
    """Cumulative bytes sent per edge link direction ('edge-1:up' = edge → cloud), from interface counters."""
    out = {}
    for link in state.links:
        out[f"{link['site']}:up"] = network.counters(link["ns_if"], link["netns"]).bytes_sent
        out[f"{link['site']}:down"] = network.counters(link["host_if"]).bytes_sent
    return out


def set_wan(mbit: float | None, delay_ms: float = 0.0, sites: list[str] | None = None, say: Say = print) -> list[dict]:
    """Change (or with mbit=None remove) the shaping of the given edge sites (default all)."""
    state = require()
    if state.mode != "isolated":
        raise EdgeplaceError("the testbed runs in loopback mode; there are no WAN links to shape")
    if mbit is not None and mbit <= 0:
        raise EdgeplaceError(f"--mbit must be > 0, got {mbit}")
    known = {l["site"] for l in state.links}
    unknown = sorted(set(sites or []) - known)
    if unknown:
        raise EdgeplaceError(f"unknown edge site(s) {', '.join(unknown)}; the testbed has {', '.join(sorted(known))}")
    warned = NETEM_MISSING in state.warnings
    for link in state.links:
        if not sites or link["site"] in sites:
            warned = _shape_link(link, mbit, delay_ms, state, say, warned)
    state.save()
    return state.links


def site_argv(state: st.State, site: str, argv: list[str]) -> list[str]:
    """argv that runs `argv` at an edge site: in its CPU group and network namespace (as its TaskManager)."""
    tm = next((t for t in state.taskmanagers if t["site"] == site and site != "cloud"), None)
    if tm is None:
        raise EdgeplaceError(f"unknown edge site {site!r}")
    if state.mode != "isolated":
        return argv
    cg = next(p["cgroup"] for p in state.of_kind("process") if p["name"] == tm["id"])
    return ["sh", "-c", f"echo $$ > {shlex.quote(cg + '/cgroup.procs')} && exec ip netns exec "
            f"{shlex.quote(tm['netns'])} {shlex.join(argv)}"]
