"""The `edgeplace` command line: one module per command group, joined here."""
from __future__ import annotations

import sys

import click

from collectors.rest import FlinkRestError
from common.errors import EdgeplaceError
from experiments.cli import cluster, collect, experiments, jobs, planning, testbed
from experiments.cli.output import err_console


class Cli(click.Group):
    """Turns EdgeplaceError (and the REST client's errors) into one clear line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (EdgeplaceError, FlinkRestError) as exc:
            err_console.print(f"edgeplace: error: {exc}", markup=False)
            sys.exit(1)


@click.group(cls=Cli)
def main() -> None:
    """edgeplace: place Flink operators between edge and cloud, measured and predicted."""


for command in (testbed.testbed, jobs.deploy_cmd, jobs.where_cmd, jobs.redeploy_cmd, jobs.queries_cmd,
                planning.plan_cmd, planning.predict_cmd, planning.calibrate_cmd, planning.bench,
                cluster.cluster, collect.collect_cmd, collect.profile_cmd, experiments.run_cmd,
                experiments.demo_cmd, experiments.plot_cmd, experiments.report_cmd):
    main.add_command(command)
