"""`edgeplace run / demo / plot / report`: experiments and their results."""
from __future__ import annotations

from pathlib import Path

import click

from experiments.cli.output import console, err_console


@click.command("run")
@click.argument("config_file")
@click.option("--results", default="results", show_default=True, help="directory for experiment results")
def run_cmd(config_file, results) -> None:
    """Run an experiment (resumable); writes Parquet results, figures and a report."""
    _run_and_report(config_file, results)


@click.command("demo")
@click.option("--results", default="results", show_default=True)
def demo_cmd(results) -> None:
    """The demo experiment on the local testbed: Nexmark q2 and the QA pipeline, thin vs fat link,
    Flink's own placement vs cloud-only vs optimal (≤ 10 min)."""
    _run_and_report(str(Path(__file__).parents[1] / "configs" / "demo.toml"), results)


def _run_and_report(config_file: str, results: str) -> None:
    from experiments import config as cfg
    cfg.load(config_file)  # a bad config is one line within a second, before the runner's heavy imports
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from experiments.cells import load_cells
    from experiments.report import headline, write_report
    from experiments.runner import run
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} cells"),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("experiment", total=None)
        root = run(config_file, results, say=lambda m: bar.console.print(m, markup=False),
                   progress=lambda i, n: bar.update(task, completed=i, total=n))
    report = write_report(root)
    console.print(f"report: {report}")
    for line in headline(load_cells(root)):
        console.print(f"  {line}", markup=False)


@click.command("plot")
@click.argument("results_dir")
def plot_cmd(results_dir) -> None:
    """PNG figures of an experiment's results."""
    from experiments.cells import load_cells
    load_cells(Path(results_dir))  # a damaged or foreign table is one line before matplotlib loads
    from experiments.plots import plot_all
    for f in plot_all(Path(results_dir)):
        console.print(str(f))


@click.command("report")
@click.argument("results_dir")
def report_cmd(results_dir) -> None:
    """Markdown report (tables, figures, headline numbers) of an experiment's results."""
    from experiments.cells import load_cells
    cells = load_cells(Path(results_dir))  # a damaged or foreign table is one line before matplotlib loads
    from experiments.report import headline, write_report
    console.print(f"report: {write_report(Path(results_dir))}")
    for line in headline(cells):
        console.print(f"  {line}", markup=False)
