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
    tried = set(df.loc[df["policy"] == "optimal", ["query", "bandwidth_mbit"]].itertuples(index=False, name=None))
    choices = []
    for (q, bw), g in cells.groupby(["query", "bandwidth_mbit"]):
        if (q, bw) not in tried:
            continue
        best = g.loc[g["measured"].idxmax()]
        mine = g.loc[g["policy"] == "optimal", "measured"]
        opt = float(mine.iloc[0]) if len(mine) else float("nan")  # NaN: every repetition of optimal failed
        choices.append({"query": q, "bandwidth_mbit": bw, "best": best["policy"], "best_rate": float(best["measured"]),
                        "optimal_rate": opt, "share": opt / float(best["measured"]) if opt == opt else 0.0})
    return Accuracy(cells, float(np.median(errors)), float(np.percentile(errors, 90)),
                    float(np.median(wan)) if len(wan) else float("nan"),
                    pd.DataFrame(choices, columns=["query", "bandwidth_mbit", "best", "best_rate", "optimal_rate",
                                                   "share"]), infeasible)


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
                            f"failed in every repetition (best {r.best}, {r.best_rate:,.0f})")
                         for r in short.itertuples())))
    return lines
