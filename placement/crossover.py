"""Where the best layout changes with the link (pure): the bandwidths at which `optimal`'s placement of a
problem changes, found on a log grid and refined by bisection."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from costmodel.predict import predict
from costmodel.pricing import with_bandwidth
from costmodel.problem import CLOUD, Problem
from placement.optimal import optimal


@dataclass(frozen=True)
class Crossover:
    mbit: float                  # below it `below` is best, above it `above`
    below: dict[str, str]
    above: dict[str, str]
    rate_below: float            # λ* of each at `mbit`
    rate_above: float


def _best(p: Problem, mbit: float) -> dict[str, str]:
    return optimal(with_bandwidth(p, mbit))


def _key(asg: dict[str, str], p: Problem) -> str:
    """Placements that differ only in which interchangeable node holds an operator are the same layout."""
    return json.dumps({v: p.node[n].site for v, n in sorted(asg.items())})


def crossovers(p: Problem, lo: float = 0.05, hi: float = 1000.0, steps: int = 24, rel: float = 0.02) -> list[Crossover]:
    """Bandwidths (Mbit/s, each link alike) in [lo, hi] where the optimal layout (operator → site) changes."""
    grid = [lo * (hi / lo) ** (i / steps) for i in range(steps + 1)]
    best = [_best(p, m) for m in grid]
    out = []
    for (m0, a0), (m1, a1) in zip(zip(grid, best), zip(grid[1:], best[1:])):
        if _key(a0, p) == _key(a1, p):
            continue
        while m1 / m0 > 1 + rel:  # bisect (geometrically) to the change
            mid = math.sqrt(m0 * m1)
            am = _best(p, mid)
            if _key(am, p) == _key(a0, p):
                m0, a0 = mid, am
            else:
                m1, a1 = mid, am
        m = math.sqrt(m0 * m1)
        q = with_bandwidth(p, m)
        out.append(Crossover(m, a0, a1, predict(q, a0).max_rate, predict(q, a1).max_rate))
    return out


def describe(p: Problem, asg: dict[str, str]) -> str:
    """The operators (sources aside) that run away from the cloud, by edge site where there are several:
    two layouts with the same operators at different sites must not read alike."""
    at: dict[str, list[str]] = {}
    for v, n in sorted(asg.items()):
        if p.node[n].site != CLOUD and not p.op[v].pin:
            at.setdefault(p.node[n].site, []).append(v)
    if not at:
        return "at the edge: nothing but the sources"
    if len({n.site for n in p.nodes if n.site != CLOUD}) == 1:
        return "at the edge: " + ", ".join(next(iter(at.values())))
    return "; ".join(f"at {site}: {', '.join(ops)}" for site, ops in sorted(at.items()))
