"""The optimal placement (pure): a MILP solved by HiGHS through scipy.optimize.milp."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from common.errors import EdgeplaceError
from costmodel.predict import predict, subsets, waits
from costmodel.problem import CLOUD, Problem
from placement.heuristics import NO_PLACEMENT, TIE, cloud_only, edge_max, greedy, node_classes, refine_sites

GAP = 1e-7  # relative MIP gap: below TIE (λ ties) and below the 1e-6 WAN tolerance of the property tests
PRESOLVE = False  # HiGHS presolve returned a worse "optimum" (see the test on it)
TIME_LIMIT_S = 120.0  # one HiGHS solve; the 200-operator × 50-node benchmark needs ~5 s in all
SOLVE_LOG: list[tuple[float, int]] = []  # (seconds, status) of each MILP solve, for benchmarks


@dataclass(frozen=True)
class _Bin:
    """What the MILP places operators on: one node, or a class of interchangeable nodes taken as one."""
    site: str
    slots: int  # per member node
    cores: float  # per member node
    speed: float
    members: tuple[str, ...]


def _bins(p: Problem) -> list[_Bin]:
    """Nodes grouped into classes of interchangeable ones (same site, slots, cores and speed; a node named by
    a pin stays alone)."""
    return [_Bin(p.node[ids[0]].site, p.node[ids[0]].slots, p.node[ids[0]].cores, p.node[ids[0]].speed,
                 tuple(ids)) for ids in node_classes(p).values()]


class _Milp:
    """The placement MILP on bins, in U = T · scale (T = 1/λ; scale ≈ λ of a heuristic placement, so the
    objective is O(1): HiGHS also stops at an absolute gap of 1e-6, which would make T ≈ 1e-7 look solved).
    For a class bin, CPU and slots are summed over its members and each operator must fit one member: a
    relaxation of the per-node model, exact once its solution is packed onto the members."""

    def __init__(self, p: Problem, bins: list[_Bin], scale: float, u_hi: float):
        self.bins = bins
        ops = list(p.op)
        sites = sorted({p.node[n].site for n in p.node} - {CLOUD})
        r = p.rates
        allowed = {v: set(p.allowed(v)) for v in ops}
        self.xi = {key: i for i, key in enumerate((v, b) for v in ops for b, bn in enumerate(bins)
                                                  if set(bn.members) & allowed[v] and p.op[v].parallelism <= bn.slots)}
        nx_ = len(self.xi)
        self.load = {(v, b): r[v] * p.op[v].cost_at(bins[b].site) / bins[b].speed for (v, b) in self.xi}
        busy = {(v, b): r[v] * p.op[v].busy_at(bins[b].site) / bins[b].speed for (v, b) in self.xi}
        sends = self._sends(p, bins)
        yi = {}
        for e in p.edges:
            for s in sites:
                for d in ("up", "down"):
                    yi[(e.src, e.dst, s, d)] = nx_ + len(yi)
        self.ti = ti = nx_ + len(yi)
        # z = x·U for an operator whose control traffic takes from its edge site's link when it runs there
        zi = {(v, b): ti + 1 + k for k, (v, b) in enumerate(
            (v, b) for (v, b) in self.xi if bins[b].site != CLOUD
            and (p.op[v].control_up_bytes_per_s > 0 or p.op[v].control_down_bytes_per_s > 0))}
        # w = y·U for a crossing whose records outgrow the receiver's window during a bundle (bundle_terms)
        waiting = {(u, v, s, d): t for (u, v, s, d) in yi if (t := waits(p, u, v, s, d)) is not None}
        wi = {key: ti + 1 + len(zi) + k for k, key in enumerate(waiting)}
        self.zs = list(zi.values()) + list(wi.values())
        nvar = ti + 1 + len(zi) + len(wi)
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
        edge = np.zeros(nvar)  # CPU per unit λ on the bins outside the cloud (the second objective)
        for b, bn in enumerate(bins):  # slots, and CPU: Σ r cost / speed · x ≤ cores · T
            idx = held[b]
            if idx:
                m = len(bn.members)
                add({i: p.op[v].parallelism for v, i in idx}, -np.inf, bn.slots * m)
                cpu = {i: self.load[(v, b)] for v, i in idx}
                for i, c in sends.get(b, {}).items():
                    cpu[i] = cpu.get(i, 0.0) + c
                if bn.site != CLOUD:
                    for i, c in cpu.items():
                        edge[i] += c
                if any(cpu.values()):
                    add({**cpu, ti: -bn.cores * m / scale}, -np.inf, 0)
                if m > 1:  # each operator within one member's cores
                    for v, i in idx:
                        if self.load[(v, b)] > 0:
                            add({i: self.load[(v, b)], ti: -bn.cores / scale}, -np.inf, 0)
        for v in ops:  # one operator's subtasks: Σ_b r busy / speed_b · x_vb ≤ parallelism · T
            sub = {i: busy[(v, b)] for b, i in on[v] if busy[(v, b)] > 0}
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
        for (v, b), i in zi.items():  # z ≥ U − U_hi·(1 − x) (and z ≥ 0): z = U where x = 1, exact for U ≤ U_hi
            add({i: 1.0, ti: -1.0, self.xi[(v, b)]: -u_hi}, -u_hi, np.inf)
        for s in sites:
            for d in ("up", "down"):
                # records' bytes ≤ (capacity − Σ control of the operators there) · T
                cap, f = p.link[s].capacity(d), p.control_factor(s, d)
                coefs = {yi[(u, v, s, d)]: byts[(u, v)] for (u, v) in byts if byts[(u, v)] > 0}
                if coefs:
                    for (v, b), i in zi.items():
                        if bins[b].site == s and p.op[v].control(d) > 0:
                            coefs[i] = f * p.op[v].control(d) / scale
                    add({**coefs, ti: -cap / scale}, -np.inf, 0)
        self._bundle_rows(add, on, busy, yi, wi, waiting, u_hi, scale, p)
        for s in sites:  # one checkpoint's acknowledgements cross the uplink within the heartbeat timeout
            timeout = p.link[s].heartbeat_timeout_s
            acks = {i: p.op[v].checkpoint_ack_bytes for (v, b), i in self.xi.items()
                    if bins[b].site == s and p.op[v].checkpoint_ack_bytes > 0}
            if timeout is not None and acks:
                most = timeout * p.link[s].up_bytes_per_s
                add({i: c / most for i, c in acks.items()}, -np.inf, 1.0)
        self.wan = np.zeros(nvar)
        for (u, v, s, d), i in yi.items():
            self.wan[i] = byts[(u, v)]
        A = lil_matrix((len(rows) + 1, nvar))  # the last row: an optional upper bound on the edge's CPU
        for k, coefs in enumerate(rows):
            for i, c in coefs.items():
                A[k, i] = c
        self.wan_norm, self.edge_norm = (v / np.abs(v).max() if np.abs(v).max() > 0 else v for v in (self.wan, edge))
        for i in np.nonzero(self.edge_norm)[0]:
            A[len(rows), i] = self.edge_norm[i]
        self.A, self.lo, self.hi = A.tocsr(), np.array(lo + [-np.inf]), np.array(hi + [np.inf])
        self.integrality = np.zeros(nvar)
        self.integrality[:nx_] = 1
        self.nvar = nvar

    def _bundle_rows(self, add, on, busy, yi, wi, waiting, u_hi, scale, p: Problem) -> None:
        """costmodel.predict.bundle_terms in T, for each set S of crossings into v that can happen together:
        Σ r busy/speed · x_v + Σ_S link · y ≤ parallelism · T + Σ_S credit · y·T, with w = y·U exact (w ≤ U,
        w ≤ U_hi·y). y is only bounded below (it may be 1 where the edge does not cross), but that only
        loosens a set's row, and the same set without that edge keeps its own row."""
        ti = self.ti
        for key, i in wi.items():
            add({i: 1.0, ti: -1.0}, -np.inf, 0)
            add({i: 1.0, yi[key]: -u_hi}, -np.inf, 0)
        for v in p.op:  # each set of crossings into v that can happen together (one direction per edge and site)
            mine = [key for key in wi if key[1] == v]
            for chosen in subsets(mine):
                if len({(u, s) for u, _, s, _ in chosen}) < len(chosen):
                    continue
                row = {i: busy[(v, b)] for b, i in on[v] if busy[(v, b)] > 0}
                for key in chosen:
                    link, credit = waiting[key]
                    row[yi[key]] = row.get(yi[key], 0.0) + p.rates[key[0]] * link
                    row[wi[key]] = -credit / scale
                add({**row, ti: -p.op[v].parallelism / scale}, -np.inf, 0)

    def _sends(self, p: Problem, bins: list[_Bin]) -> dict[int, dict[int, float]]:
        """bin → {variable: CPU per unit λ} of send costs: a producer pinned to one node (validate() allows
        no other) pays r·send on that node for each consumer not at its site, i.e. r·send·(x_u − Σ_{b at
        the site} x_vb), x_u being 1."""
        out: dict[int, dict[int, float]] = {}
        for u, o in p.op.items():
            if o.send_cost_s_per_record <= 0:
                continue
            own = [b for (w, b) in self.xi if w == u]
            if len(own) != 1:  # no node fits it: the one-bin-per-operator row reports that
                continue
            bu = own[0]
            c = p.rates[u] * o.send_cost_s_per_record / bins[bu].speed
            row = out.setdefault(bu, {})
            for v in p.graph.successors(u):
                row[self.xi[(u, bu)]] = row.get(self.xi[(u, bu)], 0.0) + c
                for (w, b), i in self.xi.items():
                    if w == v and bins[b].site == bins[bu].site:
                        row[i] = row.get(i, 0.0) - c
        return out

    def solve(self, c, t_lo: float, t_hi: float, edge_hi: float = np.inf):
        lb, ub = np.zeros(self.nvar), np.ones(self.nvar)
        lb[self.ti], ub[self.ti] = t_lo, t_hi
        ub[self.zs] = np.inf
        hi = self.hi.copy()
        hi[-1] = edge_hi
        t0 = time.perf_counter()
        res = milp(c, constraints=LinearConstraint(self.A, self.lo, hi), integrality=self.integrality,
                   bounds=Bounds(lb, ub), options={"mip_rel_gap": GAP, "presolve": PRESOLVE,
                                                   "time_limit": TIME_LIMIT_S})
        SOLVE_LOG.append((time.perf_counter() - t0, res.status))
        if res.status == 1:
            raise EdgeplaceError(f"the MILP solver found no proven optimum within {TIME_LIMIT_S:g} s; "
                                 "try --policy greedy, or fewer operators or nodes")
        return res if res.status == 0 else None

    def lexicographic(self, target_u: float | None, t_lo: float = 0.0):
        """(solution, U it must be packed at, U of the best λ): max λ, then the least CPU at the edge, then
        the fewest WAN bytes (`heuristics.better`) — or, with a target, the fewest WAN bytes at that U. None
        when infeasible."""
        if target_u is not None:
            res = self.solve(self.wan_norm, target_u, target_u)
            return (res, target_u, target_u) if res is not None else None
        c = np.zeros(self.nvar)
        c[self.ti] = 1.0
        first = self.solve(c, t_lo, np.inf)
        if first is None:
            return None
        t_best = first.x[self.ti]
        cap = t_best * (1 + TIE / 10)
        second = self.solve(self.edge_norm, 0, cap) or first
        edge_hi = float(self.edge_norm @ second.x) * (1 + TIE / 10) + 1e-9
        return self.solve(self.wan_norm, 0, cap, edge_hi) or second, cap, t_best

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


