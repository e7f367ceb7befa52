"""Markdown report of an experiment: settings, tables, figures and the headline numbers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from collectors.checkpoints import grew
from common.errors import EdgeplaceError
from common.files import write_atomic
from experiments.accuracy import accuracy, summary
from experiments.cells import cpu_rows, has_latency, load_cells
from experiments.plots import plot_all


def headline(df: pd.DataFrame) -> list[str]:
    """Speed-up of optimal/greedy over cloud-only per query and bandwidth, WAN reduction, model error."""
    lines = []
    mean = df.groupby(["query", "bandwidth_mbit", "policy"])[["measured_rate", "wan_bytes_per_event"]].mean()
    for (q, bw), g in mean.groupby(level=[0, 1]):
        g = g.droplevel([0, 1])
        if "cloud-only" not in g.index:
            continue
        base = g.loc["cloud-only"]
        for pol in ("optimal", "greedy", "flink-default"):
            if pol not in g.index or not base["measured_rate"] > 0:
                continue
            if not g.loc[pol, "measured_rate"] == g.loc[pol, "measured_rate"]:  # NaN: every repetition failed
                lines.append(f"{q} at {bw:g} Mbit/s: {pol} failed in every repetition (see \"Cells that failed\") vs "
                             f"cloud-only {base['measured_rate']:,.0f} events/s")
                continue
            sp = g.loc[pol, "measured_rate"] / base["measured_rate"]
            wan = (base["wan_bytes_per_event"] / g.loc[pol, "wan_bytes_per_event"]
                   if g.loc[pol, "wan_bytes_per_event"] > 0 else float("inf"))
            lines.append(f"{q} at {bw:g} Mbit/s: {pol} {g.loc[pol, 'measured_rate']:,.0f} events/s vs cloud-only "
                         f"{base['measured_rate']:,.0f} → {sp:.2f}× throughput, {wan:,.1f}× fewer WAN bytes per event")
    lines += adaptive_vs_static(df)
    err = model_error(df)
    if err is not None:
        lines.append(f"cost model: median |predicted − measured| / measured λ* = {err:.0%} over "
                     f"{int(df['predicted_rate'].notna().sum())} cells")
    return lines


def adaptive_vs_static(df: pd.DataFrame) -> list[str]:
    """Per query and phase of a changing-conditions experiment: adaptive's rate as a share of the best
    static policy's in that phase, and how often it redeployed there."""
    if "phase" not in df.columns or "adaptive" not in set(df["policy"]):
        return []
    lines = []
    mean = df.groupby(["query", "phase", "policy"]).agg(rate=("measured_rate", "mean"), bw=("bandwidth_mbit", "first"),
                                                        redeploys=("redeploys", "sum"))
    for (q, ph), g in mean.groupby(level=[0, 1]):
        g = g.droplevel([0, 1])
        static = g.drop(index="adaptive", errors="ignore")
        if "adaptive" not in g.index or static.empty or not static["rate"].max() > 0:
            continue
        best = static["rate"].idxmax()
        a = g.loc["adaptive"]
        lines.append(f"{q} phase {ph} ({a['bw']:g} Mbit/s): adaptive {a['rate']:,.0f} events/s = "
                     f"{a['rate'] / static.loc[best, 'rate']:.0%} of the best static ({best}, "
                     f"{static.loc[best, 'rate']:,.0f}); " + _per_repetition(df[(df["query"] == q) & (df["phase"] == ph)]))
    return lines


def _per_repetition(cells: pd.DataFrame) -> str:
    """Adaptive's redeploys in one phase, and with several repetitions each one's share of that
    repetition's best static rate (the spread between repetitions on a shared machine is large)."""
    rates = cells.pivot_table(index="repetition", columns="policy", values="measured_rate", aggfunc="mean")
    moves = cells[cells["policy"] == "adaptive"].groupby("repetition")["redeploys"].sum()
    if len(rates) < 2:
        return f"{moves.sum():g} redeploy(s)"
    share = rates["adaptive"] / rates.drop(columns="adaptive").max(axis=1)
    return (f"redeploys per repetition: {', '.join(f'{m:g}' for m in moves)}; per repetition "
            + ", ".join(f"{x:.0%}" for x in share) + " of its best static")


