"""Where jobs run: the local emulated testbed, or a real cluster described by an Ansible inventory.

Both are an `Environment`: a target to realise placements on, planning nodes, the edge sites, WAN shaping and
byte counters, the CPU each TaskManager's process tree uses, and a way to repair TaskManagers."""
from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from collectors.proctree import UNREADABLE, parse_tree_cpu, tree_cpu_command
from collectors.profiling import CpuMeter
from collectors.rest import FlinkRest, FlinkRestError
from collectors.profiles import CONTROL_DOWN, CONTROL_UP
from collectors.sockets import ControlMeter, SessionMeter
from common import paths
from common.errors import EdgeplaceError
from common.say import Say, quiet
from costmodel.pricing import Rates
from costmodel.problem import CLOUD, Node
from experiments import cluster as ansible_cluster
from experiments.ssh import RemoteCommandFailed, SshSessions
from experiments.testbed import state as st
from placement import flinkdist
from placement.checks import ready_ids
from placement.realize import Target


class Environment(Protocol):
    """What the runner, calibration, benchmarks and job commands need of a cluster."""

    @property
    def target(self) -> Target: ...

    @property
    def nodes(self) -> list[Node]: ...

    @property
    def sites(self) -> list[str]: ...

    @property
    def link_rates(self) -> dict[str, float | None]: ...

    @property
    def hosts(self) -> dict[str, str]: ...

    def set_wan(self, mbit: Rates) -> None: ...

    def before_deploy(self, mbit: Rates) -> None: ...

    def wan_counters(self) -> dict[str, int]: ...

    def cpu_meter(self) -> CpuMeter | None:
        """CPU seconds each TaskManager's process tree (JVM and Python workers) has used so far, as a function to
        call at each end of a window (None: not measurable here). JIT compilation is counted in: leaving it out
        priced q8 16-30 % too fast (the compilers kept working through the minutes of an experiment's cells)."""

    def heal(self, say: Say) -> None: ...

    def close(self) -> None: ...


def environment(inventory: str | None, say: Say = quiet) -> Environment:
    """The cluster a command works on: the Ansible cluster of `inventory`, else the local testbed."""
    return AnsibleCluster(inventory, say) if inventory else LocalTestbed()


def cluster_nodes(taskmanagers: list[dict], edge_cpu: float, machine_cores: float,
                  site_cpu: dict[str, float] | None = None) -> list[Node]:
    """Testbed TaskManagers as planning nodes (an edge site's own quota from `site_cpu`, else `edge_cpu`); the
    cloud gets what the edge quotas leave of the machine."""
    quota = {t["site"]: float((site_cpu or {}).get(t["site"], edge_cpu)) for t in taskmanagers if t["site"] != CLOUD}
    clouds = [t for t in taskmanagers if t["site"] == CLOUD]
    cloud_cores = max(0.5, machine_cores - sum(quota.values())) / max(1, len(clouds))
    return [Node(t["id"], t["site"], t["slots"], quota[t["site"]] if t["site"] != CLOUD else cloud_cores)
            for t in taskmanagers]


@dataclass
class LocalTestbed:
    """The testbed that is up (experiments.testbed); `edge_cpu` defaults to its edge CPU quota."""

    edge_cpu: float | None = None
    state: st.State = field(init=False)
    _meters: dict = field(init=False, default_factory=dict, repr=False)  # TaskManager id → its ControlMeter

    def __post_init__(self) -> None:
        from experiments.testbed.testbed import require
        self.state = require()
        if self.edge_cpu is None:
            self.edge_cpu = float(self.state.spec["edge_cpu"])

    @property
    def target(self) -> Target:
        from experiments.testbed.testbed import client_conf_dir, rest_of
        return Target(rest_of(self.state), client_conf_dir(self.state), tend=self.heal)

    @property
    def nodes(self) -> list[Node]:
        return cluster_nodes(self.state.taskmanagers, self.edge_cpu, float(os.cpu_count() or 2),
                             self.state.spec.get("site_cpu") or {})

    @property
    def sites(self) -> list[str]:
        return [t["site"] for t in self.state.taskmanagers if t["site"] != CLOUD]

    @property
    def hosts(self) -> dict[str, str]:
        return {}  # every TaskManager on this machine, in a namespace of its own

    @property
    def link_rates(self) -> dict[str, float | None]:
        """Each edge site's link rate now, Mbit/s (None: unshaped); read afresh (`testbed wan` changes it)."""
        return {l["site"]: l["mbit"] for l in (st.load() or self.state).links}

    def set_wan(self, mbit: Rates) -> None:
        """Every edge link at `mbit`, or each site at its own rate (a dict: site → Mbit/s, None unshaped)."""
        from experiments.testbed.testbed import set_wan
        if isinstance(mbit, dict):
            for site, rate in mbit.items():
                set_wan(rate, sites=[site], say=quiet)
        else:
            set_wan(mbit, say=quiet)

    def before_deploy(self, mbit: Rates) -> None:
        self.set_wan(mbit)  # the testbed's client is lean: a deploy ships kilobytes, not flink-python

    def wan_counters(self) -> dict[str, int]:
        from experiments.testbed.testbed import wan_counters
        return wan_counters(self.state, self._meters)

    def cpu_meter(self) -> CpuMeter | None:
        from experiments.measure import tm_processes, tree_cpu
        procs = tm_processes(self.state)
        return (lambda: {tm: tree_cpu(p) for tm, p in procs.items()}) if procs else None

    def heal(self, say: Say) -> None:
        from experiments.testbed.testbed import heal, require
        heal(require(), say=say)

    def close(self) -> None:
        return None


