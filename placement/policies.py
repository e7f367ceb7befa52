"""Placement search (pure): cloud-only, edge-max, greedy (offload ranking), exhaustive and optimal (MILP).

Each returns an assignment operator id → node id that respects pins and slots."""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from costmodel.predict import check_placement, predict
from costmodel.problem import CLOUD, Problem
from costmodel.ranking import offload_ranking
from experiments.errors import EdgeplaceError

POLICIES = ("cloud-only", "edge-max", "greedy", "exhaustive", "optimal")
EXHAUSTIVE_LIMIT = 2_000_000
TIE = 1e-6
GAP = 1e-7  # relative MIP gap: below TIE (λ ties) and below the 1e-6 WAN tolerance of the property tests
SOLVE_LOG: list[tuple[float, int]] = []  # (seconds, status) of each MILP solve, for benchmarks


def plan(p: Problem, policy: str, target_rate: float | None = None) -> dict[str, str]:
    if policy == "flink-default":
        raise EdgeplaceError("flink-default means no pinning: deploy without --placement (there is nothing to plan)")
    if policy not in POLICIES:
        raise EdgeplaceError(f"unknown policy {policy!r}; known: flink-default, {', '.join(POLICIES)}")
    if target_rate is not None and policy != "optimal":
        raise EdgeplaceError("--target-rate goes with --policy optimal")
    return {"cloud-only": cloud_only, "edge-max": edge_max, "greedy": greedy, "exhaustive": exhaustive,
            "optimal": lambda q: optimal(q, target_rate)}[policy](p)


def _fill(p: Problem, order: list[str], prefer) -> dict[str, str]:
    """Assign operators in `order` to the first allowed node (by `prefer(op)` ranking) with free slots."""
    free = {n.id: n.slots for n in p.nodes}
    out = {}
    for v in order:
        for n in prefer(v):
            if free[n] >= p.op[v].parallelism:
                out[v] = n
                free[n] -= p.op[v].parallelism
                break
        else:
            raise EdgeplaceError(f"no node has {p.op[v].parallelism} free slots for operator {v} "
                                 f"(allowed: {', '.join(p.allowed(v))})")
    return out


def _pinned_first(p: Problem) -> list[str]:
    """Pinned operators first, then first-fit decreasing: the most slots first."""
    return sorted(p.op, key=lambda v: (p.op[v].pin is None, -p.op[v].parallelism, len(p.allowed(v))))


def cloud_only(p: Problem) -> dict[str, str]:
    """Pinned operators (sources) at their site, everything else in the cloud (fastest nodes first)."""
    def prefer(v):
        allowed = p.allowed(v)
        cloud = sorted((n for n in allowed if p.node[n].site == CLOUD), key=lambda n: -p.node[n].speed * p.node[n].cores)
        return cloud + [n for n in allowed if n not in cloud]
    return _fill(p, _pinned_first(p), prefer)


def edge_max(p: Problem) -> dict[str, str]:
    """Everything that fits at the edge site of its sources (no round trip through the cloud)."""
    import networkx as nx
    out = cloud_only(p)
    for v in nx.topological_sort(p.graph):
        if p.op[v].pin:
            continue
        sites = {p.node[out[u]].site for u in p.graph.predecessors(v)}
        if len(sites) != 1 or CLOUD in sites:
            continue
        site = sites.pop()
        for n in (n for n in p.allowed(v) if p.node[n].site == site):
            trial = {**out, v: n}
            try:
                check_placement(p, trial)
            except EdgeplaceError:
                continue
            out = trial
            break
    return out


def greedy(p: Problem) -> dict[str, str]:
    """From cloud-only, repeatedly move the best-ranked eligible operator to the edge while that raises λ*
    (or keeps it and saves WAN bytes); the ranking is recomputed after each move."""
    out = cloud_only(p)
    best = predict(p, out)
    moved = True
    while moved:
        moved = False
        for entry in offload_ranking(p, out):
            if not entry.eligible:
                continue
            for n in entry.candidates:
                trial = {**out, entry.op: n}
                try:
                    pred = predict(p, trial)
                except EdgeplaceError:
                    continue
                if _better(pred, best):
                    out, best, moved = trial, pred, True
                    break
            if moved:
                break
    return out


