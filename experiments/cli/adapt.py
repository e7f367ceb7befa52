"""`edgeplace adapt`: the closed loop on a running job."""
from __future__ import annotations

from pathlib import Path

import click

from common.signals import sigterm_interrupts
from experiments.cli.output import NON_NEGATIVE, POSITIVE, say


@click.command("adapt")
@click.option("--job", "job_id", required=True, help="a job edgeplace deployed")
@click.option("--interval", type=POSITIVE, default=10.0, show_default=True, help="seconds between decisions")
@click.option("--window", type=POSITIVE, default=30.0, show_default=True, help="seconds of metrics each decision prices")
@click.option("--min-gain", type=NON_NEGATIVE, default=0.2, show_default=True, help="predicted gain that justifies a redeploy")
@click.option("--stable", type=click.IntRange(min=1), default=3, show_default=True,
              help="decisions in a row that must agree on the same better placement")
@click.option("--cooldown", type=NON_NEGATIVE, default=60.0, show_default=True, help="seconds between redeploys")
@click.option("--objective", type=click.Choice(["throughput", "wan"]), default="throughput", show_default=True,
              help="throughput: max sustainable rate; wan: fewest WAN bytes that sustain the offered rate")
@click.option("--warmup", type=NON_NEGATIVE, default=15.0, show_default=True,
              help="seconds after a (re)deploy whose metrics are not priced (start-up transients)")
@click.option("--log", "log_file", default="adapt.jsonl", show_default=True, help="decision log (JSON lines, appended)")
@click.option("--dry-run", is_flag=True, help="decide and log, never redeploy")
@click.option("--inventory", "-i", help="an Ansible cluster's inventory (default: the local testbed)")
def adapt_cmd(job_id, interval, window, min_gain, stable, cooldown, objective, warmup, log_file, dry_run, inventory) -> None:
    """Re-place a running job when its conditions change (collect → price → plan → decide → redeploy), until
    Ctrl-C or SIGTERM; the job is left on its last verified placement."""
    from experiments.adapt import AdaptOptions, adapt
    from experiments.environments import environment
    log = Path(log_file)
    try:
        log.open("a").close()
    except OSError as exc:
        from common.errors import EdgeplaceError
        raise EdgeplaceError(f"cannot write the decision log {log}: {exc.strerror}") from None
    with sigterm_interrupts():
        job = adapt(environment(inventory, say), job_id, AdaptOptions(interval, window, min_gain, stable, cooldown,
                                                                       objective, warmup), log, say, dry_run)
    click.echo(job)
