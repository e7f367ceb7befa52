"""Placement heuristics and the exhaustive oracle (pure): cloud-only, edge-max, greedy (offload ranking),
exhaustive. Each returns an assignment operator id → node id that respects pins and slots."""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import networkx as nx

from common.errors import EdgeplaceError
from costmodel.predict import Prediction, check_placement, checkpoint_overruns, predict
from costmodel.problem import CLOUD, Node, Problem
from costmodel.ranking import offload_ranking

EXHAUSTIVE_LIMIT = 2_000_000
# relative: two λ* this close are equal. Then the less CPU at the edge decides, then the fewer WAN bytes: work
# moved to a slow edge CPU at no predicted gain only adds risk (edge-CPU-bound rates drift ±20 %, link-bound
# ones 0.5 %; q5 at 50 Mbit/s, where the count in the cloud bounds both layouts, measured bids at the edge at
# 70-123 % of cloud-only over six pairs)
TIE = 1e-6


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
    (`better`: a move that keeps λ* and adds CPU at the edge is not taken); the ranking is recomputed after
    each move."""
    out = cloud_only(p)
    best = predict(p, out)
    moved = True
    while moved:
        moved = False
        for entry in offload_ranking(p, out):
            if not entry.eligible:
                continue
            out, best, moved = _improve(p, out, best, ({entry.op: n} for n in entry.candidates), first=True)
            if moved:
                break
    return out


def _improve(p: Problem, base: dict[str, str], best, changes, first: bool = False):
    """Each change (operator → node moves) tried on the best placement so far and kept where `better` says
    so (only the first such with `first`). Returns (placement, its prediction, whether anything was kept)."""
    moved = False
    for change in changes:
        trial = {**base, **change}
        try:
            pred = predict(p, trial)
        except EdgeplaceError:
            continue
        if better(pred, best):
            base, best, moved = trial, pred, True
            if first:
                break
    return base, best, moved


def _same(x: float, y: float) -> bool:
    return x == y or math.isclose(x, y, rel_tol=TIE)


def _beats(x: float, y: float) -> bool:
    return x > y * (1 + TIE) or (math.isinf(x) and not math.isinf(y))


def better(a, b) -> bool:
    """Prediction a beats b: larger λ* (the rate every source sustains at once); equal within TIE, more events
    from all sources together when each runs free (several sites); equal again, less CPU at the edge (see TIE);
    equal again, fewer WAN bytes."""
    if b is None:
        return True
    if _beats(a.max_rate, b.max_rate):
        return True
    if not _same(a.max_rate, b.max_rate):
        return False
    if _beats(a.total_rate, b.total_rate):
        return True
    if not _same(a.total_rate, b.total_rate):
        return False
    if _fewer(a.edge_cpu_per_unit_rate, b.edge_cpu_per_unit_rate):
        return True
    if not _same(a.edge_cpu_per_unit_rate, b.edge_cpu_per_unit_rate):
        return False
    return _fewer(a.wan_bytes_per_unit_rate, b.wan_bytes_per_unit_rate)


def _fewer(x: float, y: float) -> bool:
    return x < y * (1 - TIE) - 1e-12


def refine_sites(p: Problem, asg: dict[str, str], limit: int = 20_000) -> dict[str, str]:
    """With several sources, the second criterion of `better` (events from all sources when each runs free)
    searched from `asg`: over every placement of the unpinned operators when there are at most `limit`, else
    one source at a time over the operators its data reaches, on its site or the cloud, until nothing
    improves. One source: `asg` unchanged (λ* and the total are the same thing)."""
    sources = [s for s in p.source_rates if s in p.graph]
    if len(sources) < 2:
        return asg
    free = [v for v in p.op if not p.op[v].pin]
    if math.prod(len(p.allowed(v)) for v in free) <= limit:
        rounds = [[(free, [p.allowed(v) for v in free])]]
    else:
        reach = {s: sorted(v for v in nx.descendants(p.graph, s) if not p.op[v].pin) for s in sources}
        rounds = [[(reach[s], [[n for n in p.allowed(v) if p.node[n].site in (p.node[asg[s]].site, CLOUD)]
                               for v in reach[s]]) for s in sources]] * 3
    out, best = dict(asg), predict(p, asg)
    for steps in rounds:
        moved = False
        for ops, choices in steps:
            if not ops or math.prod(len(c) for c in choices) > limit:
                continue
            out, best, kept = _improve(p, out, best, (dict(zip(ops, c)) for c in itertools.product(*choices)))
            moved = moved or kept
        if not moved:
            break
    return out


NO_PLACEMENT = ("no placement satisfies the pins, the slot limits and the heartbeat timeout of checkpoint "
                "acknowledgements")


def exhaustive(p: Problem) -> dict[str, str]:
    """Every distinct placement (interchangeable nodes counted once); refuses problems too large to enumerate."""
    size = math.prod(len(p.allowed(v)) for v in p.op)
    if size > EXHAUSTIVE_LIMIT:
        raise EdgeplaceError(f"exhaustive search would visit {size:,} placements (limit {EXHAUSTIVE_LIMIT:,}); "
                             "use --policy optimal")
    best, best_pred = None, None
    for asg, pred in placements(p):
        if better(pred, best_pred):
            best, best_pred = asg, pred
    if best is None:
        raise EdgeplaceError(NO_PLACEMENT)
    return best


def placements(p: Problem) -> Iterator[tuple[dict[str, str], Prediction]]:
    """Every distinct placement that fits (interchangeable nodes counted once), with its prediction; not one
    whose checkpoints overrun the heartbeat timeout (it sustains nothing: as for optimal)."""
    ops = list(p.op)
    classes = node_classes(p)
    cls_of = {n: k for k, ids in classes.items() for n in ids}
    for combo in itertools.product(*(p.allowed(v) for v in ops)):
        if not _canonical(combo, cls_of, classes):
            continue
        asg = dict(zip(ops, combo))
        try:
            if not checkpoint_overruns(p, asg):
                yield asg, predict(p, asg)
        except EdgeplaceError:
            continue


def _canonical(combo, cls_of, classes) -> bool:
    """Interchangeable nodes are used in order of first use (node i+1 of a class only after node i)."""
    used: dict[tuple, int] = {}
    for n in combo:
        k = cls_of[n]
        ids = classes[k]
        if len(ids) == 1:
            continue
        i = ids.index(n)
        if i > used.get(k, -1) + 1:
            return False
        used[k] = max(used.get(k, -1), i)
    return True


def node_classes(p: Problem) -> dict[tuple, list[str]]:
    """Node ids grouped into classes of interchangeable nodes; a node that a pin names stays alone."""
    named = {o.pin for o in p.operators}
    classes: dict[tuple, list[str]] = {}
    for n in p.nodes:
        classes.setdefault(interchangeable(n) if n.id not in named else (n.id,), []).append(n.id)
    return classes


def interchangeable(n: Node) -> tuple:
    """Nodes with the same key can swap their operators without changing any prediction."""
    return (n.site, n.slots, n.cores, n.speed)