def _better(a, b) -> bool:
    """Prediction a beats b: larger λ*, or equal within TIE and fewer WAN bytes."""
    if b is None:
        return True
    if a.max_rate > b.max_rate * (1 + TIE) or (math.isinf(a.max_rate) and not math.isinf(b.max_rate)):
        return True
    same = math.isclose(a.max_rate, b.max_rate, rel_tol=TIE) or a.max_rate == b.max_rate
    return same and a.wan_bytes_per_unit_rate < b.wan_bytes_per_unit_rate * (1 - TIE) - 1e-12


def exhaustive(p: Problem) -> dict[str, str]:
    """Every distinct placement (interchangeable nodes counted once); refuses problems too large to enumerate."""
    ops = list(p.op)
    classes: dict[tuple, list[str]] = {}
    for n in p.nodes:
        classes.setdefault((n.site, n.slots, n.cores, n.speed), []).append(n.id)
    size = math.prod(len(p.allowed(v)) for v in ops)
    if size > EXHAUSTIVE_LIMIT:
        raise EdgeplaceError(f"exhaustive search would visit {size:,} placements (limit {EXHAUSTIVE_LIMIT:,}); "
                             "use --policy optimal")
    cls_of = {n: k for k, ids in classes.items() for n in ids}
    best, best_pred = None, None
    for combo in itertools.product(*(p.allowed(v) for v in ops)):
        if not _canonical(combo, cls_of, classes, p):
            continue
        asg = dict(zip(ops, combo))
        try:
            pred = predict(p, asg)
        except EdgeplaceError:
            continue
        if _better(pred, best_pred):
            best, best_pred = asg, pred
    if best is None:
        raise EdgeplaceError("no placement satisfies the pins and slot limits")
    return best


def _canonical(combo, cls_of, classes, p) -> bool:
    """Interchangeable nodes are used in order of first use (node i+1 of a class only after node i)."""
    used: dict[tuple, int] = {}
    for n in combo:
        k = cls_of[n]
        ids = classes[k]
        if len(ids) == 1 or any(p.op[v].pin == n for v in p.op):
            continue
        i = ids.index(n)
        if i > used.get(k, -1) + 1:
            return False
        used[k] = max(used.get(k, -1), i)
    return True


