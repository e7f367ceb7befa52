"""Testbed edge sites as SSH-reachable hosts (sshd inside each namespace), for the Ansible path.

`edgeplace testbed up --ssh-hosts` starts no Flink: each edge namespace gets its own sshd, a key pair
is made for root, and an inventory lists the sites as hosts, so `edgeplace cluster provision` can be
tried (and tested) on this one machine exactly as on Raspberry Pis."""
from __future__ import annotations

import grp
import pwd
import shutil
import subprocess
from pathlib import Path

import yaml

from common.errors import EdgeplaceError

SSHD = "/usr/sbin/sshd"
HOSTS_BASE = Path("/var/lib/edgeplace-testbed")
FLINK_USER = "edgeplace-flink"  # = the flink role's default flink_user: Flink runs as it on the hosts


def require_sshd() -> str:
    path = shutil.which("sshd") or (SSHD if Path(SSHD).exists() else None)
    if path is None:
        raise EdgeplaceError("--ssh-hosts needs OpenSSH's sshd (apt-get install openssh-server)")
    return path


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def remove_user(name: str) -> None:
    """Remove the system user (and its group) that provisioning the testbed's hosts made on this machine."""
    if user_exists(name):
        res = subprocess.run(["userdel", name], capture_output=True, text=True)
        if res.returncode != 0:
            raise EdgeplaceError(f"userdel {name}: {res.stderr.strip()}")
    try:
        grp.getgrnam(name)
    except KeyError:
        return
    subprocess.run(["groupdel", name], capture_output=True, text=True)


def make_keys(d: Path) -> Path:
    """A host key and a client key pair under `d`; returns the client's private key."""
    d.mkdir(parents=True, exist_ok=True)
    for name in ("host_ed25519", "client_ed25519"):
        if not (d / name).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"edgeplace-{name}",
                            "-f", str(d / name)], check=True, capture_output=True)
    (d / "authorized_keys").write_text((d / "client_ed25519.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    return d / "client_ed25519"


def sshd_config(d: Path, listen: str) -> Path:
    """A private sshd config: key-only root login on `listen`:22, keys and pid file under `d`."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir OpenSSH insists on
    conf = d / f"sshd-{listen}.conf"
    conf.write_text("\n".join([
        f"ListenAddress {listen}",
        f"HostKey {d / 'host_ed25519'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
        f"PidFile {d / f'sshd-{listen}.pid'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "Subsystem sftp internal-sftp",
        "",
    ]))
    return conf


def sshd_argv(conf: Path) -> list[str]:
    return [require_sshd(), "-D", "-e", "-f", str(conf)]


def known_hosts(d: Path, addrs: list[str]) -> Path:
    """A known_hosts file naming the testbed's own host key for each host address: hosts are checked, as
    on a real cluster, without a first-contact step (this machine made the key)."""
    key = (d / "host_ed25519.pub").read_text().split()
    path = d / "known_hosts"
    path.write_text("".join(f"{a} {key[0]} {key[1]}\n" for a in addrs))
    return path


def hosts_root(subnet: str) -> Path:
    """Where the hosts' installs live: outside edgeplace's home (whose parents only root may enter), so that
    Flink's own unprivileged user can reach its venv and data dir; one per testbed subnet."""
    return HOSTS_BASE / subnet.replace("/", "-")


def inventory(hosts: list[dict], key: Path, root: Path, rest_port: int, rpc_port: int,
              python: str = "/usr/bin/python3", known: Path | None = None) -> dict:
    """Ansible inventory: the first host forms group `cloud` (JobManager + a TaskManager), the rest `edge`.
    Each host gets its own directory under `root`; they share one data dir there, as this machine's file
    system is theirs too (a real cluster would share one over NFS for the same effect)."""
    def entry(h: dict, name: str, site: str) -> dict:
        return {"ansible_host": h["addr"], "site": site, "slots": h["slots"], "wan_interface": h["ifname"],
                "flink_root": str(root / name)}
    common = {"ansible_user": "root", "ansible_python_interpreter": python,
              "ansible_ssh_private_key_file": str(key),
              **({"ansible_ssh_common_args": f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known}",
                  "known_hosts_file": str(known)} if known else {}),
              "flink_rest_port": rest_port, "flink_rpc_port": rpc_port, "flink_data_dir": str(root / "data"),
              "flink_user": FLINK_USER,
              # the hosts share this machine's interpreters: the venv is made from one of the same version as
              # the one running edgeplace, so that a wheelhouse downloaded here fits it
              "flink_python": host_python()}
    first, rest = hosts[0], hosts[1:]
    return {"all": {"vars": common, "children": {
        "cloud": {"hosts": {"cloud-1": entry(first, "cloud-1", "cloud")}},
        "edge": {"hosts": {f"edge-{i}": entry(h, f"edge-{i}", f"edge-{i}") for i, h in enumerate(rest, 1)}},
    }}}


def base_python() -> str:
    """The interpreter behind this process's venv (a real file, usable to create further venvs)."""
    import sys
    return str(Path(getattr(sys, "_base_executable", sys.executable)).resolve())


def host_python() -> str:
    """The interpreter the hosts' venv is made from: this process's own (a wheelhouse downloaded here fits
    it exactly) where Flink's unprivileged user can reach it, else the system's of the same version (e.g.
    when this one lives under root's 0700 home, as pyenv's does)."""
    import sys
    own = Path(base_python())
    if all(d.stat().st_mode & 0o001 for d in own.parents) and own.stat().st_mode & 0o001:
        return str(own)
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        raise EdgeplaceError(f"--ssh-hosts: {own} lies where other users cannot reach it and there is no {system}; "
                             "Flink's own user could not run the hosts' Python")
    return str(system)


def write_inventory(path: Path, inv: dict) -> None:
    path.write_text("# written by `edgeplace testbed up --ssh-hosts`\n" + yaml.safe_dump(inv, sort_keys=False))