def _scale(p: Problem) -> tuple[float, bool]:
    """λ of cloud-only (True: the MILP's U ≤ 1 holds it exactly) or else of the first other heuristic that
    sustains a finite rate (False), so that the optimum's U is O(1) and not lost in HiGHS's tolerances. When
    none does: the λ at which every node's cores fill with each operator where it costs least, a bound above
    λ* (U ≥ 1), or 1.0 where nothing costs CPU."""
    for h in (cloud_only, greedy, edge_max):
        try:
            lam = predict(p, h(p)).max_rate
        except EdgeplaceError:
            continue
        if math.isfinite(lam) and lam > 0:
            return lam, h is cloud_only
    r = p.rates
    work = sum(r[v] * min(p.op[v].cost_at(n.site) / n.speed for n in p.nodes) for v in p.op)
    return (sum(n.cores for n in p.nodes) / work if work > 0 else 1.0), False


def _u_bound(p: Problem, scale: float) -> float:
    """An upper bound on the optimum's U = scale/λ: that of the best heuristic placement (with a margin for
    the tie tolerance); 1e6 (λ ≥ scale/1e6) when no heuristic placement is feasible."""
    best = 0.0
    for h in (cloud_only, greedy):
        try:
            best = max(best, predict(p, h(p)).max_rate)
        except EdgeplaceError:
            continue
    return 1e6 if best <= 0 else (scale / best if math.isfinite(best) else 1.0) * 1.01 + 1e-9


