"""q5 runs: the count's true rate as `edgeplace profile` gives it; per operator, records in per second, busy share and its Python worker's CPU over the whole collect."""
import json
import sys

import pandas as pd
for run in sys.argv[1:]:
    d = pd.read_parquet(f"q5/{run}.parquet")
    out = []
    for name in ("Q5 Count per Window", "Bids", "Nexmark edge-1 gen"):
        w = d[d.vertex_name == name].pivot_table(index="time", columns="metric", values="value", aggfunc="sum")
        w = w.sort_index()
        span = w.index[-1] - w.index[0]
        rate = (w["numRecordsIn"].iloc[-1] - w["numRecordsIn"].iloc[0]) / span
        cpu = (w["workerCpuMs"].iloc[-1] - w["workerCpuMs"].iloc[0]) / 1000 / span
        busy = (w["accumulateBusyTimeMs"].iloc[-1] - w["accumulateBusyTimeMs"].iloc[0]) / 1000 / span
        out.append(f"{name}: {rate:.0f}/s, busy {busy:.2f}, worker {cpu:.3f} cores = {cpu / rate * 1e6:.0f} µs/record")
    prof = json.load(open(f"q5/{run}-profile.json"))["operators"]
    count = next(o for o in prof if o["name"] == "Q5 Count per Window")
    print(f"{run}: profile: count's true rate {count['true_processing_rate']:.0f}/s (busy {count['busy']:.2f}); "
          + " | ".join(out))
