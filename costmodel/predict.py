"""Predictions for one placement (pure): λ*, what limits it, WAN bytes, utilisation, latency."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from costmodel.problem import CLOUD, Problem
from common.errors import EdgeplaceError


@dataclass(frozen=True)
class Prediction:
    max_rate: float                         # λ*: largest sustainable source rate (inf if nothing limits it)
    bottleneck: str                         # "node:<id>", "operator:<id>", "bundle:<id>" (see bundle_terms),
                                            # "link:<site>:up|down", "checkpoint:<site>" (λ* = 0: see
                                            # checkpoint_overruns) or "none"
    wan_bytes_per_unit_rate: float          # summed over all link directions
    nodes: dict[str, float]                 # CPU utilisation at λ*
    links: dict[str, dict[str, float]]      # site → {"up": bytes/s, "down": bytes/s} at λ*
    limits: dict[str, float] = field(default_factory=dict)  # every constraint's own λ limit
    sources: float = 1.0                    # Σ source weights: events/s out of all sources per unit λ
    site_rates: dict[str, float] = field(default_factory=dict)  # source → events/s when each source runs free
    wan_up_bytes_per_unit_rate: float = math.nan  # records' bytes edge → cloud only
    control: dict[str, dict[str, float]] = field(default_factory=dict)  # site → {up, down}: Flink's own bytes/s
    # site → (bytes of one checkpoint's acknowledgements, heartbeat timeout s) where they overrun the timeout
    overruns: dict[str, tuple[float, float]] = field(default_factory=dict)
    edge_cpu_per_unit_rate: float = 0.0     # CPU (cores) of every node outside the cloud, summed

    @property
    def total_rate(self) -> float:
        """Events/s out of all sources together when each runs as fast as its own path allows (what a run of
        unthrottled sources measures); λ* × Σ source weights when the sources' rates are not known apart."""
        return sum(self.site_rates.values()) if self.site_rates else self.max_rate * self.sources

    @property
    def wan_bytes_per_event(self) -> float:
        """WAN bytes per event out of any source (a run's WAN bytes / its events)."""
        return self.wan_bytes_per_unit_rate / self.sources if self.sources > 0 else math.nan

    @property
    def wan_up_bytes_per_event(self) -> float:
        """Payload bytes edge → cloud per event out of the sources at λ*, records and Flink's own traffic
        together (what a run measures on the links' up direction); nan when nothing limits λ*."""
        if not (math.isfinite(self.max_rate) and self.total_rate > 0):
            return math.nan
        control = sum(c.get("up", 0.0) for c in self.control.values())
        return self.wan_up_bytes_per_unit_rate / self.sources + control / self.total_rate

    def to_json(self) -> dict:
        """JSON-safe: an unbounded λ* (nothing limits it) is null."""
        return {"max_rate": self.max_rate if math.isfinite(self.max_rate) else None, "bottleneck": self.bottleneck,
                "wan_bytes_per_unit_rate": self.wan_bytes_per_unit_rate,
                "edge_cpu_per_unit_rate": self.edge_cpu_per_unit_rate, "sources": self.sources, "nodes": self.nodes,
                "links": self.links, "control": self.control,
                "wan_up_bytes_per_event": self.wan_up_bytes_per_event if math.isfinite(self.wan_up_bytes_per_event)
                else None}


def check_placement(p: Problem, assignment: dict[str, str]) -> None:
    unknown = sorted(set(assignment) - set(p.op))
    if unknown:
        raise EdgeplaceError(f"placement names unknown operator(s) {', '.join(map(repr, unknown))}")
    missing = sorted(set(p.op) - set(assignment))
    if missing:
        raise EdgeplaceError(f"placement leaves operator(s) {', '.join(missing)} unplaced")
    for v, n in assignment.items():
        if n not in p.node:
            raise EdgeplaceError(f"operator {v} is placed on unknown node {n!r}")
        if n not in p.allowed(v):
            raise EdgeplaceError(f"operator {v} is pinned to {p.op[v].pin!r} but placed on {n}")
    for n in p.nodes:
        used = sum(p.op[v].parallelism for v, m in assignment.items() if m == n.id)
        if used > n.slots:
            raise EdgeplaceError(f"node {n.id} has {n.slots} slots but {used} subtasks are placed on it")


