"""`edgeplace collect / profile`: sample a running job, and profile the samples."""
from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from common.errors import EdgeplaceError
from common.signals import sigterm_interrupts
from experiments.cli.output import NON_NEGATIVE, POSITIVE, console, err_console, num, pct, say


@click.command("collect")
@click.option("--job", "job_id", required=True)
@click.option("--duration", type=POSITIVE, default=60.0, show_default=True, help="seconds of samples to keep")
@click.option("--interval", type=POSITIVE, default=5.0, show_default=True, help="seconds between polls")
@click.option("--warmup", type=NON_NEGATIVE, default=0.0, show_default=True, help="seconds to sample and discard first")
@click.option("--rest", "rest_url", help="JobManager REST URL (no WAN counters; default: the local testbed)")
@click.option("--out", required=True, help="Parquet file for the tidy samples")
@click.option("--inventory", "-i", help="an Ansible cluster's inventory (default: the local testbed)")
def collect_cmd(job_id, duration, interval, warmup, rest_url, out, inventory) -> None:
    """Sample a running job's per-subtask metrics (and WAN bytes on the testbed) into Parquet."""
    from rich.progress import Progress
    from collectors.rest import FlinkRest
    from collectors.sampler import SampleRun, sample
    from collectors.store import save_samples
    wan = None
    if rest_url:
        rest = FlinkRest(rest_url)
    else:
        from experiments.environments import environment
        env = environment(inventory, say)
        rest, wan = env.target.rest, env.wan_counters
    rest.running_job(job_id)
    meta = {"job": job_id, "interval": interval, "warmup": warmup}
    kept = [save_samples(SampleRun(), out, meta)]  # --out is writable before sampling starts

    def write(run: SampleRun) -> None:  # after every poll: Ctrl-C or SIGTERM loses nothing
        kept[0] = save_samples(run, out, meta)

    try:
        with sigterm_interrupts(), Progress(console=err_console, transient=True) as bar:
            task = bar.add_task(f"collecting {job_id[:8]}", total=warmup + duration)
            run = sample(rest, job_id, duration, interval, wan, progress=lambda t: bar.update(task, completed=t),
                         warmup=warmup, on_poll=write)
    except KeyboardInterrupt:
        say(f"interrupted: the {kept[0]} samples taken so far are in {out}")
        sys.exit(130)
    write(run)
    say(f"{kept[0]} samples written to {out}" + (f"; {len(run.gaps)} gap(s) without answers" if run.gaps else ""))
    if run.stopped_because:
        raise EdgeplaceError(f"collection stopped early: {run.stopped_because}; the {kept[0]} samples taken are in {out}")


@click.command("profile")
@click.argument("samples_file")
@click.option("--json", "as_json", is_flag=True)
def profile_cmd(samples_file, as_json) -> None:
    """Per-operator profile (true rates, selectivity, bytes/record, busy/idle/backpressure, the CPU of the
    Python worker each vertex reported) from samples."""
    from collectors.profiles import profiles, wan_rates
    from collectors.store import load_samples
    df, meta = load_samples(samples_file)
    profs = profiles(df)
    wan = wan_rates(df)
    if as_json:
        click.echo(json.dumps({"operators": [p.to_json() for p in profs], "wan_bytes_per_s": wan,
                               "meta": meta}, indent=2, default=str))
        return
    t = Table("operator", "par", "true in/s", "true out/s", "in/s", "out/s",
              "sel.", "B/rec", "busy", "idle", "bp", "worker cores", "n", "spread", "flags")
    for p in profs:
        t.add_row(p.name, str(p.parallelism), num(p.true_processing_rate), num(p.true_output_rate),
                  num(p.observed_in_rate), num(p.observed_out_rate), num(p.selectivity, 4),
                  num(p.bytes_out_per_record), pct(p.busy), pct(p.idle), pct(p.backpressure),
                  f"{sum(c for _, _, c in p.workers):.3f}" if p.workers else "-", str(p.samples),
                  pct(p.spread), "; ".join(p.flags))
    console.print(t)
    for k, v in sorted(wan.items()):
        console.print(f"WAN {k}: {v * 8 / 1e6:.3f} Mbit/s ({v:,.0f} B/s)")
