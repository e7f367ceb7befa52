"""The planning problem (operators, edges, source rates, nodes, links) and its JSON file format.

Semantics (see README "Planning problems"): cost_s_per_record is CPU-seconds per input record on a node of
speed 1 (edge_cost_s_per_record: the same on an edge site's node, where it was measured apart, with its
inputs local); send_cost_s_per_record: the extra CPU per input record, on the operator's node, for each of
its output edges whose consumer runs at another site (records serialised for the network instead of handed
on locally); records into v per unit of source rate λ: r_v = Σ_{u→v} r_u·selectivity_u (sources: source_rates).
checkpoint_ack_bytes: the checkpointed state an operator's subtasks hand to the JobManager inside their
checkpoint acknowledgements (Flink's JobManager checkpoint storage); a link's heartbeat_timeout_s: the
cluster's heartbeat.timeout. Those acknowledgements and the heartbeats share one RPC connection, so a site
whose operators' acknowledgements take longer than the timeout to cross its uplink loses its TaskManagers
at every checkpoint: the placement sustains no rate at all. bundle (records, seconds): every operator hands its
inputs to a Python worker in bundles of that many records or that long, and reads no input while it waits for
a bundle's results; a link's window_bytes: the credit a receiving subtask grants across it meanwhile (both
absent: records and the link always overlap; see costmodel.predict.bundle_terms)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable
from pathlib import Path

import networkx as nx

from common import schema
from common.errors import EdgeplaceError

CLOUD = "cloud"
_ID = {"type": "string", "minLength": 1}
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["operators", "source_rates", "nodes"],
    "properties": {
        "operators": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "cost_s_per_record"],
            "properties": {"id": _ID, "parallelism": {"type": "integer", "minimum": 1},
                           "cost_s_per_record": schema.number(0), "busy_s_per_record": schema.number(0),
                           "edge_cost_s_per_record": schema.number(0), "edge_busy_s_per_record": schema.number(0),
                           "send_cost_s_per_record": schema.number(0),
                           "control_up_bytes_per_s": schema.number(0), "control_down_bytes_per_s": schema.number(0),
                           "checkpoint_ack_bytes": schema.number(0), "selectivity": schema.number(0),
                           "bytes_out_per_record": schema.number(0), "stateful": {"type": "boolean"},
                           "pin": {"type": ["string", "null"]}}}},
        "edges": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["from", "to"],
            "properties": {"from": _ID, "to": _ID, "ship": {"enum": ["FORWARD", "HASH", "REBALANCE", "BROADCAST"]}}}},
        "source_rates": {"type": "object", "minProperties": 1, "additionalProperties": schema.number(0, True)},
        "nodes": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "site", "slots", "cores"],
            "properties": {"id": _ID, "site": _ID, "slots": {"type": "integer", "minimum": 0},
                           "cores": schema.number(0, True), "speed": schema.number(0, True)}}},
        "links": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["site", "up_bytes_per_s", "down_bytes_per_s"],
            "properties": {"site": _ID, "up_bytes_per_s": schema.number(0, True),
                           "down_bytes_per_s": schema.number(0, True), "rtt_ms": schema.number(0),
                           "control_up_bytes_per_s": schema.number(0), "control_down_bytes_per_s": schema.number(0),
                           "heartbeat_timeout_s": schema.number(0, True), "window_bytes": schema.number(0)}}},
        "bundle": {"type": "object", "additionalProperties": False, "required": ["records", "seconds"],
                   "properties": {"records": {"type": "integer", "minimum": 1}, "seconds": schema.number(0, True)}},
    },
}


@dataclass(frozen=True)
class Operator:
    id: str
    parallelism: int
    cost_s_per_record: float
    selectivity: float
    bytes_out_per_record: float
    stateful: bool = False
    pin: str | None = None
    busy_s_per_record: float | None = None  # one subtask's busy time per record (its own limit); None: the cost
    edge_cost_s_per_record: float | None = None  # on an edge site's node; None: cost_s_per_record
    edge_busy_s_per_record: float | None = None  # on an edge site's node; None: the edge cost
    send_cost_s_per_record: float = 0.0  # per output edge to another site; only on an operator pinned to a node
    control_up_bytes_per_s: float = 0.0    # Flink's own traffic that the operator's subtasks add to an edge
    control_down_bytes_per_s: float = 0.0  # site's link when placed there (metric dumps, checkpoint acks)
    checkpoint_ack_bytes: float = 0.0  # state its subtasks acknowledge to the JobManager in one checkpoint

    def control(self, direction: str) -> float:
        return self.control_up_bytes_per_s if direction == "up" else self.control_down_bytes_per_s

    @property
    def busy(self) -> float:
        return self.cost_s_per_record if self.busy_s_per_record is None else self.busy_s_per_record

    def cost_at(self, site: str) -> float:
        """CPU-seconds per input record on a node of speed 1 at `site`."""
        if site != CLOUD and self.edge_cost_s_per_record is not None:
            return self.edge_cost_s_per_record
        return self.cost_s_per_record

    def busy_at(self, site: str) -> float:
        """One subtask's busy seconds per input record on a node of speed 1 at `site`."""
        if site != CLOUD and self.edge_cost_s_per_record is not None:
            return self.edge_cost_s_per_record if self.edge_busy_s_per_record is None else self.edge_busy_s_per_record
        return self.busy


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    ship: str = "FORWARD"