def optimal(p: Problem, target_rate: float | None = None) -> dict[str, str]:
    """MILP (HiGHS): maximise λ* — minimise T = 1/λ, which makes every constraint linear — then, among
    placements within TIE of the best T (or sustaining `target_rate`), the fewest WAN bytes per unit λ."""
    ops, nodes = list(p.op), list(p.node)
    sites = sorted({p.node[n].site for n in nodes} - {CLOUD})
    # The solver's variable is U = T · scale with scale ≈ λ of a heuristic placement, so the objective is
    # O(1): HiGHS also stops at an absolute gap of 1e-6, which would make T = 1/λ ≈ 1e-7 look solved at once.
    try:
        lam_h = predict(p, cloud_only(p)).max_rate
    except EdgeplaceError:
        lam_h = math.nan
    scale = lam_h if math.isfinite(lam_h) and lam_h > 0 else 1.0
    r = p.rates
    xi = {(v, n): i for i, (v, n) in enumerate((v, n) for v in ops for n in p.allowed(v))}
    nx_ = len(xi)
    yi = {}
    for e in p.edges:
        for s in sites:
            for d in ("up", "down"):
                yi[(e.src, e.dst, s, d)] = nx_ + len(yi)
    ti = nx_ + len(yi)
    nvar = ti + 1
    rows, lo, hi = [], [], []
    A = lil_matrix((0, nvar))

    def add(coefs: dict[int, float], lb: float, ub: float) -> None:
        if lb in (0, -np.inf) and ub in (0, np.inf):  # homogeneous row: normalise (HiGHS drops tiny values)
            big = max((abs(c) for c in coefs.values()), default=0.0)
            if big > 0:
                coefs = {i: c / big for i, c in coefs.items()}
        rows.append(coefs)
        lo.append(lb)
        hi.append(ub)

    for v in ops:  # each operator on exactly one allowed node
        add({xi[(v, n)]: 1.0 for n in p.allowed(v)}, 1, 1)
    for n in nodes:  # slots, and node CPU: Σ r cost / speed · x ≤ cores · T
        idx = [(v, xi[(v, n)]) for v in ops if (v, n) in xi]
        if idx:
            add({i: p.op[v].parallelism for v, i in idx}, -np.inf, p.node[n].slots)
            cpu = {i: r[v] * p.op[v].cost_s_per_record / p.node[n].speed for v, i in idx}
            if any(cpu.values()):
                add({**cpu, ti: -p.node[n].cores / scale}, -np.inf, 0)
    for v in ops:  # one operator's subtasks: Σ_n r cost / speed_n · x_vn ≤ parallelism · T (one x_vn is 1)
        sub = {xi[(v, n)]: r[v] * p.op[v].cost_s_per_record / p.node[n].speed for n in p.allowed(v)}
        if any(sub.values()):
            add({**{i: c for i, c in sub.items() if c > 0}, ti: -p.op[v].parallelism / scale}, -np.inf, 0)
    at_site = {s: [n for n in nodes if p.node[n].site == s] for s in sites}
    for (u, v, s, d), i in yi.items():  # y ≥ X_u,s − X_v,s (up) or X_v,s − X_u,s (down)
        a, b = (u, v) if d == "up" else (v, u)
        coefs = {i: 1.0}
        for n in at_site[s]:
            if (a, n) in xi:
                coefs[xi[(a, n)]] = coefs.get(xi[(a, n)], 0) - 1.0
            if (b, n) in xi:
                coefs[xi[(b, n)]] = coefs.get(xi[(b, n)], 0) + 1.0
        add(coefs, 0, np.inf)
    byts = {(e.src, e.dst): r[e.src] * p.op[e.src].selectivity * p.op[e.src].bytes_out_per_record for e in p.edges}
    for s in sites:
        for d in ("up", "down"):
            cap = p.link[s].up_bytes_per_s if d == "up" else p.link[s].down_bytes_per_s
            coefs = {yi[(u, v, s, d)]: byts[(u, v)] for (u, v) in byts if byts[(u, v)] > 0}
            if coefs:
                add({**coefs, ti: -cap / scale}, -np.inf, 0)
    A = lil_matrix((len(rows), nvar))
    for k, coefs in enumerate(rows):
        for i, c in coefs.items():
            A[k, i] = c
    A = A.tocsr()
    integrality = np.zeros(nvar)
    integrality[:nx_] = 1
    lb, ub = np.zeros(nvar), np.ones(nvar)
    ub[ti] = np.inf
    wan = np.zeros(nvar)
    for (u, v, s, d), i in yi.items():
        wan[i] = byts[(u, v)]

    def solve(c, t_lo, t_hi):
        lb[ti], ub[ti] = t_lo, t_hi
        t0 = time.perf_counter()
        res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=integrality, bounds=Bounds(lb, ub),
                   options={"mip_rel_gap": GAP})
        SOLVE_LOG.append((time.perf_counter() - t0, res.status))
        return res if res.status == 0 else None

    if target_rate is not None:
        if target_rate <= 0:
            raise EdgeplaceError("--target-rate must be > 0")
        res = solve(wan, scale / target_rate, scale / target_rate)
        if res is None:
            raise EdgeplaceError(f"no placement sustains a source rate of {target_rate:g}")
    else:
        c = np.zeros(nvar)
        c[ti] = 1.0
        first = solve(c, 0, np.inf)
        if first is None:
            raise EdgeplaceError("no placement satisfies the pins and slot limits")
        t_best = first.x[ti]
        wan_scale = wan / max(1e-300, wan.max()) if wan.max() > 0 else wan
        res = solve(wan_scale, 0, t_best * (1 + TIE / 10)) or first
    return {v: n for (v, n), i in xi.items() if res.x[i] > 0.5}
