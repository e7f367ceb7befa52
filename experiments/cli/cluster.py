"""`edgeplace cluster …`: a real cluster provisioned and driven with the Ansible playbooks."""
from __future__ import annotations

import click

from common.errors import EdgeplaceError
from experiments.cli.output import NON_NEGATIVE, POSITIVE, say


@click.group()
def cluster() -> None:
    """A real cluster (Raspberry Pis + servers) provisioned with the Ansible playbooks in ansible/."""


def _inventory_option(f):
    return click.option("--inventory", "-i", required=True, help="Ansible inventory (see ansible/inventory/example.yml)")(f)


def _recap(run) -> None:
    for host, c in sorted(run.recap.items()):
        say(f"{host}: ok={c['ok']} changed={c['changed']} unreachable={c['unreachable']} failed={c['failed']}")


@cluster.command("provision")
@_inventory_option
@click.option("--no-wheel", is_flag=True, help="do not install edgeplace's own job code on the hosts")
@click.option("--forks", type=int, help="hosts provisioned at once (Ansible forks)")
@click.option("--wheelhouse", help="install offline from this directory of wheels (filled from PyPI if empty)")
@click.option("--platform", help="wheel platform of the hosts for --wheelhouse, e.g. manylinux2014_aarch64 for Pis")
@click.option("--wheel-python", type=click.Path(exists=True, dir_okay=False),
              help="fill --wheelhouse with this interpreter (the hosts' Python version: it decides which "
                   "dependencies they need)")
def cluster_provision(inventory, no_wheel, forks, wheelhouse, platform, wheel_python) -> None:
    """Install Java 17 and Flink 2.3 (PyFlink venv) and write every JobManager/TaskManager config (site.yml)."""
    from experiments.cluster import provision
    _recap(provision(inventory, say, with_wheel=not no_wheel, forks=forks, wheelhouse_dir=wheelhouse,
                     platform=platform, wheel_python=wheel_python))


@cluster.command("start")
@_inventory_option
def cluster_start(inventory) -> None:
    """Start the JobManager and TaskManagers; returns when every TaskManager is registered."""
    from experiments.cluster import run_playbook
    _recap(run_playbook("start", inventory, say=say))


@cluster.command("stop")
@_inventory_option
def cluster_stop(inventory) -> None:
    """Stop every TaskManager and the JobManager."""
    from experiments.cluster import run_playbook
    _recap(run_playbook("stop", inventory, say=say))


@cluster.command("wan")
@_inventory_option
@click.option("--mbit", type=POSITIVE, help="uplink rate of the edge sites, Mbit/s")
@click.option("--delay-ms", default=0.0, show_default=True, type=NON_NEGATIVE, help="added delay (netem, where present)")
@click.option("--site", help="only this edge site (default: all)")
@click.option("--clear", is_flag=True, help="remove the shaping")
@click.option("--from-inventory", is_flag=True, help="apply each site's wan_sites entry from the inventory")
def cluster_wan(inventory, mbit, delay_ms, site, clear, from_inventory) -> None:
    """Set, or clear, tc shaping on the edge hosts' uplinks (wan.yml)."""
    from experiments.cluster import run_playbook, wan
    if sum([mbit is not None, clear, from_inventory]) != 1:
        raise EdgeplaceError("give exactly one of --mbit, --clear or --from-inventory")
    if from_inventory:
        _recap(run_playbook("wan", inventory, say=say))
    else:
        _recap(wan(inventory, None if clear else mbit, delay_ms, site, say))


@cluster.command("facts")
@_inventory_option
@click.option("--out", default="cluster.json", show_default=True, help="cluster file for the planner")
def cluster_facts(inventory, out) -> None:
    """Collect cores, memory and architecture of every host into a cluster file (facts.yml)."""
    from experiments.cluster import facts
    data = facts(inventory, out, say)
    for n in data["nodes"]:
        say(f"{n['id']}: site {n['site']}, {n['slots']} slots, {n['cores']} cores, {n['memory_mb']} MB, {n['arch']}")
    say(f"wrote {out}")
