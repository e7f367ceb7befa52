"""Placement search (pure): cloud-only, edge-max, greedy (offload ranking), exhaustive and optimal (MILP).

Each returns an assignment operator id → node id that respects pins and slots."""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

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
PRESOLVE = False  # HiGHS presolve returned a worse "optimum" (see the test on it)
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
        classes.setdefault(_interchangeable(n), []).append(n.id)
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


@dataclass(frozen=True)
class _Bin:
    """What the MILP places operators on: one node, or a class of interchangeable nodes taken as one."""
    site: str
    slots: int  # per member node
    cores: float  # per member node
    speed: float
    members: tuple[str, ...]


def _interchangeable(n) -> tuple:
    """Nodes with the same key can swap their operators without changing any prediction."""
    return (n.site, n.slots, n.cores, n.speed)


def _bins(p: Problem, aggregate: bool) -> list[_Bin]:
    """Nodes grouped into classes of interchangeable ones (same site, slots, cores and speed; a node named by
    a pin stays alone) when `aggregate`, else one bin per node."""
    named = {o.pin for o in p.operators}
    groups: dict[tuple, list[str]] = {}
    for n in p.nodes:
        key = _interchangeable(n) if aggregate and n.id not in named else (n.id,)
        groups.setdefault(key, []).append(n.id)
    return [_Bin(p.node[ids[0]].site, p.node[ids[0]].slots, p.node[ids[0]].cores, p.node[ids[0]].speed,
                 tuple(ids)) for ids in groups.values()]


class _Milp:
    """The placement MILP on bins, in U = T · scale (T = 1/λ; scale ≈ λ of a heuristic placement, so the
    objective is O(1): HiGHS also stops at an absolute gap of 1e-6, which would make T ≈ 1e-7 look solved).
    For a class bin, CPU and slots are summed over its members and each operator must fit one member: a
    relaxation of the per-node model, exact once its solution is packed onto the members."""

    def __init__(self, p: Problem, bins: list[_Bin], scale: float):
        self.bins = bins
        ops = list(p.op)
        sites = sorted({p.node[n].site for n in p.node} - {CLOUD})
        r = p.rates
        allowed = {v: set(p.allowed(v)) for v in ops}
        self.xi = {key: i for i, key in enumerate((v, b) for v in ops for b, bn in enumerate(bins)
                                                  if set(bn.members) & allowed[v] and p.op[v].parallelism <= bn.slots)}
        nx_ = len(self.xi)
        self.load = {(v, b): r[v] * p.op[v].cost_s_per_record / bins[b].speed for (v, b) in self.xi}
        yi = {}
        for e in p.edges:
            for s in sites:
                for d in ("up", "down"):
                    yi[(e.src, e.dst, s, d)] = nx_ + len(yi)
        self.ti = ti = nx_ + len(yi)
        nvar = ti + 1
        rows: list[dict[int, float]] = []
        lo: list[float] = []
        hi: list[float] = []

        def add(coefs: dict[int, float], lb: float, ub: float) -> None:
            if lb in (0, -np.inf) and ub in (0, np.inf):  # homogeneous row: normalise (HiGHS drops tiny values)
                big = max((abs(c) for c in coefs.values()), default=0.0)
                if big > 0:
                    coefs = {i: c / big for i, c in coefs.items()}
            rows.append(coefs)
            lo.append(lb)
            hi.append(ub)

        on: dict[str, list[tuple[int, int]]] = {v: [] for v in ops}  # operator → its (bin, variable)s
        held: dict[int, list[tuple[str, int]]] = {b: [] for b in range(len(bins))}  # bin → (operator, variable)s
        for (v, b), i in self.xi.items():
            on[v].append((b, i))
            held[b].append((v, i))
        for v in ops:  # each operator on exactly one bin
            if not on[v]:
                raise EdgeplaceError(f"no node it may run on has {p.op[v].parallelism} slots for operator {v}")
            add({i: 1.0 for _, i in on[v]}, 1, 1)
        for b, bn in enumerate(bins):  # slots, and CPU: Σ r cost / speed · x ≤ cores · T
            idx = held[b]
            if idx:
                m = len(bn.members)
                add({i: p.op[v].parallelism for v, i in idx}, -np.inf, bn.slots * m)
                cpu = {i: self.load[(v, b)] for v, i in idx}
                if any(cpu.values()):
                    add({**cpu, ti: -bn.cores * m / scale}, -np.inf, 0)
                if m > 1:  # each operator within one member's cores
                    for v, i in idx:
                        if self.load[(v, b)] > 0:
                            add({i: self.load[(v, b)], ti: -bn.cores / scale}, -np.inf, 0)
        for v in ops:  # one operator's subtasks: Σ_b r cost / speed_b · x_vb ≤ parallelism · T
            sub = {i: self.load[(v, b)] for b, i in on[v] if self.load[(v, b)] > 0}
            if sub:
                add({**sub, ti: -p.op[v].parallelism / scale}, -np.inf, 0)
        at_site = {s: [b for b, bn in enumerate(bins) if bn.site == s] for s in sites}
        for (u, v, s, d), i in yi.items():  # y ≥ X_u,s − X_v,s (up) or X_v,s − X_u,s (down)
            a, c = (u, v) if d == "up" else (v, u)
            coefs = {i: 1.0}
            for b in at_site[s]:
                if (a, b) in self.xi:
                    coefs[self.xi[(a, b)]] = coefs.get(self.xi[(a, b)], 0) - 1.0
                if (c, b) in self.xi:
                    coefs[self.xi[(c, b)]] = coefs.get(self.xi[(c, b)], 0) + 1.0
            add(coefs, 0, np.inf)
        byts = {(e.src, e.dst): r[e.src] * p.op[e.src].selectivity * p.op[e.src].bytes_out_per_record
                for e in p.edges}
        for s in sites:
            for d in ("up", "down"):
                cap = p.link[s].up_bytes_per_s if d == "up" else p.link[s].down_bytes_per_s
                coefs = {yi[(u, v, s, d)]: byts[(u, v)] for (u, v) in byts if byts[(u, v)] > 0}
                if coefs:
                    add({**coefs, ti: -cap / scale}, -np.inf, 0)
        self.wan = np.zeros(nvar)
        for (u, v, s, d), i in yi.items():
            self.wan[i] = byts[(u, v)]
        A = lil_matrix((len(rows) + 1, nvar))  # the last row: an optional lower bound on WAN bytes
        for k, coefs in enumerate(rows):
            for i, c in coefs.items():
                A[k, i] = c
        wan_norm = self.wan / self.wan.max() if self.wan.max() > 0 else self.wan
        for i in np.nonzero(wan_norm)[0]:
            A[len(rows), i] = wan_norm[i]
        self.wan_norm = wan_norm
        self.A, self.lo, self.hi = A.tocsr(), np.array(lo + [-np.inf]), np.array(hi + [np.inf])
        self.integrality = np.zeros(nvar)
        self.integrality[:nx_] = 1
        self.nvar = nvar

    def solve(self, c, t_lo: float, t_hi: float, wan_lo: float = -np.inf):
        lb, ub = np.zeros(self.nvar), np.ones(self.nvar)
        lb[self.ti], ub[self.ti] = t_lo, t_hi
        lo = self.lo.copy()
        lo[-1] = wan_lo
        t0 = time.perf_counter()
        res = milp(c, constraints=LinearConstraint(self.A, lo, self.hi), integrality=self.integrality,
                   bounds=Bounds(lb, ub), options={"mip_rel_gap": GAP, "presolve": PRESOLVE})
        SOLVE_LOG.append((time.perf_counter() - t0, res.status))
        return res if res.status == 0 else None

    def lexicographic(self, target_u: float | None, t_lo: float = 0.0, wan_lo: float = -np.inf):
        """(solution, U it must be packed at, U of the best λ): max λ, then fewest WAN bytes — or, with a
        target, the fewest WAN bytes at that U. None when infeasible."""
        if target_u is not None:
            res = self.solve(self.wan_norm, target_u, target_u, wan_lo)
            return (res, target_u, target_u) if res is not None else None
        c = np.zeros(self.nvar)
        c[self.ti] = 1.0
        first = self.solve(c, t_lo, np.inf)
        if first is None:
            return None
        t_best = first.x[self.ti]
        cap = t_best * (1 + TIE / 10)
        res = self.solve(self.wan_norm, 0, cap, wan_lo) or first
        return res, cap, t_best

    def assignment(self, res) -> dict[str, int]:
        return {v: b for (v, b), i in self.xi.items() if res.x[i] > 0.5}