def constraints(p: Problem, assignment: dict[str, str]) -> dict[str, tuple[float, dict[str, float]]]:
    """Every resource the placement uses: name → (capacity, its use per unit rate of each source alone):
    node CPU (cores), an operator's own subtasks (busy time, not CPU), each link direction (bytes/s)."""
    out: dict[str, tuple[float, dict[str, float]]] = {}

    def add(name: str, cap: float, s: str, use: float) -> None:
        if use > 0:
            per = out.setdefault(name, (cap, {}))[1]
            per[s] = per.get(s, 0.0) + use
    caps = {(l.site, d): link_capacity(p, assignment, l.site, d) for l in p.links for d in ("up", "down")}
    for s, r in p.rates_by_source.items():
        for v, n in assignment.items():
            site, speed = p.node[n].site, p.node[n].speed
            add(f"node:{n}", p.node[n].cores, s, r[v] * p.op[v].cost_at(site) / speed)
            add(f"operator:{v}", p.op[v].parallelism, s, r[v] * p.op[v].busy_at(site) / speed)
        for e in p.edges:
            nu = p.node[assignment[e.src]]
            su, sv = nu.site, p.node[assignment[e.dst]].site
            if su != sv:
                add(f"node:{nu.id}", nu.cores, s, r[e.src] * p.op[e.src].send_cost_s_per_record / nu.speed)
                b = r[e.src] * p.op[e.src].selectivity * p.op[e.src].bytes_out_per_record
                for site, d in ((su, "up"), (sv, "down")):
                    if site != CLOUD:
                        add(f"link:{site}:{d}", caps[(site, d)], s, b)
    out.update(bundle_terms(p, assignment))
    return out


def waits(p: Problem, u: str, v: str, site: str, d: str) -> tuple[float, float] | None:
    """(seconds per record of u, seconds of credit per second) that the edge u→v adds to v's subtasks when it
    crosses `site`'s link in direction `d`: its records' time on the link, less what the link's window carries
    while v waits for a bundle. None when even a full bundle's records fit the window (or nothing is priced)."""
    w, size = p.link[site].window_bytes, p.op[u].bytes_out_per_record
    if p.bundle is None or w is None or size <= w / p.bundle[0]:
        return None
    bw = p.link[site].capacity(d)
    return p.op[u].selectivity * size / bw, w * p.op[v].parallelism / (bundle_period(p) * bw)


def bundle_period(p: Problem) -> float:
    """Seconds between bundles that close on time: 2T for Flink's T = bundle.time. Its timer
    (AbstractPythonFunctionOperator.checkInvokeFinishBundleByTime) fires every T but closes a bundle only once
    T has passed since the last bundle finished, so a bundle whose results take less than T waits for the
    tick after next."""
    return 2 * p.bundle[1]