def model_error(df: pd.DataFrame) -> float | None:
    pm = df.dropna(subset=["predicted_rate"])
    pm = pm[np.isfinite(pm["predicted_rate"]) & (pm["measured_rate"] > 0)]
    if pm.empty:
        return None
    return float(np.median(np.abs(pm["predicted_rate"] - pm["measured_rate"]) / pm["measured_rate"]))


def _metadata(results: Path) -> dict:
    f = results / "metadata.json"
    if not f.exists():
        return {}
    try:
        meta = json.loads(f.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        meta["versions"], meta["host"], meta["config"]["cluster"]  # what the header needs
        return meta
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgeplaceError(f"{f} is damaged ({exc}); restore it or re-run the experiment") from None


def _measured(conf: dict) -> str:
    """How long each cell was measured: its duration, or for a changing-conditions config its phases."""
    phases = conf.get("phases") or []
    if not phases:
        return f"measured {conf.get('duration_s')} s"
    return ("phases " + " → ".join(f"{p['mbit']:g} Mbit/s for {p['duration_s']:g} s" for p in phases)
            + f", each measured after {conf.get('settle_s'):g} s of settling")


def _unmeasured(df: pd.DataFrame) -> list[str]:
    """What no cell measured (latency where the sinks' files are not on this machine; CPU per TaskManager
    where no host said where its TaskManager's pid file is)."""
    return [what for what, seen in (("latency", has_latency(df)), ("CPU per TaskManager", bool(cpu_rows(df))))
            if not seen]


def _cluster(meta: dict, df: pd.DataFrame) -> str:
    """The cluster the cells ran on: as the runner recorded it, else (older results) as the config asked."""
    ran = meta.get("cluster")
    if not ran:
        c = meta["config"]["cluster"]
        return (f"{c['edge']} edge TaskManager(s) at {c['edge_cpu']} cores each, {c['cloud']} cloud "
                "TaskManager(s); links shaped with tc htb")
    nodes = "; ".join(f"{n['id']}{' on ' + n['host'] if n.get('host') else ''} (site {n['site']}, {n['slots']} slots, "
                      f"{n['cores']:g} cores{', speed %.2f' % n['speed'] if ran.get('speeds_measured') else ''})"
                      for n in ran["nodes"])
    kind = "the local emulated testbed" if ran["kind"] == "local" else "an Ansible cluster"
    unmeasured = _unmeasured(df)
    return (f"{kind}: {nodes}; links shaped with tc htb"
            + (f"; not measured there: {', '.join(unmeasured)}" if unmeasured else ""))


def _crossover_lines(results: Path) -> list[str]:
    """Per profiled query: the link bandwidths at which the cost model's best layout changes."""
    from costmodel.problem import load
    from placement.crossover import crossovers, describe
    lines = []
    for f in sorted(results.glob("problem-*.json")):
        p = load(f)
        found = crossovers(p)
        query = f.stem.removeprefix("problem-")
        if not found:
            lines.append(f"- {query}: none between 0.05 and 1000 Mbit/s")
            continue
        lines.append(f"- {query}:")  # one line per change: a layout of several sites is itself a list
        lines += [f"  - at {c.mbit:.3g} Mbit/s: from {describe(p, c.below)}, to {describe(p, c.above)}"
                  for c in found]
    return ["", "## Predicted crossovers (where the best layout changes with the link)", "", *lines] if lines else []


def write_report(results: Path) -> Path:
    results = Path(results)
    df = load_cells(results)
    figs = plot_all(results)
    meta = _metadata(results)
    conf = meta.get("config", {})
    lines = [f"# edgeplace experiment: {conf.get('name', results.name)}", ""]
    if meta:
        v, h = meta["versions"], meta["host"]
        lines += [f"Made on {h['hostname']} ({h['cpus']} CPUs, {h['processor']}, kernel {v['kernel']}) with "
                  f"edgeplace {v['edgeplace']}, Flink {v['apache-flink']}, Python {v['python']}; config hash "
                  f"`{meta['config_hash']}`, seed {meta['seed']}.", "",
                  f"Cluster: {_cluster(meta, df)}. Sources "
                  f"{'unthrottled (sustainable rate)' if conf.get('source_rate') == 'max' else conf.get('source_rate')}, "
                  f"warm-up {conf.get('warmup_s')} s, {_measured(conf)}, "
                  f"{conf.get('repetitions')} repetition(s).", ""]
        own = conf["cluster"].get("sites") or {}
        if own:
            lines += ["Sites with their own conditions (the others follow the cell's bandwidth): " + "; ".join(
                f"{s}: " + ", ".join(x for x in (f"link {v['mbit']:g} Mbit/s" if "mbit" in v else "",
                                                  f"{v['cpu']:g} cores" if "cpu" in v else "") if x)
                for s, v in sorted(own.items())) + ".", ""]
    lines += ["## Headline", ""] + [f"- {h}" for h in headline(df)] + [""]
    table = df.groupby(["query", "bandwidth_mbit", "policy"]).agg(
        rate=("measured_rate", "mean"), rate_std=("measured_rate", "std"), predicted=("predicted_rate", "mean"),
        wan_b_per_event=("wan_bytes_per_event", "mean"), p50_ms=("latency_p50", "mean"),
        p99_ms=("latency_p99", "mean"), n=("measured_rate", "count")).reset_index()
    table["p50_ms"] *= 1000
    table["p99_ms"] *= 1000
    if not has_latency(df):  # no empty columns of what was not measured
        table = table.drop(columns=["p50_ms", "p99_ms"])
    lines += ["## Results (mean over repetitions)", "", _markdown(table), ""]
    lines += _accuracy_lines(df)
    lines += ["## Placements", ""]
    for _, r in df.drop_duplicates(["query", "bandwidth_mbit", "policy"]).iterrows():
        asg = json.loads(r["placement"])["assignments"]
        lines.append(f"- {r['query']} @ {r['bandwidth_mbit']:g} Mbit/s, {r['policy']}: "
                     + ", ".join(f"{k}→{v}" for k, v in asg.items())
                     + (" (others: Flink decides)" if json.loads(r["placement"]).get("meta", {}).get("partial") else ""))
    lines += _crossover_lines(results)
    failed = df[df["note"].astype(str).str.startswith("failed: ")] if "note" in df.columns else df.iloc[:0]
    if not failed.empty:
        lines += ["", "## Cells that failed (a re-run tries them again)", ""]
        lines += [f"- {r['cell']}: {r['note'].removeprefix('failed: ')}" for _, r in failed.iterrows()]
    lines += _growing_lines(df)
    lines += ["", "## Figures", ""] + [f"![{f.stem}](figures/{f.name})" for f in figs] + [""]
    out = results / "report.md"
    write_atomic(out, "\n".join(lines), "report")
    return out


def _growing_lines(df: pd.DataFrame) -> list[str]:
    """The cells whose checkpointed state grew while they were measured: a transient was measured there."""
    if "state_bytes_start" not in df.columns:
        return []
    rows = [(r, g) for _, r in df.iterrows() if (g := grew(r["state_bytes_start"], r["state_bytes_end"]))]
    if not rows:
        return []
    return ["", "## Cells measured while their state grew", "",
            "Their job had not reached its steady state; a state that keeps growing at the edge may outgrow the "
            "link's checkpoint limit later (the model prices the state it profiled).", ""] + \
        [f"- {r['cell']}: {g}; measured {r['measured_rate']:,.0f} events/s, predicted "
         f"{r['predicted_rate']:,.0f} ({r['predicted_bottleneck']})" for r, g in rows]


def _accuracy_lines(df: pd.DataFrame) -> list[str]:
    """The cost model against the measurements, on the medians over repetitions (errors in %)."""
    a = accuracy(df[df["policy"] != "adaptive"])  # adaptive's prediction is of the layout it started from
    if a is None:
        return []
    t = a.cells.assign(error_pct=a.cells["error"] * 100, wan_error_pct=a.cells["wan_error"] * 100)
    t = t[["query", "bandwidth_mbit", "policy", "n", "measured", "predicted", "error_pct", "wan_measured",
           "wan_predicted", "wan_error_pct"]]
    return ["## Cost model (medians over repetitions)", ""] + [f"- {x}" for x in summary(a)] + ["", _markdown(t), ""]


def _markdown(df: pd.DataFrame) -> str:
    """A Markdown table; bandwidths keep their digits (0.25, not 0.2), other floats get one decimal."""
    cols = list(df.columns)

    def fmt(col: str, v) -> str:
        if not isinstance(v, float):
            return str(v)
        return f"{v:g}" if col == "bandwidth_mbit" else f"{v:,.1f}"
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                     ["| " + " | ".join(fmt(c, v) for c, v in zip(cols, row)) + " |"
                      for row in df.itertuples(index=False)])