READY_WAIT_S = 60.0  # a real cluster's TaskManagers, to show their resources again (`AnsibleCluster.heal`)
FACTS_KEPT_S = 3600.0  # a job command reuses the facts this long while inventory and TaskManagers match


def kept_taskmanagers(facts: dict) -> list[dict] | None:
    """The TaskManagers registered with the JobManager the facts name (None: it does not answer)."""
    jm = next((n for n in facts.get("nodes", []) if n.get("jobmanager")), None)
    if jm is None:
        return None
    try:
        return FlinkRest(f"http://{jm['host']}:{facts['rest_port']}").quick().taskmanagers()
    except Exception:
        return None


def _matches(facts: dict, registered: list[dict] | None) -> bool:
    """Kept facts still describe the cluster: the same TaskManagers, with the same slots, are registered."""
    return registered is not None and \
        {t["id"]: int(t["slotsNumber"]) for t in registered} == {n["id"]: int(n["slots"]) for n in facts["nodes"]}


_SS_MARK = "--- sockets ---"


def link_command(dev: str) -> str:
    """Shell that prints a host's WAN interface counters (bytes sent, received), edgeplace's own SSH session
    (`$SSH_CONNECTION`) and the route back to edgeplace's host (which interface the session crosses)."""
    stats = f"/sys/class/net/{shlex.quote(dev)}/statistics"
    return (f'cat {stats}/tx_bytes {stats}/rx_bytes; echo "$SSH_CONNECTION"; '
            'ip -o route get "${SSH_CONNECTION%% *}" 2>/dev/null | head -n 1; ')


def link_counters(printed: str, sockets: str, dev: str, session: SessionMeter) -> tuple[int, int]:
    """(up, down) bytes on the link from `link_command`'s output, less what edgeplace's own SSH session sent
    and received (`sockets`: the host's `ss -tinH`) where its route crosses `dev`: its readings every few
    seconds (the host's sockets, CPU, progress) are not the job's traffic, and on a thin link they count."""
    tx, rx, conn, route = (printed.strip("\n").split("\n") + ["", ""])[:4]
    own = (0, 0)
    if sockets.strip() and f" dev {dev} " in f" {route} ":
        own = session.update(sockets, conn)
    return int(tx) - own[0], int(rx) - own[1]