def optimal(p: Problem, target_rate: float | None = None) -> dict[str, str]:
    """MILP (HiGHS): maximise λ* — minimise T = 1/λ, which makes every constraint linear — then, among
    placements within TIE of the best T, the least CPU at the edge, and among those the fewest WAN bytes per
    unit λ (or, with `target_rate`, the fewest WAN bytes that sustain it).
    Interchangeable nodes are solved as one class (no symmetric copies to search) and the solution packed
    onto them; a class whose packing fails is split into its nodes and the model solved again. Each model
    relaxes the per-node one, so a solution that packs is optimal, and each bounds the next."""
    if target_rate is not None and target_rate <= 0:
        raise EdgeplaceError("--target-rate must be > 0")
    scale, exact = _scale(p)
    target_u = scale / target_rate if target_rate is not None else None
    controlled = any(o.control_up_bytes_per_s > 0 or o.control_down_bytes_per_s > 0 for o in p.operators)
    u_hi = target_u if target_u is not None else 1.0 if exact and not controlled else _u_bound(p, scale)
    t_lo = 0.0
    split: set[tuple[str, ...]] = set()
    while True:
        bins = [b for c in _bins(p) for b in
                ([_Bin(c.site, c.slots, c.cores, c.speed, (n,)) for n in c.members] if c.members in split else [c])]
        model = _Milp(p, bins, scale, u_hi)
        sol = model.lexicographic(target_u, t_lo)
        if sol is None:
            raise EdgeplaceError(f"no placement sustains a source rate of {target_rate:g}" if target_rate
                                 else NO_PLACEMENT)
        res, cap, t_best = sol
        on_bin = model.assignment(res)
        out: dict[str, str] = {}
        for b, bn in enumerate(bins):
            items = [v for v, bb in on_bin.items() if bb == b]
            if len(bn.members) == 1:  # the MILP's own node: its slots and CPU are the MILP's rows already
                out.update(dict.fromkeys(items, bn.members[0]))
                continue
            packed = _pack(p, bn, items, {v: model.load[(v, b)] for v in items}, cap / scale)
            if packed is None:
                split.add(bn.members)
            else:
                out.update(packed)
        if len(out) == len(on_bin):
            return refine_sites(p, out) if target_u is None else out
        if target_u is None:
            t_lo = t_best * (1 - 1e-9)
