"""The testbed's WAN: the bridge and one shaped veth pair per edge site, their byte counters, and running
a command at a site (in its namespace and CPU group)."""
from __future__ import annotations

import ipaddress
import shlex
import socket

import psutil

from collectors.profiles import CONTROL_DOWN, CONTROL_UP
from collectors.sockets import ControlMeter
from common.errors import EdgeplaceError
from common.say import Say
from experiments.testbed import network, state as st
from experiments.testbed.spec import TestbedSpec, bridge_name, cloud_links, gateway, site_links
from experiments.testbed.state import require

NETEM_MISSING = ("WAN delay emulation is unavailable: this kernel has no netem qdisc; "
                 "--wan-delay-ms is ignored here (real hosts provisioned with Ansible use netem)")


def check_subnet_unused(spec: TestbedSpec) -> None:
    """The testbed's subnet must not overlap any address this machine already has."""
    net = ipaddress.ip_network(spec.subnet)
    for ifname, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == socket.AF_INET and a.netmask:
                other = ipaddress.ip_network(f"{a.address}/{a.netmask}", strict=False)
                if other.overlaps(net):
                    raise EdgeplaceError(f"--subnet {spec.subnet} overlaps {other} already on {ifname}; "
                                         "choose an unused private /24")


def build_network(spec: TestbedSpec, state: st.State, say: Say) -> None:
    br = bridge_name(spec)
    for name in [br] + [l.host_if for l in site_links(spec) + cloud_links(spec)]:
        if network.link_exists(name):
            raise EdgeplaceError(f"interface {name} exists but is not recorded by edgeplace; "
                                 f"remove it (`ip link del {name}`) or use another --subnet")
    state.record("link", name=br)
    network.add_bridge(br, [f"{gateway(spec)}/24"])
    for link in [] if spec.ssh_hosts else cloud_links(spec):  # unshaped, no WAN link: not in state.links
        _add_namespace(link, br, state)
    delay_warned = False
    for link in site_links(spec):
        _add_namespace(link, br, state)
        entry = {"site": link.site, "netns": link.netns, "host_if": link.host_if, "ns_if": link.ns_if,
                 "addr": link.ns_addr, "mbit": None, "delay_ms": 0.0}
        state.links.append(entry)
        state.save()
        if spec.wan_mbit is not None:
            delay_warned |= shape_link(entry, spec.wan_mbit, spec.wan_delay_ms, state, say, delay_warned)
    state.save()


def _add_namespace(link, bridge: str, state: st.State) -> None:
    if network.netns_exists(link.netns):
        raise EdgeplaceError(f"network namespace {link.netns} exists but is not recorded by edgeplace; "
                             f"remove it (`ip netns del {link.netns}`) or use another --subnet")
    state.record("netns", name=link.netns)
    state.record("link", name=link.host_if)
    network.add_site(link.netns, bridge, link.host_if, link.ns_if, f"{link.ns_addr}/24")


def shape_link(link: dict, mbit: float | None, delay_ms: float, state: st.State, say: Say,
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


def wan_counters(state: st.State, meters: dict[str, ControlMeter] | None = None) -> dict[str, int]:
    """Cumulative bytes sent per edge link direction ('edge-1:up' = edge → cloud), from interface counters;
    with `meters` (kept by the caller between calls), also each TaskManager's own traffic with the JobManager
    ('edge-1:ctl-up' = sent by TaskManager edge-1), counted per socket in its namespace."""
    out = {}
    for link in state.links:
        out[f"{link['site']}:up"] = network.counters(link["ns_if"], link["netns"]).bytes_sent
        out[f"{link['site']}:down"] = network.counters(link["host_if"]).bytes_sent
    if meters is not None and state.mode == "isolated":
        jm = frozenset({gateway(TestbedSpec.from_dict(state.spec))})
        for tm in state.taskmanagers:
            text = network.run("ss", "-tinH", ns=tm["netns"], check=False).stdout if tm.get("netns") else ""
            if text:
                sent, received = meters.setdefault(tm["id"], ControlMeter(jm)).update(text)
                out[f"{tm['id']}:{CONTROL_UP}"], out[f"{tm['id']}:{CONTROL_DOWN}"] = sent, received
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
            warned = shape_link(link, mbit, delay_ms, state, say, warned)
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
