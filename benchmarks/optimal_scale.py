"""Benchmark (prints numbers, asserts nothing): `optimal` on 200 operators × 50 nodes in 10 edge sites."""
from __future__ import annotations

import random
import statistics
import sys
import time

from costmodel.predict import predict
from costmodel.problem import from_json
from placement.heuristics import cloud_only, greedy
from placement.optimal import optimal


def problem(n_ops: int = 200, n_sites: int = 10, edge_per_site: int = 4, cloud: int = 10, seed: int = 7):
    rnd = random.Random(seed)
    nodes = [{"id": f"cloud-{i}", "site": "cloud", "slots": 32, "cores": 8.0, "speed": 2.0} for i in range(cloud)]
    for s in range(n_sites):
        nodes += [{"id": f"edge-{s}-{j}", "site": f"site-{s}", "slots": 4, "cores": 1.0, "speed": 0.5}
                  for j in range(edge_per_site)]
    ops, edges, rates = [], [], {}
    per_site = n_ops // n_sites
    for s in range(n_sites):  # each site: a source and a chain/diamond pipeline of per_site - 1 stages
        prev = f"s{s}-0"
        ops.append({"id": prev, "cost_s_per_record": 2e-5, "bytes_out_per_record": 120, "pin": f"site-{s}"})
        rates[prev] = 1.0
        for k in range(1, per_site):
            v = f"s{s}-{k}"
            ops.append({"id": v, "cost_s_per_record": rnd.choice([1e-5, 5e-5, 2e-4]),
                        "selectivity": rnd.choice([0.05, 0.5, 1.0, 1.0]),
                        "bytes_out_per_record": rnd.choice([40, 120, 400]), "stateful": rnd.random() < 0.3})
            edges.append({"from": prev, "to": v})
            if k > 2 and rnd.random() < 0.2:
                edges.append({"from": f"s{s}-{k - 2}", "to": v})
            prev = v
    links = [{"site": f"site-{s}", "up_bytes_per_s": rnd.choice([1.25e5, 1.25e6, 2.5e6]),
              "down_bytes_per_s": 1.25e6, "rtt_ms": 40} for s in range(n_sites)]
    return from_json({"operators": ops, "edges": edges, "source_rates": rates, "nodes": nodes, "links": links})


def main() -> None:
    p = problem()
    times = []
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        t0 = time.perf_counter()
        asg = optimal(p)
        times.append(time.perf_counter() - t0)
    o, c, g = predict(p, asg), predict(p, cloud_only(p)), predict(p, greedy(p))
    print(f"optimal on {len(p.operators)} operators x {len(p.nodes)} nodes in 10 edge sites: "
          f"solve {statistics.mean(times):.3f} s ± {statistics.pstdev(times):.3f} over {len(times)} runs")
    print(f"λ*: optimal {o.max_rate:.1f} ({o.bottleneck}), greedy {g.max_rate:.1f}, cloud-only {c.max_rate:.1f}")


if __name__ == "__main__":
    main()
