"""Edge sites as network namespaces on a root-namespace bridge, each link shaped with tc htb."""
from __future__ import annotations

import re
from dataclasses import dataclass

from experiments.testbed.sysrun import ok, run

HTB_CLASS = "1:10"


def netns_exists(name: str) -> bool:
    return name in run("ip", "netns", "list").stdout.split()


def link_exists(name: str) -> bool:
    return ok("ip", "link", "show", "dev", name)


def _ipv4_only(dev: str, ns: str | None = None) -> None:
    """No IPv6 (not even link-local) on a testbed interface: it carries the testbed's /24 and nothing else."""
    run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6", ns=ns)


def add_bridge(name: str, addrs: list[str]) -> None:
    run("ip", "link", "add", name, "type", "bridge")
    _ipv4_only(name)
    for a in addrs:
        run("ip", "addr", "add", a, "dev", name)
    run("ip", "link", "set", name, "up")


def add_site(netns: str, bridge: str, host_if: str, ns_if: str, ns_addr: str) -> None:
    """Namespace with `lo` up and a veth whose far end (`ns_if`, address `ns_addr`) lives inside it."""
    run("ip", "netns", "add", netns)
    run("ip", "link", "set", "lo", "up", ns=netns)
    run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    run("ip", "link", "set", ns_if, "netns", netns)
    _ipv4_only(host_if)
    _ipv4_only(ns_if, netns)
    run("ip", "link", "set", host_if, "master", bridge)
    run("ip", "link", "set", host_if, "up")
    # MTU-sized segments (no 64 kB GSO super-packets), so a byte-limited queue behaves like a real link's
    run("ip", "link", "set", "dev", host_if, "gso_max_size", "1514")
    run("ip", "link", "set", "dev", ns_if, "gso_max_size", "1514", ns=netns)
    run("ip", "addr", "add", ns_addr, "dev", ns_if, ns=netns)
    run("ip", "link", "set", ns_if, "up", ns=netns)


def delete_link(name: str) -> None:
    if link_exists(name):
        ok("ip", "link", "del", name)


def netns_pids(name: str) -> list[int]:
    """PIDs of processes inside network namespace `name` (none if it does not exist)."""
    if not netns_exists(name):
        return []
    return [int(x) for x in run("ip", "netns", "pids", name, check=False).stdout.split()]


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ok("ip", "netns", "del", name)


def leaf_limit_bytes(mbit: float) -> int:
    """Queue of a shaped link: 100 ms of its rate, at least 30 full Ethernet frames (the Ansible role's tc
    module, which runs on hosts without edgeplace, has the same rule)."""
    return max(30 * 1514, int(mbit * 1e6 / 8 * 0.1))


def shape(dev: str, mbit: float, ns: str | None = None) -> None:
    """Egress of `dev` limited to `mbit` with one htb class (replaces any previous shaping)."""
    unshape(dev, ns)
    rate = f"{mbit}mbit"
    run("tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", ns=ns)
    run("tc", "class", "add", "dev", dev, "parent", "1:", "classid", HTB_CLASS, "htb",
        "rate", rate, "ceil", rate, ns=ns)
    # a bounded queue (100 ms of the rate, at least 30 full frames), as a real link has: htb's default
    # leaf queues 1000 packets, 48 s at 0.25 Mbit/s, and that bufferbloat hides backpressure from Flink
    limit = leaf_limit_bytes(mbit)
    run("tc", "qdisc", "add", "dev", dev, "parent", HTB_CLASS, "handle", "10:", "bfifo", "limit", str(limit), ns=ns)


def add_delay(dev: str, delay_ms: float, ns: str | None = None) -> bool:
    """netem delay (in place of the bfifo leaf) under the htb class; False when this kernel has no netem."""
    return ok("tc", "qdisc", "replace", "dev", dev, "parent", HTB_CLASS, "handle", "10:", "netem",
              "delay", f"{delay_ms}ms", ns=ns)


def unshape(dev: str, ns: str | None = None) -> None:
    ok("tc", "qdisc", "del", "dev", dev, "root", ns=ns)


@dataclass(frozen=True)
class LinkCounters:
    shaped: bool
    rate_mbit: float | None
    bytes_sent: int


def counters(dev: str, ns: str | None = None) -> LinkCounters:
    """Bytes sent on `dev` so far (interface counter: survives re-shaping) and its htb rate, if shaped."""
    out = run("tc", "class", "show", "dev", dev, ns=ns, check=False).stdout
    m = re.search(r"class htb 1:10 .*?rate (\S+)", out)
    tx = run("cat", f"/sys/class/net/{dev}/statistics/tx_bytes", ns=ns, check=False).stdout.strip()
    return LinkCounters(m is not None, _mbit(m.group(1)) if m else None, int(tx) if tx.isdigit() else 0)


def _mbit(rate: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMG]?)bit", rate)
    if not m:
        return float("nan")
    scale = {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3}[m.group(2)]
    return float(m.group(1)) * scale


def ok_netns(probe: str) -> bool:
    """Can this process create network namespaces? (creates and removes a throw-away one)"""
    if not ok("ip", "netns", "add", probe):
        return False
    ok("ip", "netns", "del", probe)
    return True
