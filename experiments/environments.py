"""Where an experiment runs: the local emulated testbed, or a real cluster described by an Ansible inventory.

Both give the runner the same things: a deploy target, planning nodes, the edge sites, WAN shaping, WAN
byte counters, TaskManager processes to measure CPU from (local only), and a way to repair a TaskManager."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import yaml

from collectors.rest import FlinkRest
from experiments import cluster as ansible_cluster, flinkdist
from experiments.deployment import Target
from experiments.errors import EdgeplaceError
from experiments.modeling import ClusterNode, cluster_nodes
from experiments.testbed import state as st

Say = Callable[[str], None]


@dataclass
class LocalTestbed:
    """The testbed that is up (experiments.testbed)."""

    edge_cpu: float
    state: st.State = field(init=False)

    def __post_init__(self) -> None:
        from experiments.testbed.testbed import require
        self.state = require()

    @property
    def target(self) -> Target:
        return Target.local_testbed()

    @property
    def nodes(self) -> list[ClusterNode]:
        return cluster_nodes(self.state.taskmanagers, self.edge_cpu, float(os.cpu_count() or 2))

    @property
    def sites(self) -> list[str]:
        return [t["site"] for t in self.state.taskmanagers if t["site"] != "cloud"]

    def set_wan(self, mbit: float | None) -> None:
        from experiments.testbed.testbed import set_wan
        set_wan(mbit, say=lambda m: None)

    def before_deploy(self, mbit: float | None) -> None:
        self.set_wan(mbit)  # the testbed's client is lean: a deploy ships kilobytes, not flink-python

    def wan_counters(self) -> dict[str, int]:
        from experiments.testbed.testbed import wan_counters
        return wan_counters(self.state)

    def tm_processes(self) -> dict[str, psutil.Process]:
        from experiments.measure import tm_processes
        return tm_processes(self.state)

    def heal(self, say: Say) -> None:
        from experiments.testbed.testbed import heal, require
        heal(require(), say=say)

    def close(self) -> None:
        return None


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

    def __post_init__(self) -> None:
        out = st.home() / "clusters" / (Path(self.inventory).stem + ".json")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.facts = ansible_cluster.facts(self.inventory, str(out), say=lambda m: None)
        self.hostvars = ansible_cluster.inventory_hostvars(self.inventory)
        self.ssh = SshSessions(self.hostvars)
        jm = next(n for n in self.facts["nodes"] if n["jobmanager"])
        self.conf_dir = st.home() / "clusters" / (Path(self.inventory).stem + "-client")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump({
            "env.java.opts.all": flinkdist.shipped_java_opts(),
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
        return Target(self.rest, self.conf_dir)

    @property
    def nodes(self) -> list[ClusterNode]:
        return [ClusterNode(n["id"], n["site"], int(n["slots"]), float(n["cores"])) for n in self.facts["nodes"]]

    @property
    def sites(self) -> list[str]:
        return [n["site"] for n in self.facts["nodes"] if n["site"] != "cloud"]

    def set_wan(self, mbit: float | None) -> None:
        ansible_cluster.wan(self.inventory, mbit, say=lambda m: None)

    def before_deploy(self, mbit: float | None) -> None:
        # a lean client ships kilobytes; otherwise ship the 42.6 MB flink-python jar unshaped (each
        # measurement sets its own rate)
        self.set_wan(mbit if self.lean else None)

    def wan_counters(self) -> dict[str, int]:
        """Bytes sent (up) and received (down) on each edge host's WAN interface, read over SSH."""
        out = {}
        for n in self.facts["nodes"]:
            if n["site"] == "cloud":
                continue
            dev = shlex.quote(n["wan_interface"])
            text = self.ssh.run(n["id"], f"cat /sys/class/net/{dev}/statistics/tx_bytes "
                                         f"/sys/class/net/{dev}/statistics/rx_bytes")
            tx, rx = (int(x) for x in text.split())
            out[f"{n['site']}:up"], out[f"{n['site']}:down"] = tx, rx
        return out

    def tm_processes(self) -> dict[str, psutil.Process]:
        return {}  # CPU per TaskManager is measured on the local testbed only

    def heal(self, say: Say) -> None:
        return None  # systemd restarts a TaskManager that died (Restart=on-failure)

    def close(self) -> None:
        self.ssh.close()


class SshSessions:
    """One paramiko connection per inventory host, opened on first use and kept for the whole run (WAN
    counters are read every few seconds); a broken one is reopened once."""

    def __init__(self, hostvars: dict[str, dict]):
        self.hostvars = hostvars
        self.clients: dict[str, object] = {}

    def run(self, host: str, command: str, timeout: float = 10.0) -> str:
        import paramiko
        hv = self.hostvars[host]
        for attempt in (1, 2):
            try:
                client = self.clients.get(host) or self._connect(hv, timeout)
                self.clients[host] = client
                _, stdout, stderr = client.exec_command(command, timeout=timeout)
                text, err = stdout.read().decode(), stderr.read().decode()
                if stdout.channel.recv_exit_status() != 0:
                    raise EdgeplaceError(f"{hv.get('ansible_host')}: `{command}` failed: {err.strip()}")
                return text
            except (OSError, paramiko.SSHException) as exc:
                self._drop(host)
                if attempt == 2:
                    raise EdgeplaceError(f"cannot reach {hv.get('ansible_host')} over SSH: {exc}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _connect(hv: dict, timeout: float):
        import paramiko
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(hv.get("ansible_host"), port=int(hv.get("ansible_port", 22)),
                       username=hv.get("ansible_user", "root"), key_filename=hv.get("ansible_ssh_private_key_file"),
                       timeout=timeout, allow_agent=True, look_for_keys=True)
        return client

    def _drop(self, host: str) -> None:
        client = self.clients.pop(host, None)
        if client is not None:
            transport = client.get_transport()
            client.close()
            if transport is not None:  # no paramiko thread may still run native crypto code at interpreter exit
                transport.join(5)

    def close(self) -> None:
        for host in list(self.clients):
            self._drop(host)
