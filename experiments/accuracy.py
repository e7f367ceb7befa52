"""How well an experiment's predictions held, on the medians over its repetitions: the cost model's error per
cell (λ* and WAN bytes per event) and how close `optimal` came to the best measured policy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ENOUGH = 0.95  # `optimal` within 5 % of the best measured policy counts as the right choice


@dataclass(frozen=True)
class Accuracy:
    cells: pd.DataFrame   # per (query, bandwidth, policy): n, measured, predicted, error, WAN measured/predicted/error
    rate_error_median: float
    rate_error_p90: float
    wan_error_median: float  # nan when no cell sent WAN bytes
    choices: pd.DataFrame    # per (query, bandwidth) with optimal: best policy, its rate, optimal's rate and share
    #                          (rates: medians over the repetitions tried, a failed one counting 0)
    infeasible: tuple[int, int] = (0, 0)  # cells predicted to sustain nothing (λ* = 0): (failed, ran at a rate)


def accuracy(df: pd.DataFrame) -> Accuracy | None:
    """`df`: the cells of a results folder. None when no cell has both a prediction and a measurement."""
    measured = np.isfinite(df["measured_rate"].astype(float)) & (df["measured_rate"] > 0)
    ok = df[measured]
    nothing = df["predicted_rate"].astype(float) == 0  # their error is no ratio; whether they failed is the check
    infeasible = (int((nothing & ~measured).sum()), int((nothing & measured).sum()))
    if ok.empty:
        return None
    cells = ok.groupby(["query", "bandwidth_mbit", "policy"]).agg(
        n=("measured_rate", "count"), measured=("measured_rate", "median"),
        predicted=("predicted_rate", "median"), wan_measured=("wan_bytes_per_event", "median"),
        wan_predicted=("predicted_wan_bytes_per_event", "median")).reset_index()
    cells["error"] = (cells["predicted"] - cells["measured"]) / cells["measured"]
    cells["wan_error"] = ((cells["wan_predicted"] - cells["wan_measured"]) / cells["wan_measured"]) \
        .where(cells["wan_measured"] > 0)  # no bytes measured: no relative error
    errors = cells.loc[cells["predicted"] != 0, "error"].abs().dropna()  # λ* = 0 is judged by failing
    errors = errors[np.isfinite(errors)]
    if errors.empty:
        return None
    wan = cells["wan_error"].abs().dropna()
    choices = _choices(df.assign(sustained=df["measured_rate"].astype(float).where(measured, 0.0)))
    return Accuracy(cells, float(np.median(errors)), float(np.percentile(errors, 90)),
                    float(np.median(wan)) if len(wan) else float("nan"),
                    choices, infeasible)


def _choices(df: pd.DataFrame) -> pd.DataFrame:
    """Per (query, bandwidth) where `optimal` ran: the best policy and optimal's share of it. A policy's rate is
    its median over every repetition tried, a failed one counting 0 events/s: a layout that survived one
    repetition in three is not the one to choose."""
    by = df.groupby(["query", "bandwidth_mbit", "policy"])["sustained"]
    rates, failures = by.median(), by.agg(lambda r: f"{int((r == 0).sum())} of {len(r)}")
    rows = []
    for (q, bw), g in rates.groupby(level=[0, 1]):
        g = g.droplevel([0, 1])
        if "optimal" not in g.index:
            continue
        best, opt = g.idxmax(), float(g["optimal"])
        rows.append({"query": q, "bandwidth_mbit": bw, "best": best, "best_rate": float(g[best]),
                     "optimal_rate": opt if opt > 0 else float("nan"),  # NaN: optimal sustained nothing
                     "share": opt / float(g[best]) if g[best] > 0 else 1.0,
                     "optimal_failed": failures[(q, bw, "optimal")]})
    return pd.DataFrame(rows, columns=["query", "bandwidth_mbit", "best", "best_rate", "optimal_rate", "share",
                                       "optimal_failed"])


def summary(a: Accuracy) -> list[str]:
    """The figures the cost-model acceptance asks for, as report lines."""
    priced = a.cells[a.cells["predicted"] != 0]  # the cells whose λ* error counts
    lines = [f"λ*: median |predicted − measured| / measured {a.rate_error_median:.0%}, 90th percentile "
             f"{a.rate_error_p90:.0%} over {len(priced)} cells (medians over repetitions: "
             f"{priced['n'].min()}–{priced['n'].max()} per cell)"]
    if a.wan_error_median == a.wan_error_median:
        lines.append(f"WAN bytes per event: median error {a.wan_error_median:.0%} over "
                     f"{int(a.cells['wan_error'].notna().sum())} cells")
    if sum(a.infeasible):
        failed, ran = a.infeasible
        lines.append(f"predicted to sustain nothing (λ* = 0): {failed + ran} cell{'s' * (failed + ran != 1)}; "
                     f"{failed} failed when run, "
                     f"{ran} ran at a rate (see the notes of those cells)")
    if not a.choices.empty:
        short = a.choices[a.choices["share"] < ENOUGH]
        lines.append(f"optimal reached ≥ {ENOUGH:.0%} of the best measured policy in "
                     f"{len(a.choices) - len(short)} of {len(a.choices)} (query, bandwidth) cells"
                     + ("" if short.empty else "; not in: " + "; ".join(
                         f"{r.query} at {r.bandwidth_mbit:g} Mbit/s "
                         + (f"{r.share:.0%} (best {r.best}, {r.best_rate:,.0f} vs {r.optimal_rate:,.0f})"
                            if r.optimal_rate == r.optimal_rate else
                            f"optimal failed in {r.optimal_failed} repetitions (best {r.best}, {r.best_rate:,.0f})")
                         for r in short.itertuples())))
    return lines