def bundle_terms(p: Problem, assignment: dict[str, str]) -> dict[str, tuple[float, dict[str, float]]]:
    """"bundle:<v>" → (capacity, use per unit rate of each source) for each operator v fed across a link.

    v reads no input while it waits for a Python bundle's results, so the link carries only its window W
    meanwhile. Each record then also occupies v's subtasks for max(0, s − W/n)/bw, where s is the record's
    bytes and n the records in a bundle. While bundles close on time, every P = 2T (`bundle_period`),
    n = λ·r·P/parallelism, so each crossing adds λ·r·s/bw − W·parallelism/(P·bw) when that is positive. The
    condition is linear in λ for each set of crossings counted: λ·(r_v·busy_v + Σ r·s/bw) ≤ parallelism +
    Σ W·parallelism/(P·bw). busy_v is v's busiest Flink task: a receiver stops reading while it waits for its
    bundle and also while the slower task it feeds holds it back. The empty set is `operator:<v>`. With
    several crossings into v, each set is its own constraint, "bundle:<v>:<set>"."""
    out: dict[str, tuple[float, dict[str, float]]] = {}
    for v, terms in crossings(p, assignment).items():
        node = p.node[assignment[v]]
        busy = p.op[v].busy_at(node.site) / node.speed
        for k, chosen in enumerate(subsets(terms), start=1):
            use = {s: r[v] * busy + sum(r[u] * link for u, (link, _) in chosen) for s, r in p.rates_by_source.items()}
            name = f"bundle:{v}" if len(terms) == 1 else f"bundle:{v}:{k}"
            out[name] = (p.op[v].parallelism + sum(credit for _, (_, credit) in chosen),
                         {s: x for s, x in use.items() if x > 0})
    return out


def crossings(p: Problem, assignment: dict[str, str]) -> dict[str, list[tuple[str, tuple[float, float]]]]:
    """v → [(u, waits(u → v on one link direction))] for each edge into v that crosses a link and waits."""
    out: dict[str, list] = {}
    for e in p.edges:
        su, sv = p.node[assignment[e.src]].site, p.node[assignment[e.dst]].site
        if su == sv:
            continue
        for site, d in ((su, "up"), (sv, "down")):
            if site != CLOUD and (t := waits(p, e.src, e.dst, site, d)) is not None:
                out.setdefault(e.dst, []).append((e.src, t))
    return out


def subsets(items: list) -> list[list]:
    """Every non-empty subset of `items`, in the order of their bit masks."""
    return [[x for i, x in enumerate(items) if mask >> i & 1] for mask in range(1, 1 << len(items))]


def link_capacity(p: Problem, assignment: dict[str, str], site: str, d: str) -> float:
    """Payload bytes/s left for records on `site`'s link in direction `d` under `assignment`."""
    return p.link_capacity(site, d, [v for v, n in assignment.items() if p.node[n].site == site])


@dataclass(frozen=True)
class Overrun:
    """A site whose operators' checkpoint acknowledgements (`ack_bytes`) take `seconds` on its uplink, longer
    than the cluster's heartbeat timeout: its TaskManagers are declared dead at every checkpoint."""
    seconds: float
    ack_bytes: float
    heartbeat_timeout_s: float


def checkpoint_overruns(p: Problem, assignment: dict[str, str]) -> dict[str, Overrun]:
    """site → its overrun, for each site where one checkpoint's acknowledgements outlast the heartbeat timeout."""
    out = {}
    for l in p.links:
        if l.heartbeat_timeout_s is not None:
            there = [v for v, n in assignment.items() if p.node[n].site == l.site]
            took = p.ack_seconds(l.site, there)
            if took > l.heartbeat_timeout_s:
                out[l.site] = Overrun(took, p.ack_bytes(there), float(l.heartbeat_timeout_s))
    return out


def control_bytes_per_s(p: Problem, assignment: dict[str, str]) -> dict[str, dict[str, float]]:
    """site → {up, down}: Flink's own traffic on each link under `assignment` (what takes the link's
    capacity from records besides them)."""
    return {l.site: {d: l.bandwidth(d) - link_capacity(p, assignment, l.site, d) for d in ("up", "down")}
            for l in p.links}


