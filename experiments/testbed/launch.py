"""Starting the testbed's processes: Flink configs, a JobManager/TaskManager/sshd in its CPU group and
namespace (recorded before it runs), and waiting until TaskManagers have registered."""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import yaml

from common.errors import EdgeplaceError
from common.say import Say
from experiments.testbed import cgroups, pyworkers, sshhosts, state as st
from experiments.testbed.processes import ProcRef
from experiments.testbed.spec import TestbedSpec, bridge_name, members, site_links
from placement import flinkdist
from placement.checks import ready_ids
from experiments.testbed.state import rest_of


def start_ssh_hosts(spec: TestbedSpec, state: st.State, say: Say) -> None:
    """sshd in every edge namespace (inside its CPU group) and an inventory for Ansible; no Flink."""
    d = Path(state.workdir) / "ssh"
    key = sshhosts.make_keys(d)
    hosts = []
    for m in (m for m in members(spec) if m.is_edge):
        conf = sshhosts.sshd_config(d, m.host)
        start(state, f"sshd-{m.id}", "sshd", d / m.id, True, m.netns, m.cpu_cores, sshhosts.sshd_argv(conf))
        ns_if = next(l.ns_if for l in site_links(spec) if l.netns == m.netns)
        hosts.append({"name": m.id, "addr": m.host, "site": m.site, "netns": m.netns, "ifname": ns_if,
                      "slots": spec.cloud_slots if not hosts else m.slots})  # the first is the cloud host
    state.ssh_hosts = hosts
    inv = Path(state.workdir) / "inventory.yml"
    known = sshhosts.known_hosts(d, [h["addr"] for h in hosts])
    root = sshhosts.hosts_root(spec.subnet)
    if not sshhosts.user_exists(sshhosts.FLINK_USER):  # provisioning makes it on this machine: down removes it
        state.record("user", name=sshhosts.FLINK_USER)
    state.record("dir", path=str(root))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(mode=0o755, parents=True)
    root.parent.chmod(0o755)
    sshhosts.write_inventory(inv, sshhosts.inventory(hosts, key, root, spec.rest_port, spec.rpc_port, known=known))
    deadline = time.monotonic() + 15
    pending = list(hosts)
    while pending and time.monotonic() < deadline:
        pending = [h for h in pending if not port_open(h["addr"], 22)]
        time.sleep(0.2)
    if pending:
        raise EdgeplaceError(f"sshd did not start on {', '.join(h['addr'] for h in pending)} "
                             f"(logs under {d})")
    state.phase = "up"
    state.up_seconds = round(time.time() - state.started_at, 1)
    state.save()
    say(f"{len(hosts)} SSH hosts up ({', '.join(h['addr'] for h in hosts)}); inventory: {inv}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def write_conf(d: Path, conf: dict) -> None:
    (d / "log").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    (d / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    flinkdist.copy_log_configs(d)


def flink_lib(state: st.State) -> Path:
    """FLINK_LIB_DIR of the JobManager and TaskManagers: Flink's lib plus flink-python."""
    return Path(state.workdir) / "flink-lib"


def start(state: st.State, name: str, kind: str, d: Path, isolate: bool, netns: str | None,
           cores: float | None, argv: list[str] | None = None, extra_env: dict[str, str] | None = None) -> None:
    """Start a Flink process of `kind` (or `argv`, e.g. an sshd) in its CPU group (limited to `cores`) and
    namespace; record it. A TaskManager gets its pre-warmed Python worker server (`pyworkers`) beside it, as
    its child, and its quota only once registered (`wait_registered`)."""
    fg = argv or [str(flinkdist.flink_home() / "bin" / f"{kind}.sh"), "start-foreground"]
    extra_env = dict(extra_env or {})
    if kind == "taskmanager" and argv is None:
        sock = pyworkers.socket_name(state.workdir, name)
        extra_env.update({pyworkers.ENV_SOCKET: sock, "FLINK_LIB_DIR": str(flink_lib(state))})
        serve = shlex.join([flinkdist.python_executable(), "-m", "experiments.testbed.pyworkers", "serve", sock])
        fg = ["sh", "-c", f"{serve} $$ >> {shlex.quote(str(d / 'log' / 'pyworkers.out'))} 2>&1 & exec {shlex.join(fg)}"]
    cmd = shlex.join(fg)
    cg_path = None
    if isolate:
        # one group folder per testbed, named like its interfaces after its subnet (which no other testbed
        # can hold): a testbed's `down` ends every process in its groups, so they must never be shared
        cg_name = f"edgeplace/{bridge_name(TestbedSpec.from_dict(state.spec))}/{name}"
        cg_path = cgroups.group_path(cg_name)
        if cg_path.exists() and str(cg_path) not in {r["path"] for r in state.of_kind("cgroup")}:
            raise EdgeplaceError(f"cgroup {cg_path} exists but is not recorded by this testbed (another testbed "
                                 "on the same --subnet?); take that one down, or remove the group")
        state.record("cgroup", path=str(cg_path))
        cgroups.create(cg_name, None if kind == "taskmanager" else cores)  # a TaskManager: `wait_registered`
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
    state.record("process", name=name, **ref.record(),
                 cgroup=str(cg_path) if cg_path else None, log=str(d / "log"))


def wait_registered(state: st.State, timeout: float) -> None:
    """Until every TaskManager is registered with its resource. Then (also when the wait fails) each
    TaskManager gets its CPU quota: it starts without one, since JVM start-up is not what the quota emulates
    (under 0.5 cores an edge TaskManager registered 10 s after the cloud's)."""
    try:
        _wait_registered(state, timeout)
    finally:
        throttle(state)


def throttle(state: st.State) -> None:
    """Give every TaskManager's CPU group its quota (`cpu_cores`; None leaves it unlimited)."""
    groups = {p["name"]: p.get("cgroup") for p in state.of_kind("process")}  # the latest record of each name
    for tm in state.taskmanagers:
        if (group := groups.get(tm["id"])) and Path(group).is_dir():
            cgroups.set_quota(Path(group), tm.get("cpu_cores"))


def _wait_registered(state: st.State, timeout: float) -> None:
    rest = rest_of(state, timeout=2.0, retries=0)
    want = {tm["id"] for tm in state.taskmanagers}  # each with its resource
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        for p in {p["name"]: p for p in state.of_kind("process")}.values():
            if ProcRef.recorded(p).alive() is None:
                raise EdgeplaceError(f"{p['name']} exited during start-up; last log lines:\n{_log_tail(p['log'])}")
        try:  # registered AND reporting its external resource (it arrives a moment after registration)
            seen = ready_ids(rest.taskmanagers())
        except Exception:
            seen = set()
        if want <= seen:
            return
        time.sleep(0.3)
    missing = sorted(want - seen)
    logs = {p["name"]: p["log"] for p in state.of_kind("process")}
    tails = "".join(f"\n{m}'s last log lines:\n{_log_tail(logs[m])}" for m in missing if m in logs)
    raise EdgeplaceError(f"timed out after {timeout:.0f} s waiting for TaskManagers {', '.join(missing)} "
                         f"to register (logs under {state.workdir}){tails}")


def _log_tail(log_dir: str, lines: int = 15) -> str:
    logs = sorted(Path(log_dir).glob("*.log")) + [Path(log_dir) / "console.out"]
    for f in logs:
        if f.exists() and f.stat().st_size:
            return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
    return "(no log output)"
