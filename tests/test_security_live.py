"""What the testbed exposes: nothing of it listens beyond loopback and its own subnet (live)."""
from __future__ import annotations

import ipaddress
import subprocess

import pytest
import requests

from experiments.testbed.spec import TestbedSpec, gateway
from experiments.testbed import teardown

pytestmark = [pytest.mark.live]


def _listening(netns: str | None) -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket in the root namespace or in `netns`."""
    cmd = ["ss", "-ltnpH"] if netns is None else ["ip", "netns", "exec", netns, "ss", "-ltnpH"]
    out = []
    for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines():
        cols = line.split()
        addr = cols[3].rsplit(":", 1)[0].strip("[]")
        for part in line.split("pid=")[1:]:
            out.append((addr, int(part.split(",")[0])))
    return out


def _addresses(netns: str | None) -> list[str]:
    cmd = ["ip", "-o", "addr"] if netns is None else ["ip", "netns", "exec", netns, "ip", "-o", "addr"]
    return [line.split()[3].split("/")[0] for line in subprocess.run(cmd, capture_output=True, text=True,
                                                                      check=True).stdout.splitlines()]


def _inside(addr: str, subnet) -> bool:
    ip = ipaddress.ip_address(addr.removeprefix("::ffff:"))
    return ip.is_loopback or ip in subnet


def test_nothing_of_the_testbed_listens_beyond_loopback_and_its_subnet(shared_testbed):
    """In the root namespace every socket of the testbed is bound to loopback or to its bridge; inside the
    TaskManagers' own namespaces PyFlink's Beam servers bind every interface, and every interface there is
    loopback or on the testbed subnet."""
    state = shared_testbed
    spec = TestbedSpec.from_dict(state.spec)
    subnet = ipaddress.ip_network(spec.subnet)
    ours = {p.pid for p in teardown.testbed_processes(state)}
    namespaces = sorted({tm["netns"] for tm in state.taskmanagers if tm["netns"]})
    assert len(namespaces) == len(state.taskmanagers)  # cloud TaskManagers too
    root = [(a, pid) for a, pid in _listening(None) if pid in ours]
    assert root and all(a not in ("*", "0.0.0.0", "::") and _inside(a, subnet) for a, _ in root), root
    for ns in namespaces:
        assert all(_inside(a, subnet) for a in _addresses(ns)), (ns, _addresses(ns))
        assert [a for a, pid in _listening(ns) if pid in ours], f"nothing of the testbed listens in {ns}"
    # REST (job submission without authentication) answers on loopback only, and without jar upload
    rest = f"http://127.0.0.1:{spec.rest_port}"
    assert requests.get(f"{rest}/config", timeout=5).json()["features"]["web-submit"] is False
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{gateway(spec)}:{spec.rest_port}/config", timeout=5)