def _pack(p: Problem, bn: _Bin, items: list[str], load: dict[str, float], t_cap: float) -> dict[str, str] | None:
    """A class's operators onto its member nodes (first fit decreasing by CPU, then slots), each node within
    its slots and within cores · t_cap of CPU; None when that fails."""
    out: dict[str, str] = {}
    slots = dict.fromkeys(bn.members, bn.slots)
    cpu = dict.fromkeys(bn.members, bn.cores * t_cap * (1 + 1e-9))
    for v in sorted(items, key=lambda v: (-load[v], -p.op[v].parallelism, v)):
        n = next((n for n in bn.members if slots[n] >= p.op[v].parallelism and cpu[n] >= load[v]), None)
        if n is None:
            return None
        out[v] = n
        slots[n] -= p.op[v].parallelism
        cpu[n] -= load[v]
    return out


def optimal(p: Problem, target_rate: float | None = None) -> dict[str, str]:
    """MILP (HiGHS): maximise λ* — minimise T = 1/λ, which makes every constraint linear — then, among
    placements within TIE of the best T (or sustaining `target_rate`), the fewest WAN bytes per unit λ.
    Interchangeable nodes are solved as one class (no symmetric copies to search) and the solution packed
    onto them; a class whose packing fails is split into its nodes and the model solved again. Each model
    relaxes the per-node one, so a solution that packs is optimal, and each bounds the next."""
    if target_rate is not None and target_rate <= 0:
        raise EdgeplaceError("--target-rate must be > 0")
    try:
        lam_h = predict(p, cloud_only(p)).max_rate
    except EdgeplaceError:
        lam_h = math.nan
    scale = lam_h if math.isfinite(lam_h) and lam_h > 0 else 1.0
    target_u = scale / target_rate if target_rate is not None else None
    t_lo = 0.0
    split: set[tuple[str, ...]] = set()
    while True:
        bins = [b for c in _bins(p, aggregate=True) for b in
                ([_Bin(c.site, c.slots, c.cores, c.speed, (n,)) for n in c.members] if c.members in split else [c])]
        model = _Milp(p, bins, scale)
        sol = model.lexicographic(target_u, t_lo)
        if sol is None:
            raise EdgeplaceError(f"no placement sustains a source rate of {target_rate:g}" if target_rate
                                 else "no placement satisfies the pins and slot limits")
        res, cap, t_best = sol
        on_bin = model.assignment(res)
        out: dict[str, str] = {}
        for b, bn in enumerate(bins):
            items = [v for v, bb in on_bin.items() if bb == b]
            packed = _pack(p, bn, items, {v: model.load[(v, b)] for v in items}, cap / scale)
            if packed is None:
                split.add(bn.members)
            else:
                out.update(packed)
        if len(out) == len(on_bin):
            return out
        if target_u is None:
            t_lo = t_best * (1 - 1e-9)
