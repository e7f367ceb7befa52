"""Each measured cell's error next to the probe's CPU time and steal during its measurement window."""
import sys
import numpy as np, pandas as pd
cells = pd.read_parquet(sys.argv[1])
probe = pd.read_csv(sys.argv[2], sep=r"\s+", header=None, usecols=[0, 6, 9], names=["t", "cpu_ms", "steal"])
probe["steal"] = probe.steal.astype(float)
rows = []
for _, c in cells[cells.measured_rate.notna()].iterrows():
    lo, hi = c.finished - (c.measured_s or 20), c.finished
    p = probe[(probe.t >= lo - 15) & (probe.t <= hi + 15)]
    if p.empty or "same placement" in (c.note or ""):
        continue
    rows.append({"cell": c.cell, "err": (c.predicted_rate - c.measured_rate) / c.measured_rate,
                 "bottleneck": c.predicted_bottleneck.split(":")[0] + ":" + c.predicted_bottleneck.split(":")[1][:6],
                 "probe_cpu_ms": p.cpu_ms.mean(), "steal_pct": p.steal.mean(), "n": len(p)})
d = pd.DataFrame(rows)
pd.set_option("display.width", 200)
print(d.round(3).to_string())
for k, g in d.groupby(d.bottleneck.str.startswith("node:edge")):
    if len(g) > 2:
        print("edge-cpu-bound" if k else "other", len(g), "corr(err, probe cpu)", round(np.corrcoef(g.err, g.probe_cpu_ms)[0, 1], 2),
              "corr(err, steal)", round(np.corrcoef(g.err, g.steal_pct)[0, 1], 2))