@dataclass
class AnsibleCluster:
    """A real cluster: nodes from `facts.yml`, shaping with `wan.yml`, WAN counters read over SSH."""

    inventory: str
    say: Say = print
    facts: dict = field(init=False)
    hostvars: dict = field(init=False)
    conf_dir: Path = field(init=False)
    ssh: SshSessions = field(init=False)
    lean: bool = field(init=False)  # the client ships no flink-python (every TaskManager has it)
    _meters: dict = field(init=False, default_factory=dict, repr=False)  # node id → its ControlMeter
    _sessions: dict = field(init=False, default_factory=dict, repr=False)  # node id → our SSH session's meter
    _cpu_unseen: set = field(init=False, default_factory=set, repr=False)  # hosts left out of CPU, said
    _sudo: set = field(init=False, default_factory=set, repr=False)  # hosts whose CPU is read through sudo

    def __post_init__(self) -> None:
        self.hostvars = ansible_cluster.inventory_hostvars(self.inventory)
        kept = ansible_cluster.kept_facts(self.inventory, FACTS_KEPT_S)
        if kept is not None and _matches(kept, kept_taskmanagers(kept)):
            self.facts = kept
            self.say(f"cluster facts of {self.inventory} from {(time.time() - kept['gathered_at']) / 60:.0f} min "
                     f"ago (`edgeplace cluster facts -i {self.inventory}` gathers them again)")
        else:
            cache = ansible_cluster.facts_cache(self.inventory)
            self.facts = ansible_cluster.facts(self.inventory, str(cache), say=quiet)
        self.ssh = SshSessions(self.hostvars)
        jm = next(n for n in self.facts["nodes"] if n["jobmanager"])
        self.conf_dir = paths.home() / "clusters" / (Path(self.inventory).stem + "-client")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump({
            "env.java.opts.all": flinkdist.shipped_java_opts(), "env.java.opts.client": flinkdist.CLIENT_JAVA_OPTS,
            "jobmanager.rpc.address": jm["host"], "jobmanager.rpc.port": self.facts["rpc_port"],
            "rest.address": jm["host"], "rest.port": self.facts["rest_port"],
            "python.client.executable": flinkdist.python_executable(),
            "python.executable": jm["python"],  # the hosts' Flink venv (a job option)
        }, sort_keys=False))
        flinkdist.copy_log_configs(self.conf_dir)
        # jobs ship no flink-python when every TaskManager has it (provisioned by this version's flink role)
        self.lean = all(str(n.get("python_in_lib")).lower() == "true" for n in self.facts["nodes"])
        flinkdist.make_lean_client(self.conf_dir, self.lean)
        self.rest = FlinkRest(f"http://{jm['host']}:{self.facts['rest_port']}")
        try:
            registered = {t["id"] for t in self.rest.taskmanagers()}
        except Exception as exc:
            raise EdgeplaceError(f"the cluster's JobManager at {self.rest.base_url} does not answer "
                                 f"({exc}); start it with `edgeplace cluster start -i {self.inventory}`") from exc
        missing = sorted({n["id"] for n in self.facts["nodes"]} - registered)
        if missing:
            raise EdgeplaceError(f"TaskManagers not registered: {', '.join(missing)} "
                                 f"(`edgeplace cluster start -i {self.inventory}`)")

    @property
    def target(self) -> Target:
        # tend: wait for every TaskManager's resource (`heal`). Flink runs as its own user (provisioned by this
        # version's flink role): it writes in its data dir only
        data = next((n.get("data_dir") for n in self.facts["nodes"] if n["jobmanager"]), None)
        return Target(self.rest, self.conf_dir, tend=self.heal, flink_dir=Path(data) if data else None)

    @property
    def nodes(self) -> list[Node]:
        return [Node(n["id"], n["site"], int(n["slots"]), float(n["cores"])) for n in self.facts["nodes"]]

    @property
    def sites(self) -> list[str]:
        return [n["site"] for n in self.facts["nodes"] if n["site"] != CLOUD]

    @property
    def hosts(self) -> dict[str, str]:
        """TaskManager id → the address Ansible reaches its host at."""
        return {n["id"]: str(n["host"]) for n in self.facts["nodes"]}

    @property
    def link_rates(self) -> dict[str, float | None]:
        """Each edge site's uplink rate from the inventory's wan_sites (None: not shaped by edgeplace)."""
        sites = self.facts.get("wan_sites") or {}
        return {s: (float(sites[s]["rate_mbit"]) if sites.get(s, {}).get("rate_mbit") else None) for s in self.sites}

    def set_wan(self, mbit: Rates) -> None:
        """Every edge uplink at `mbit`, or each site at its own rate (a dict: site → Mbit/s)."""
        if isinstance(mbit, dict):
            for site, rate in mbit.items():
                ansible_cluster.wan(self.inventory, rate, site=site, say=quiet)
        else:
            ansible_cluster.wan(self.inventory, mbit, say=quiet)

    def before_deploy(self, mbit: Rates) -> None:
        # a lean client ships kilobytes; otherwise ship the 42.6 MB flink-python jar unshaped (each
        # measurement sets its own rate)
        self.set_wan(mbit if self.lean else None)

    def wan_counters(self) -> dict[str, int]:
        """Bytes sent (up) and received (down) on each edge host's WAN interface, less edgeplace's own SSH
        session where it crosses that interface, and each TaskManager's own traffic with the JobManager (per
        socket, `ss`, where the host has it), read over SSH."""
        out = {}
        jm = frozenset(n["host"] for n in self.facts["nodes"] if n["jobmanager"])
        # the JobManager's host runs a TaskManager too: its records to and from the edge are not control traffic
        data_ports = frozenset(int(t["dataPort"]) for t in self.rest.taskmanagers() if t.get("dataPort"))
        for n in self.facts["nodes"]:
            edge = n["site"] != CLOUD
            text = self.ssh.run(n["id"], (link_command(n.get("wan_interface") or "") if edge else "")
                                + f"echo {_SS_MARK}; ss -tinH 2>/dev/null || true")
            numbers, _, sockets = text.partition(_SS_MARK)
            if edge:
                out[f"{n['site']}:up"], out[f"{n['site']}:down"] = link_counters(
                    numbers, sockets, n.get("wan_interface") or "", self._sessions.setdefault(n["id"], SessionMeter()))
            if sockets.strip():
                sent, received = self._meters.setdefault(n["id"], ControlMeter(jm)).update(sockets.lstrip("\n"),
                                                                                          data_ports)
                out[f"{n['id']}:{CONTROL_UP}"], out[f"{n['id']}:{CONTROL_DOWN}"] = sent, received
        return out

    def cpu_meter(self) -> CpuMeter | None:
        """Each call reads every host over SSH, one after the other (each host's pid file names its
        TaskManager). A host is left out, and said so once, where its facts do not say where that file is
        (gathered by an older edgeplace) or its SSH user may not read it, not even through `sudo -n`."""
        for n in self.facts["nodes"]:
            if not n.get("taskmanager_pid_dir"):
                self._no_cpu(n["id"], "its facts do not say where its TaskManager's pid file is (`edgeplace cluster "
                                      f"facts -i {self.inventory}` gathers them again)")
        where = {n["id"]: n["taskmanager_pid_dir"] for n in self.facts["nodes"] if n["id"] not in self._cpu_unseen}
        python = {n["id"]: n.get("python") or "python3" for n in self.facts["nodes"]}

        def meter() -> dict[str, float]:
            out = {}
            for tm, d in where.items():
                if tm in self._cpu_unseen:
                    continue
                text = self._tree_cpu(tm, tree_cpu_command(d, python[tm]), d)
                if text is None:
                    continue
                seconds = parse_tree_cpu(text)
                if seconds is not None:
                    out[tm] = seconds
            return out
        return meter if where else None

    def _tree_cpu(self, tm: str, command: str, pid_dir: str) -> str | None:
        """The tree-CPU command's output on `tm`, as its SSH user or else through `sudo -n` (as Ansible's
        `become` does, without a password); None (said once) when neither may read Flink's pid files."""
        user = self.hostvars[tm].get("ansible_user", "root")
        cannot = f"its SSH user ({user}) may not read {pid_dir}, where Flink writes its pid file"
        if tm not in self._sudo:
            text = self.ssh.run(tm, command)
            if text.strip() != UNREADABLE or user == "root":
                return None if self._unreadable(tm, text, cannot) else text
            self._sudo.add(tm)
        try:
            text = self.ssh.run(tm, f"sudo -n {command}")
        except RemoteCommandFailed as exc:  # sudo said why (a password is required, the user is not a sudoer)
            self._no_cpu(tm, f"{cannot}, and `sudo -n` refused ({exc.stderr[:120]}); connect as root or as "
                             "Flink's user, or allow that user sudo without a password")
            return None
        return None if self._unreadable(tm, text, cannot) else text

    def _unreadable(self, tm: str, text: str, cannot: str) -> bool:
        if text.strip() == UNREADABLE:
            self._no_cpu(tm, f"{cannot} (connect as root or as Flink's user)")
            return True
        return False

    def _no_cpu(self, tm: str, why: str) -> None:
        if tm not in self._cpu_unseen:
            self._cpu_unseen.add(tm)
            self.say(f"CPU is not measured on {tm}: {why}")

    def heal(self, say: Say) -> None:
        """systemd restarts a TaskManager that died (Restart=on-failure). Wait until every TaskManager is
        registered with its external resource: one whose heartbeat timed out registers anew, and reports its
        resource a moment later. A deployment in between finds it without one."""
        want = {n["id"] for n in self.facts["nodes"]}
        rest, deadline = self.rest.quick(), time.monotonic() + READY_WAIT_S
        while True:
            try:
                missing = sorted(want - ready_ids(rest.taskmanagers()))
            except FlinkRestError as exc:
                missing = sorted(want)
                why = f"the JobManager does not answer ({exc})"
            else:
                why = "not registered with their resource"
            if not missing:
                return
            if time.monotonic() > deadline:
                raise EdgeplaceError(f"TaskManager(s) {', '.join(missing)}: {why} after {READY_WAIT_S:g} s "
                                     f"(`edgeplace cluster start -i {self.inventory}`)")
            time.sleep(0.5)

    def close(self) -> None:
        self.ssh.close()
