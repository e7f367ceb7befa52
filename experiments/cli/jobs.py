"""`edgeplace deploy / where / redeploy / queries`: jobs and their placements on a cluster."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from common.errors import EdgeplaceError
from experiments.cli.output import POSITIVE, console, say


def _print_where(where: dict, placement=None) -> None:
    t = Table("operator", "TaskManager(s)", "planned")
    for uid, tms in sorted(where.items()):
        t.add_row(uid, ", ".join(sorted(x or "(not scheduled)" for x in tms)),
                  placement.assignments.get(uid, "-") if placement else "-")
    console.print(t)


@click.command("deploy", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--query", required=True, help="job name (see `edgeplace queries`)")
@click.option("--placement", "placement_file", help="placement JSON")
@click.option("--schedulercfg", "scfg_file", help="schedulercfg file (one line per subtask)")
@click.option("--timeout", type=POSITIVE, default=90.0, show_default=True, help="seconds to wait for the placement")
@click.option("--inventory", "-i", help="an Ansible cluster's inventory (default: the local testbed)")
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED)
def deploy_cmd(query, placement_file, scfg_file, timeout, inventory, job_args) -> None:
    """Submit QUERY with a placement and verify every subtask runs where planned."""
    from experiments.environments import environment
    from placement.realize import Realizer, load_placement, operators
    target = environment(inventory, say).target
    placement = load_placement(placement_file, scfg_file, operators(query, list(job_args)), target.rest)
    d = Realizer(target, say).deploy(query, list(job_args), placement, timeout)
    _print_where(d.where, placement)
    say("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in d.phases.items()))
    click.echo(d.job_id)


@click.command("where")
@click.option("--job", "job_id", required=True)
@click.option("--out", help="write the actual placement as placement JSON")
@click.option("--schedulercfg", "scfg_out", help="write it as schedulercfg")
@click.option("--inventory", "-i", help="an Ansible cluster's inventory (default: the local testbed)")
def where_cmd(job_id, out, scfg_out, inventory) -> None:
    """Where each operator of a running job actually runs."""
    from collectors.attribution import actual as actual_where
    from common import paths
    from experiments.environments import environment
    from placement import records, schedulercfg
    from placement.checks import cluster_view
    from placement.realize import operators
    from queries.topology import all_tasks
    target = environment(inventory, say).target
    rec = records.load_record(paths.home(), job_id)
    ops = operators(rec["query"], rec["args"]) if rec else None
    where = actual_where(target.rest, job_id, ops)
    _print_where(where)
    actual = records.placement_of(where)
    if out:
        actual.write(out)
        say(f"wrote {out}")
    if scfg_out:
        if ops is None:
            raise EdgeplaceError("schedulercfg needs the job's operators; this job was not deployed by edgeplace")
        hosts = {tm.id: tm.host for tm in cluster_view(target.rest).values()}
        Path(scfg_out).write_text(schedulercfg.emit(actual, all_tasks(ops), hosts))
        say(f"wrote {scfg_out}")


@click.command("redeploy")
@click.option("--job", "job_id", required=True)
@click.option("--placement", "placement_file", required=True)
@click.option("--timeout", type=POSITIVE, default=90.0, show_default=True)
@click.option("--inventory", "-i", help="an Ansible cluster's inventory (default: the local testbed)")
def redeploy_cmd(job_id, placement_file, timeout, inventory) -> None:
    """Stop with savepoint, resubmit with a new placement, verify; roll back if that fails."""
    from experiments.environments import environment
    from placement.model import Placement
    from placement.realize import Realizer
    d = Realizer(environment(inventory, say).target, say).redeploy(job_id, Placement.read(placement_file), timeout)
    _print_where(d.where)
    say("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in d.phases.items())
        + " (the new job is built while the old one stops: submit counts from the same start as savepoint)")
    click.echo(d.job_id)


@click.command("queries")
def queries_cmd() -> None:
    """The jobs edgeplace can run, with their operators."""
    from queries import options, registry
    for name in sorted(registry.QUERIES):
        mod = registry.load(name)
        console.print(f"[bold]{name}[/bold]: {mod.DESCRIPTION}")
        t = Table("uid", "name", "stateful", "per site", "inputs", "Flink tasks")
        # which operators get one copy per edge site when the job reads several (`<uid>@<site>`)
        replicated = {o.replica_of for o in mod.topology(options.parse(["--sites", "edge-1,edge-2"]))}
        for op in mod.topology(options.parse([])):
            t.add_row(op.uid, op.name, "yes" if op.stateful else "no",
                      "source" if op.is_source else "yes" if op.uid in replicated else "no",
                      ", ".join(op.inputs) or "-", "; ".join(x.task_name for x in op.tasks()))
        console.print(t)
    console.print("per site: with several edge sites, one copy per site (uid@site) at that site's data; "
                  "`--opt per_site=0` keeps one shared operator")
