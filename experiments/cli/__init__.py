"""The `edgeplace` command line: one module per command group, joined here."""
from __future__ import annotations

import faulthandler
import os
import sys

import click

from collectors.rest import FlinkRestError
from common.errors import EdgeplaceError
from common.signals import sigterm_interrupts
from experiments.cli import adapt, cluster, collect, experiments, jobs, planning, testbed
from experiments.cli.output import err_console


class Cli(click.Group):
    """Turns EdgeplaceError (and the REST client's errors) into one clear line and exit code 1, a usage
    error into one line and exit code 2, Ctrl-C or SIGTERM into exit code 130."""

    def main(self, *args, **kwargs):
        faulthandler.enable()  # a native crash prints every thread's Python stack, for the bug report
        try:
            with sigterm_interrupts():  # every command's clean-up runs on SIGTERM as on Ctrl-C
                code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            err_console.print(f"edgeplace: error: {exc.format_message()}{hint}", markup=False)
            code = 2
        except click.Abort:
            err_console.print("edgeplace: interrupted", markup=False)
            code = 130
        except SystemExit as exc:  # invoke()'s one-line errors
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # a bug: one line for the user, the traceback on request
            if os.environ.get("EDGEPLACE_DEBUG"):
                raise
            err_console.print(f"edgeplace: internal error: {type(exc).__name__}: {exc} "
                              "(run again with EDGEPLACE_DEBUG=1 for the traceback, and report it)", markup=False)
            code = 70
        _leave(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (EdgeplaceError, FlinkRestError) as exc:
            err_console.print(f"edgeplace: error: {exc}", markup=False)
            sys.exit(1)


def _leave(code: int) -> None:
    """Exit without tearing the interpreter down: every command has closed its files, connections and
    subprocesses by now, and Arrow's native thread pools (behind Parquet) can abort a process at teardown
    ("terminate called without an active exception", SIGABRT) after its work is done: an experiment on an
    SSH cluster did, once in four runs."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)


@click.group(cls=Cli)
def main() -> None:
    """edgeplace: place Flink operators between edge and cloud, measured and predicted."""


for command in (testbed.testbed, jobs.deploy_cmd, jobs.where_cmd, jobs.redeploy_cmd, jobs.queries_cmd,
                planning.plan_cmd, planning.predict_cmd, planning.calibrate_cmd, planning.bench,
                cluster.cluster, collect.collect_cmd, collect.profile_cmd, experiments.run_cmd,
                experiments.demo_cmd, experiments.plot_cmd, experiments.report_cmd, adapt.adapt_cmd):
    main.add_command(command)