@dataclass(frozen=True)
class Node:
    id: str
    site: str
    slots: int
    cores: float
    speed: float = 1.0


@dataclass(frozen=True)
class Link:
    site: str
    up_bytes_per_s: float
    down_bytes_per_s: float
    rtt_ms: float = 0.0
    control_up_bytes_per_s: float = 0.0    # what Flink's own traffic (heartbeats, metrics, checkpoint
    control_down_bytes_per_s: float = 0.0  # acks) takes of the link whatever runs at the site (its sources)
    heartbeat_timeout_s: float | None = None  # None: checkpoint acknowledgements are not limited
    window_bytes: float | None = None  # credit a waiting receiver grants across the link; None: not priced

    def bandwidth(self, direction: str) -> float:
        return self.up_bytes_per_s if direction == "up" else self.down_bytes_per_s

    def capacity(self, direction: str) -> float:
        """Payload bytes/s left for records in `direction` (up | down) once the site's own control traffic
        has its share (never below 5 % of the link: a link that control traffic fills is priced as nearly full)."""
        control = self.control_up_bytes_per_s if direction == "up" else self.control_down_bytes_per_s
        return max(MIN_FREE * self.bandwidth(direction), self.bandwidth(direction) - control)


MIN_FREE = 0.05  # share of a link that control traffic is never priced to take from records


