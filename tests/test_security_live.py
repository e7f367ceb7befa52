"""What the testbed exposes: nothing of it listens beyond loopback and its own subnet (live)."""
from __future__ import annotations

import ipaddress
import subprocess

import pytest
import requests

from experiments.testbed.spec import TestbedSpec, gateway
from experiments.testbed.teardown import testbed_processes

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


def _allowed(addr: str, subnet) -> bool:
    if addr in ("*", "0.0.0.0", "::"):
        return False
    ip = ipaddress.ip_address(addr.removeprefix("::ffff:"))
    return ip.is_loopback or ip in subnet


def test_nothing_of_the_testbed_listens_beyond_loopback_and_its_subnet(shared_testbed):
    state = shared_testbed
    spec = TestbedSpec.from_dict(state.spec)
    subnet = ipaddress.ip_network(spec.subnet)
    ours = {p.pid for p in testbed_processes(state)}
    seen = [(a, pid) for ns in [None, *(l["netns"] for l in state.links)] for a, pid in _listening(ns) if pid in ours]
    assert len({pid for _, pid in seen}) >= 1 + len(state.taskmanagers)  # the JobManager and every TaskManager
    wild = sorted({a for a, _ in seen if not _allowed(a, subnet)})
    assert not wild, f"testbed processes listen on {wild}"
    # REST (job submission without authentication) answers on loopback only, and without jar upload
    rest = f"http://127.0.0.1:{spec.rest_port}"
    assert requests.get(f"{rest}/config", timeout=5).json()["features"]["web-submit"] is False
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{gateway(spec)}:{spec.rest_port}/config", timeout=5)
