"""Figures of an experiment's results (PNG): throughput vs bandwidth, WAN bytes per event, latency,
CPU per TaskManager, predicted vs measured."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments.cells import LATENCY, cpu_rows, has_latency, load_cells  # noqa: E402


def _stats(df: pd.DataFrame, value: str) -> pd.DataFrame:
    return df.groupby(["query", "policy", "bandwidth_mbit"])[value].agg(["mean", "std", "count"]).reset_index()


def plot_all(results: Path) -> list[Path]:
    df = load_cells(results)
    out = Path(results) / "figures"
    out.mkdir(exist_ok=True)
    queries = sorted(df["query"].unique())
    policies = sorted(df["policy"].unique())
    files = []

    fig, axes = plt.subplots(1, len(queries), figsize=(5.5 * len(queries), 4.2), squeeze=False)
    st = _stats(df, "measured_rate")
    for ax, q in zip(axes[0], queries):
        for p in policies:
            s = st[(st["query"] == q) & (st["policy"] == p)].sort_values("bandwidth_mbit")
            ax.errorbar(s["bandwidth_mbit"], s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3, label=p)
        ax.set(title=f"{q}: sustained source rate", xlabel="WAN bandwidth (Mbit/s)", ylabel="events/s (mean ± std)")
        _log_where_positive(ax, st[st["query"] == q]["mean"], both=True)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    files.append(_save(fig, out / "throughput_vs_bandwidth.png"))

    fig, axes = plt.subplots(1, len(queries), figsize=(5.5 * len(queries), 4.2), squeeze=False)
    st = _stats(df, "wan_bytes_per_event")
    for ax, q in zip(axes[0], queries):
        s = st[st["query"] == q]
        bws = sorted(s["bandwidth_mbit"].unique())
        width = 0.8 / max(1, len(policies))
        for i, p in enumerate(policies):
            sp = s[s["policy"] == p].set_index("bandwidth_mbit").reindex(bws)
            ax.bar(np.arange(len(bws)) + i * width, sp["mean"], width, yerr=sp["std"].fillna(0), label=p)
        ax.set_xticks(np.arange(len(bws)) + width * (len(policies) - 1) / 2, [f"{b:g} Mbit/s" for b in bws])
        ax.set(title=f"{q}: WAN bytes per source event", ylabel="bytes/event (edge → cloud)")
        _log_where_positive(ax, s["mean"])
        ax.legend()
    files.append(_save(fig, out / "wan_bytes_per_event.png"))

    if has_latency(df):  # no empty figure of what was not measured
        files.append(_latency(df, queries, out / "latency.png"))
    rows = cpu_rows(df)
    if rows:  # measured on the local testbed only
        files.append(_cpu(pd.DataFrame(rows), queries, out / "cpu_per_node.png"))

    fig, ax = plt.subplots(figsize=(5.5, 5))
    pm = df.dropna(subset=["predicted_rate"])
    pm = pm[np.isfinite(pm["predicted_rate"])]
    for q in queries:
        s = pm[pm["query"] == q]
        ax.scatter(s["predicted_rate"], s["measured_rate"], label=q)
    pm = pm[(pm["predicted_rate"] > 0) & (pm["measured_rate"] > 0)]
    ax.set(title="cost model: predicted vs measured λ*", xlabel="predicted events/s", ylabel="measured events/s")
    if pm.empty:
        ax.text(0.5, 0.5, "no cell has a finite prediction", ha="center", va="center", transform=ax.transAxes)
    else:
        lo = max(1.0, min(pm["predicted_rate"].min(), pm["measured_rate"].min()) / 2)
        hi = max(pm["predicted_rate"].max(), pm["measured_rate"].max()) * 2
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="predicted = measured")
        ax.set(xscale="log", yscale="log")
        ax.legend()
    files.append(_save(fig, out / "predicted_vs_measured.png"))
    if "phase" in df.columns and df["phase"].nunique() > 1:
        files.append(_phases(df, queries, policies, out / "phases.png"))
    return files


def _latency(df: pd.DataFrame, queries: list[str], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(queries), figsize=(5.5 * len(queries), 4.2), squeeze=False)
    for ax, q in zip(axes[0], queries):
        s = df[df["query"] == q].groupby(["policy", "bandwidth_mbit"])[LATENCY].mean()
        labels = [f"{p}\n{b:g} Mbit/s" for p, b in s.index]
        x = np.arange(len(s))
        for i, col in enumerate(LATENCY):
            ax.bar(x + i * 0.27, s[col] * 1000, 0.27, label=col.split("_")[1])
        ax.set_xticks(x + 0.27, labels, fontsize=7)
        ax.set(title=f"{q}: end-to-end latency at the sustained rate", ylabel="ms")
        _log_where_positive(ax, s.stack())
        ax.legend()
    return _save(fig, path)


def _cpu(cpu: pd.DataFrame, queries: list[str], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(queries), figsize=(5.5 * len(queries), 4.2), squeeze=False)
    for ax, q in zip(axes[0], queries):
        mine = cpu[cpu["query"] == q]
        if mine.empty:
            continue
        s = mine.groupby(["policy", "bw", "tm"])["cores"].mean().unstack("tm").fillna(0)
        s.index = [f"{p}\n{b:g} Mbit/s" for p, b in s.index]
        s.plot.bar(ax=ax, rot=0, fontsize=7)
        ax.set(title=f"{q}: CPU per TaskManager (process tree)", ylabel="cores")
    return _save(fig, path)


def _phases(df: pd.DataFrame, queries: list[str], policies: list[str], path: Path) -> Path:
    """Rate and WAN bytes through the phases of a changing-conditions experiment, per policy; the number
    of redeploys the adaptive policy made in a phase is written at its point."""
    fig, axes = plt.subplots(2, len(queries), figsize=(5.5 * len(queries), 7), squeeze=False)
    for col, q in enumerate(queries):
        s = df[df["query"] == q]
        phases = s.groupby("phase")["bandwidth_mbit"].first().sort_index()
        for row, (value, label) in enumerate((("measured_rate", "events/s (mean)"),
                                              ("wan_up_bytes_per_s", "WAN bytes/s up (mean)"))):
            ax = axes[row][col]
            for p in policies:
                sp = s[s["policy"] == p].groupby("phase")[[value, "redeploys"]].mean().reindex(phases.index)
                ax.plot(sp.index, sp[value], marker="o", drawstyle="steps-mid", label=p)
                for ph, r in sp.iterrows():
                    if r["redeploys"] > 0 and r[value] == r[value]:
                        ax.annotate(f"{r['redeploys']:g} redeploy", (ph, r[value]), fontsize=7,
                                    textcoords="offset points", xytext=(4, 6))
            ax.set_xticks(phases.index, [f"phase {i}\n{b:g} Mbit/s" for i, b in phases.items()], fontsize=7)
            ax.set(title=f"{q}: {label.split(' (')[0]} per phase", ylabel=label)
            _log_where_positive(ax, s[value])
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    return _save(fig, path)


def _log_where_positive(ax, values, both: bool = False) -> None:
    """Log axes only when there is positive data to draw (matplotlib refuses log scale otherwise)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    if (v > 0).any():
        ax.set_yscale("log")
        if both:
            ax.set_xscale("log")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
