"""q3 edge-max: the generator's rate per ~10 s and overall, and the edge cgroup's throttling, per run."""
import sys
import pandas as pd
for run in sys.argv[1:]:
    d = pd.read_parquet(f"q3-cfs-period/{run}.parquet")
    v = d[d.vertex_name == "Nexmark edge-1 gen"]
    w = v.pivot_table(index="time", columns="metric", values="value", aggfunc="sum").sort_index()
    w = w[w["numRecordsIn"].diff().fillna(1) != 0]  # the polls where the JobManager's metrics moved
    r = (w["numRecordsIn"].diff() / w.index.to_series().diff()).iloc[1:]
    tot = (w["numRecordsIn"].iloc[-1] - w["numRecordsIn"].iloc[0]) / (w.index[-1] - w.index[0])
    cpu = (w["workerCpuMs"].iloc[-1] - w["workerCpuMs"].iloc[0]) / 1000 / (w.index[-1] - w.index[0])
    st = {}
    for k in ("before", "after"):
        st[k] = dict(l.split() for l in open(f"q3-cfs-period/{run}-stat-{k}.txt"))
    periods = int(st["after"]["nr_periods"]) - int(st["before"]["nr_periods"])
    thr = int(st["after"]["nr_throttled"]) - int(st["before"]["nr_throttled"])
    tt = (int(st["after"]["throttled_time"]) - int(st["before"]["throttled_time"])) / 1e9
    print(f"{run}: gen {tot:7.0f} ev/s (per ~10 s: {', '.join(f'{x:.0f}' for x in r)}; cv {r.std()/r.mean():.2f}); "
          f"gen worker {cpu:.3f} cores = {cpu/tot*1e6:.0f} us/ev; throttled {thr}/{periods} periods, {tt:.0f} s")
