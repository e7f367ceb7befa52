"""`edgeplace testbed …`: the local emulated edge–cloud cluster."""
from __future__ import annotations

import json

import click
from rich.table import Table

from common.errors import EdgeplaceError
from experiments.cli.output import NON_NEGATIVE, POSITIVE, console, say, yes_no


@click.group()
def testbed() -> None:
    """A local emulated edge–cloud Flink 2.3 cluster (namespaces, tc, cgroups)."""


@testbed.command("up")
@click.option("--edge", default=1, show_default=True, type=int, help="edge TaskManagers (one site each)")
@click.option("--cloud", default=1, show_default=True, type=int, help="cloud TaskManagers")
@click.option("--edge-slots", default=2, show_default=True, type=int)
@click.option("--cloud-slots", default=4, show_default=True, type=int)
@click.option("--edge-cpu", default=0.5, show_default=True, type=float, help="CPU quota per edge site, cores")
@click.option("--site-cpu", "site_cpu", multiple=True, metavar="SITE=CORES",
              help="one edge site's own CPU quota (e.g. edge-2=0.25); repeatable")
@click.option("--wan-mbit", default=10.0, show_default=True, type=float, help="edge link rate each way")
@click.option("--unshaped", is_flag=True, help="no WAN shaping at all")
@click.option("--wan-delay-ms", default=0.0, show_default=True, type=float, help="RTT (needs netem)")
@click.option("--rest-port", default=8081, show_default=True, type=int)
@click.option("--rpc-port", default=6123, show_default=True, type=int)
@click.option("--subnet", default="10.213.0.0/24", show_default=True, help="private /24 the testbed owns")
@click.option("--no-isolation", is_flag=True, help="force the loopback fallback (no netns/tc/cgroups)")
@click.option("--timeout", default=90.0, show_default=True, type=POSITIVE, help="seconds to wait for registration")
@click.option("--ssh-hosts", is_flag=True,
              help="no Flink: run sshd in each edge namespace and write an Ansible inventory (try `edgeplace cluster`)")
def testbed_up(edge, cloud, edge_slots, cloud_slots, edge_cpu, site_cpu, wan_mbit, unshaped, wan_delay_ms,
               rest_port, rpc_port, subnet, no_isolation, timeout, ssh_hosts) -> None:
    """Start 1 JobManager, EDGE edge and CLOUD cloud TaskManagers; returns when all are registered.
    With --ssh-hosts: EDGE SSH-reachable hosts instead, for provisioning with Ansible."""
    from experiments.testbed.spec import TestbedSpec
    from experiments.testbed.testbed import up
    spec = TestbedSpec(edge=edge, cloud=cloud, edge_slots=edge_slots, cloud_slots=cloud_slots, edge_cpu=edge_cpu,
                       wan_mbit=None if unshaped else wan_mbit, wan_delay_ms=wan_delay_ms, rest_port=rest_port,
                       rpc_port=rpc_port, subnet=subnet, isolate=not no_isolation, ssh_hosts=ssh_hosts,
                       site_cpu=site_quotas(site_cpu))
    up(spec, say=say, timeout=timeout)


def site_quotas(items: tuple[str, ...]) -> dict[str, float]:
    """SITE=CORES options as a dict; a malformed one is a usage error."""
    out = {}
    for item in items:
        site, sep, cores = item.partition("=")
        try:
            out[site] = float(cores)
        except ValueError:
            sep = ""
        if not sep or not site:
            raise click.BadParameter(f"takes SITE=CORES (e.g. edge-2=0.25), got {item!r}", param_hint="--site-cpu")
    return out


@testbed.command("down")
def testbed_down() -> None:
    """Remove everything the testbed created (by its records, never by process name)."""
    from experiments.testbed.testbed import down
    down(say=say)


@testbed.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def testbed_status(as_json: bool) -> None:
    """TaskManagers, slots, resources, links and bytes sent over each link."""
    from experiments.testbed import state as st
    from experiments.testbed.testbed import status
    state = st.load()
    if state is None:
        raise EdgeplaceError("no testbed is up; start one with `edgeplace testbed up`")
    s = status(state)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    console.print(f"testbed {s['phase']} ({s['mode']}), REST {s['rest']} "
                  f"{'reachable' if s['rest_reachable'] else 'NOT reachable'}, "
                  f"shaping {'on' if s['shaping'] else 'off'}, came up in {s['up_seconds']} s")
    t = Table("TaskManager", "site", "host", "alive", "registered", "slots free/total", "resources", "CPU quota")
    for tm in s["taskmanagers"]:
        t.add_row(tm["id"], tm["site"], tm["host"], yes_no(tm["alive"]), yes_no(tm["registered"]),
                  f"{tm['slots_free']}/{tm['slots_total']}" if tm["registered"] else "-",
                  ", ".join(f"{k}={v:g}" for k, v in tm["resources"].items()) or "-",
                  f"{tm['cpu_cores']:g} cores" if tm["cpu_cores"] else "none")
    console.print(t)
    if s["links"]:
        lt = Table("site", "rate each way", "delay", "bytes up (edge→cloud)", "bytes down (cloud→edge)")
        for link in s["links"]:
            lt.add_row(link["site"], f"{link['mbit']:g} Mbit/s" if link["mbit"] else "unshaped",
                       f"{link['delay_ms']:g} ms" if link["delay_ms"] else "none",
                       f"{link['up_bytes']:,}", f"{link['down_bytes']:,}")
        console.print(lt)
    for w in s["warnings"]:
        console.print(f"WARNING: {w}", markup=False)


@testbed.command("heal")
def testbed_heal() -> None:
    """Restart TaskManagers that died, with their original configuration, site and quota."""
    from experiments.testbed.testbed import heal, require
    restarted = heal(require(), say=say)
    say(f"restarted {', '.join(restarted)}" if restarted else "every TaskManager is running")


@testbed.command("wan")
@click.option("--mbit", type=POSITIVE, help="new rate each way")
@click.option("--unshaped", is_flag=True, help="remove shaping")
@click.option("--delay-ms", default=0.0, type=NON_NEGATIVE, help="RTT (needs netem)")
@click.option("--site", "sites", multiple=True, help="edge site(s) to change (default: all)")
def testbed_wan(mbit, unshaped, delay_ms, sites) -> None:
    """Change the WAN shaping of a running testbed."""
    from experiments.testbed.testbed import set_wan
    if unshaped == (mbit is not None):
        raise EdgeplaceError("give exactly one of --mbit or --unshaped")
    for link in set_wan(None if unshaped else mbit, delay_ms, list(sites) or None, say=say):
        say(f"{link['site']}: {str(link['mbit']) + ' Mbit/s' if link['mbit'] else 'unshaped'}")


@testbed.command("probe")
@click.option("--site", default="edge-1", show_default=True)
@click.option("--seconds", default=4.0, show_default=True, type=POSITIVE)
def testbed_probe(site: str, seconds: float) -> None:
    """Measure an edge link with a bulk TCP transfer from the site to the cloud side."""
    from experiments.testbed.linkprobe import measure_mbit
    from experiments.testbed.spec import TestbedSpec, gateway
    from experiments.testbed.testbed import require, site_argv
    state = require()
    mbit = measure_mbit(lambda argv: site_argv(state, site, argv), gateway(TestbedSpec.from_dict(state.spec)), seconds)
    console.print(f"{site} → cloud: {mbit:.2f} Mbit/s")