def predict(p: Problem, assignment: dict[str, str]) -> Prediction:
    check_placement(p, assignment)
    cons = constraints(p, assignment)
    use = {name: sum(per.values()) for name, (_, per) in cons.items()}  # per unit λ from every source at once
    limits = {name: cap / use[name] for name, (cap, _) in cons.items()}
    overrun = checkpoint_overruns(p, assignment)
    limits.update({f"checkpoint:{site}": 0.0 for site in overrun})
    # the binding constraint: the smallest limit; ties go to the alphabetically first name
    # (checkpoint < link < node < operator)
    bottleneck, lam = min(limits.items(), key=lambda kv: (kv[1], kv[0]), default=("none", math.inf))
    at = (lambda x: x * lam) if math.isfinite(lam) else (lambda x: 0.0)
    util = {n.id: at(use.get(f"node:{n.id}", 0.0)) / n.cores for n in p.nodes}
    links = {l.site: {d: at(use.get(f"link:{l.site}:{d}", 0.0)) for d in ("up", "down")} for l in p.links}
    wan = sum(u for name, u in use.items() if name.startswith("link:"))
    up = sum(u for name, u in use.items() if name.startswith("link:") and name.endswith(":up"))
    control = control_bytes_per_s(p, assignment)
    rates = {s: lam * w for s, w in p.source_rates.items()} if len(p.source_rates) == 1 or overrun \
        else _fill(cons, p.source_rates)
    acks = {site: (o.ack_bytes, o.heartbeat_timeout_s) for site, o in overrun.items()}
    edge_cpu = sum(use.get(f"node:{n.id}", 0.0) for n in p.nodes if n.site != CLOUD)
    return Prediction(lam, bottleneck, wan, util, links, limits, sum(p.source_rates.values()), rates, up, control,
                      acks, edge_cpu)


def _fill(cons: dict[str, tuple[float, dict[str, float]]], weights: dict[str, float]) -> dict[str, float]:
    """Events/s of each source when every source runs as fast as it can (unthrottled, slowed only by
    backpressure from what it uses): all rates rise together until a resource fills, the sources using it
    stop there, the others keep rising (progressive filling; max-min fair where sources share a resource)."""
    lam = dict.fromkeys(weights, 0.0)
    active = {s for s, w in weights.items() if w > 0}
    while active:
        step, binding = math.inf, []
        for name, (cap, use) in cons.items():
            grow = sum(use.get(s, 0.0) for s in active)
            if grow <= 0:
                continue
            t = max(0.0, (cap - sum(use.get(s, 0.0) * lam[s] for s in lam)) / grow)
            if t < step * (1 - 1e-12):
                step, binding = t, [name]
            elif math.isclose(t, step, rel_tol=1e-12):
                binding.append(name)
        for s in active:
            lam[s] += step
        if math.isinf(step):
            break
        active -= {s for name in binding for s in active if cons[name][1].get(s, 0.0) > 0}
    return {s: lam[s] * weights[s] for s in lam}


def latency_s(p: Problem, assignment: dict[str, str], rate: float) -> float:
    """Latency estimate along the slowest source→sink path at source rate `rate`: per operator its
    service time inflated by 1/(1-ρ) of its node (M/M/1-like), per WAN crossing transfer time + RTT/2."""
    pred = predict(p, assignment)
    if rate >= pred.max_rate:
        return math.inf
    rho = {n: pred.nodes[n] * rate / pred.max_rate if math.isfinite(pred.max_rate) else 0.0 for n in pred.nodes}
    best: dict[str, float] = {}
    for v in nx.topological_sort(p.graph):
        n = assignment[v]
        svc = p.op[v].cost_at(p.node[n].site) / p.node[n].speed / max(1e-9, 1 - rho[n])
        arrive = 0.0
        for u in p.graph.predecessors(v):
            t = best[u]
            su, sv = p.node[assignment[u]].site, p.node[n].site
            if su != sv:
                for site, d in ((su, "up"), (sv, "down")):
                    if site != CLOUD:
                        cap = link_capacity(p, assignment, site, d)
                        t += p.op[u].bytes_out_per_record / cap + p.link[site].rtt_ms / 2000
            arrive = max(arrive, t)
        best[v] = arrive + svc
    return max(best.values()) if best else 0.0
