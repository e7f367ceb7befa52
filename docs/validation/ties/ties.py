"""Which of acceptance-4's cells does the tie-break decide? For each problem it profiled (query, repetition)
at each bandwidth it measured: every distinct placement's prediction, the placements whose λ* ties with the
best (within TIE), and which of them each rule picks: the fewest WAN bytes (the rule until 2026-12-06) or
the least CPU at the edge, then the fewest WAN bytes (the rule since), next to what `optimal` returns.

Run from the repository root: .venv/bin/python docs/validation/ties/ties.py"""
import json
import math
from pathlib import Path

import pandas as pd

from costmodel.pricing import with_bandwidth
from costmodel.problem import CLOUD, from_json
from placement.heuristics import TIE, placements
from placement.optimal import optimal

ROOT = Path("docs/validation/acceptance-4")


def at_edge(p, asg) -> str:
    return ",".join(sorted(v for v, n in asg.items() if p.node[n].site != CLOUD and not p.op[v].pin)) or "-"


rows = []
cells = pd.read_parquet(ROOT / "cells.parquet")
for (q, bw, r), _ in cells.groupby(["query", "bandwidth_mbit", "repetition"]):
    p = with_bandwidth(from_json(json.loads((ROOT / "problems" / f"problem-{q}-r{r}.json").read_text())), bw)
    every = list(placements(p))
    best = max(pr.max_rate for _, pr in every)
    tied = [(a, pr) for a, pr in every if math.isclose(pr.max_rate, best, rel_tol=TIE)]
    by_wan = min(tied, key=lambda x: x[1].wan_bytes_per_unit_rate)[0]
    by_edge = min(tied, key=lambda x: (x[1].edge_cpu_per_unit_rate, x[1].wan_bytes_per_unit_rate))[0]
    rows.append({"query": q, "mbit": bw, "rep": r, "placements": len(every), "tied": len(tied),
                 "fewest WAN bytes": at_edge(p, by_wan), "least edge CPU": at_edge(p, by_edge),
                 "optimal": at_edge(p, optimal(p))})
df = pd.DataFrame(rows)
print("| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns))
for row in df.itertuples(index=False):
    print("| " + " | ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in row) + " |")
changed = df[df["fewest WAN bytes"] != df["least edge CPU"]]
print(f"\nThe rules pick different layouts in {len(changed)} of {len(df)} problems: "
      + ", ".join(f"{q} @ {m:g} r{r}" for q, m, r in zip(changed["query"], changed["mbit"], changed["rep"])))
print(f"optimal agrees with 'least edge CPU' in {int((df['optimal'] == df['least edge CPU']).sum())} of {len(df)}")