@dataclass(frozen=True)
class Problem:
    operators: tuple[Operator, ...]
    edges: tuple[Edge, ...]
    source_rates: dict[str, float]
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    bundle: tuple[int, float] | None = None  # (records, seconds) of the operators' Python bundles; None: none

    @cached_property
    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(o.id for o in self.operators)
        g.add_edges_from((e.src, e.dst) for e in self.edges)
        return g

    @cached_property
    def op(self) -> dict[str, Operator]:
        return {o.id: o for o in self.operators}

    @cached_property
    def node(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def link(self) -> dict[str, Link]:
        return {l.site: l for l in self.links}

    @cached_property
    def rates(self) -> dict[str, float]:
        """r_v: records into v per unit of source rate."""
        r: dict[str, float] = {}
        for v in nx.topological_sort(self.graph):
            preds = list(self.graph.predecessors(v))
            r[v] = self.source_rates.get(v, 0.0) if not preds else sum(r[u] * self.op[u].selectivity for u in preds)
        return r

    @cached_property
    def rates_by_source(self) -> dict[str, dict[str, float]]:
        """Per source s: records into each operator per unit of source rate from s alone (Σ over s = rates)."""
        out = {}
        for s in self.source_rates:
            r: dict[str, float] = {}
            for v in nx.topological_sort(self.graph):
                preds = list(self.graph.predecessors(v))
                r[v] = (self.source_rates[s] if v == s else 0.0) if not preds else \
                    sum(r[u] * self.op[u].selectivity for u in preds)
            out[s] = r
        return out

    @cached_property
    def _control_factors(self) -> dict[tuple[str, str], float]:
        out = {}
        for l in self.links:
            for d in ("up", "down"):
                most = sum(o.control(d) for o in self.operators
                           if any(self.node[n].site == l.site for n in self.allowed(o.id)))
                room = l.capacity(d) - MIN_FREE * l.bandwidth(d)
                out[(l.site, d)] = 1.0 if most <= room else max(0.0, room) / most
        return out

    def control_factor(self, site: str, direction: str) -> float:
        """What each operator's control traffic at `site` counts for: 1, or less where the link could not
        carry the control of every operator that may run there and still keep MIN_FREE of it for records
        (so that the capacity left stays linear in the placement, for the MILP)."""
        return self._control_factors[(site, direction)]

    def link_capacity(self, site: str, direction: str, at_site: Iterable[str]) -> float:
        """Payload bytes/s left for records on `site`'s link in `direction` when operators `at_site` run
        there: the link less its own control traffic and that of those operators."""
        f = self.control_factor(site, direction)
        return self.link[site].capacity(direction) - f * sum(self.op[v].control(direction) for v in at_site)

    def ack_bytes(self, at_site: Iterable[str]) -> float:
        """Bytes that one checkpoint's acknowledgements of the operators `at_site` carry."""
        return sum(self.op[v].checkpoint_ack_bytes for v in at_site)

    def ack_seconds(self, site: str, at_site: Iterable[str]) -> float:
        """Seconds that one checkpoint's acknowledgements of the operators `at_site` take on `site`'s uplink
        (the whole link: they are one message per subtask, queued ahead of the heartbeats)."""
        return self.ack_bytes(at_site) / self.link[site].up_bytes_per_s

    def allowed(self, op_id: str) -> list[str]:
        """Nodes the operator may run on (its pin: a node id or a site)."""
        pin = self.op[op_id].pin
        return [n.id for n in self.nodes if pin is None or pin in (n.id, n.site)]

    def validate(self) -> "Problem":
        """Everything a planner relies on (also for problems built in code, e.g. priced from a profile)."""
        if not self.operators:
            raise EdgeplaceError("problem: it has no operators")
        for what, ids in (("operator", [o.id for o in self.operators]), ("node", [n.id for n in self.nodes]),
                          ("link site", [l.site for l in self.links])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise EdgeplaceError(f"problem: {what} ids must be unique ({', '.join(dup)} repeated)")
        for e in self.edges:
            for end in (e.src, e.dst):
                if end not in self.op:
                    raise EdgeplaceError(f"problem: edge {e.src}->{e.dst} names unknown operator {end!r}")
        if not nx.is_directed_acyclic_graph(self.graph):
            raise EdgeplaceError("problem: the operator graph has a cycle")
        for s, rate in self.source_rates.items():
            if s not in self.op:
                raise EdgeplaceError(f"problem: source_rates names unknown operator {s!r}")
            if self.graph.in_degree(s):
                raise EdgeplaceError(f"problem: source_rates names {s}, which has inputs: only an operator "
                                     "without inputs is a source")
            if not _positive(rate):
                raise EdgeplaceError(f"problem: source rate of {s} must be a finite number > 0, not {rate}")
        for o in self.operators:
            extra = [x for x in (o.edge_cost_s_per_record, o.edge_busy_s_per_record) if x is not None]
            if not (isinstance(o.parallelism, int) and o.parallelism >= 1) or not all(
                    _non_negative(x) for x in (o.cost_s_per_record, o.selectivity, o.bytes_out_per_record, o.busy,
                                               o.send_cost_s_per_record, o.control_up_bytes_per_s,
                                               o.control_down_bytes_per_s, o.checkpoint_ack_bytes, *extra)):
                raise EdgeplaceError(f"problem: operator {o.id} needs parallelism an integer >= 1 and finite "
                                     "costs, selectivity, bytes, control traffic and checkpoint bytes >= 0")
            if not self.allowed(o.id):
                raise EdgeplaceError(f"problem: operator {o.id} is pinned to {o.pin!r}, which is no node or site")
            if o.send_cost_s_per_record > 0 and o.pin not in self.node:
                raise EdgeplaceError(f"problem: operator {o.id} has a send cost, which only an operator pinned to "
                                     "one node may have (a source)")
        sites = {n.site for n in self.nodes}
        for n in self.nodes:
            if not (isinstance(n.slots, int) and n.slots >= 0) or not (_positive(n.cores) and _positive(n.speed)):
                raise EdgeplaceError(f"problem: node {n.id} needs slots >= 0, finite cores > 0 and speed > 0")
            if n.site != CLOUD and n.site not in self.link:
                raise EdgeplaceError(f"problem: edge site {n.site!r} of node {n.id} has no link")
        for l in self.links:
            if not (_positive(l.up_bytes_per_s) and _positive(l.down_bytes_per_s) and _non_negative(l.rtt_ms)
                    and _non_negative(l.control_up_bytes_per_s) and _non_negative(l.control_down_bytes_per_s)
                    and (l.heartbeat_timeout_s is None or _positive(l.heartbeat_timeout_s))):
                raise EdgeplaceError(f"problem: link of site {l.site} needs finite bandwidth > 0, RTT >= 0, "
                                     "control traffic >= 0 and a heartbeat timeout > 0 (or none)")
            if l.site not in sites:
                raise EdgeplaceError(f"problem: link names site {l.site!r} that has no node")
            if l.window_bytes is not None and not _non_negative(l.window_bytes):
                raise EdgeplaceError(f"problem: link of site {l.site} needs window_bytes finite and >= 0")
        if self.bundle is not None and not (isinstance(self.bundle[0], int) and self.bundle[0] >= 1
                                            and _positive(self.bundle[1])):
            raise EdgeplaceError("problem: bundle needs records an integer >= 1 and seconds finite and > 0")
        if sum(o.parallelism for o in self.operators) > sum(n.slots for n in self.nodes):
            raise EdgeplaceError("problem: the operators need more slots than all nodes have together")
        return self


def _positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _non_negative(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x >= 0


def from_json(data: object, source: str = "problem") -> Problem:
    """A validated Problem from its JSON form; errors name `source`, the field and what is allowed."""
    try:
        schema.check(data, SCHEMA, source)
    except ValueError as exc:
        raise EdgeplaceError(str(exc)) from None
    try:
        ops = tuple(Operator(o["id"], int(o.get("parallelism", 1)), float(o["cost_s_per_record"]),
                             float(o.get("selectivity", 1.0)), float(o.get("bytes_out_per_record", 0.0)),
                             bool(o.get("stateful", False)), o.get("pin"),
                             *(float(o[k]) if k in o else None for k in
                               ("busy_s_per_record", "edge_cost_s_per_record", "edge_busy_s_per_record")),
                             float(o.get("send_cost_s_per_record", 0.0)),
                             float(o.get("control_up_bytes_per_s", 0.0)), float(o.get("control_down_bytes_per_s", 0.0)),
                             float(o.get("checkpoint_ack_bytes", 0.0)))
                    for o in data["operators"])
        edges = tuple(Edge(e["from"], e["to"], e.get("ship", "FORWARD")) for e in data.get("edges", []))
        nodes = tuple(Node(n["id"], n["site"], int(n["slots"]), float(n["cores"]), float(n.get("speed", 1.0)))
                      for n in data["nodes"])
        links = tuple(Link(l["site"], float(l["up_bytes_per_s"]), float(l["down_bytes_per_s"]),
                           float(l.get("rtt_ms", 0.0)), float(l.get("control_up_bytes_per_s", 0.0)),
                           float(l.get("control_down_bytes_per_s", 0.0)),
                           float(l["heartbeat_timeout_s"]) if "heartbeat_timeout_s" in l else None,
                           float(l["window_bytes"]) if "window_bytes" in l else None)
                 for l in data.get("links", []))
        rates = {k: float(v) for k, v in data["source_rates"].items()}
        bundle = (int(data["bundle"]["records"]), float(data["bundle"]["seconds"])) if "bundle" in data else None
    except KeyError as exc:
        raise EdgeplaceError(f"{source}: missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise EdgeplaceError(f"{source}: malformed problem ({exc})") from exc
    return Problem(ops, edges, rates, nodes, links, bundle).validate()


def to_json(p: Problem) -> dict:
    return {"operators": [{"id": o.id, "parallelism": o.parallelism, "cost_s_per_record": o.cost_s_per_record,
                           "selectivity": o.selectivity, "bytes_out_per_record": o.bytes_out_per_record,
                           "stateful": o.stateful, **({"pin": o.pin} if o.pin else {}),
                           **{k: getattr(o, k) for k in ("busy_s_per_record", "edge_cost_s_per_record",
                                                         "edge_busy_s_per_record") if getattr(o, k) is not None},
                           **({"send_cost_s_per_record": o.send_cost_s_per_record} if o.send_cost_s_per_record else {}),
                           **{k: getattr(o, k) for k in ("control_up_bytes_per_s", "control_down_bytes_per_s",
                                                         "checkpoint_ack_bytes") if getattr(o, k)}}
                          for o in p.operators],
            "edges": [{"from": e.src, "to": e.dst, "ship": e.ship} for e in p.edges],
            "source_rates": dict(p.source_rates),
            "nodes": [{"id": n.id, "site": n.site, "slots": n.slots, "cores": n.cores, "speed": n.speed}
                      for n in p.nodes],
            "links": [{"site": l.site, "up_bytes_per_s": l.up_bytes_per_s, "down_bytes_per_s": l.down_bytes_per_s,
                       "rtt_ms": l.rtt_ms, **({"control_up_bytes_per_s": l.control_up_bytes_per_s,
                                               "control_down_bytes_per_s": l.control_down_bytes_per_s}
                                              if l.control_up_bytes_per_s or l.control_down_bytes_per_s else {}),
                       **({"heartbeat_timeout_s": l.heartbeat_timeout_s} if l.heartbeat_timeout_s is not None else {}),
                       **({"window_bytes": l.window_bytes} if l.window_bytes is not None else {})}
                      for l in p.links],
            **({"bundle": {"records": p.bundle[0], "seconds": p.bundle[1]}} if p.bundle is not None else {})}


def load(path: str | Path) -> Problem:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise EdgeplaceError(f"cannot read problem file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise EdgeplaceError(f"{path}: not valid JSON ({exc})") from exc
    return from_json(data, str(path))
