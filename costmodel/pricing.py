"""Pricing (pure): what profiling measured + the job's topology + the cluster's nodes → a planning Problem.

CPU of an operator = the CPU of the Python workers it ran in, as they reported it (`worker_cpu`), plus a
share by busy time of the rest of the CPU its TaskManager's process tree used (procfs, when measured); else
Σ over its Flink vertices of busy fraction × parallelism, scaled down where a node's busy total exceeds its
cores (busy time on a quota-starved node includes waiting for the quota). busy_s_per_record, what limits
the operator's own subtasks, is its busiest vertex's share, scaled the same way (its vertices run side by
side: a key-by helper does not slow the operator it feeds).
cost_s_per_record = CPU / records into the operator (sources: records out), times the speed of the node it
was measured on (the problem prices costs on a node of speed 1). Flink's own traffic (heartbeats, metric
dumps, checkpoint acknowledgements), counted per TaskManager socket while profiling, is priced per site and
per operator subtask (`control_prices`); predictions give records only what it leaves of a link. Where the
state rides inside the checkpoint acknowledgements, an operator's largest recent checkpoint becomes its
checkpoint_ack_bytes, and the cluster's heartbeat timeout goes with every link."""
from __future__ import annotations

import dataclasses

from collectors.profiles import JobProfile, OperatorProfile
from common import flinksettings
from common.errors import EdgeplaceError
from costmodel.problem import CLOUD, Edge, Link, Node, Operator, Problem
from queries.topology import OpSpec

WIRE_EFFICIENCY = 0.94  # payload share of a shaped link after TCP/IP framing (TESTBED: 107 of 113 bytes)


def link_bytes_per_s(mbit: float | None) -> float:
    """Payload bytes/s of a link shaped at `mbit` each way (None: unshaped, priced as 10 Gbit/s)."""
    return (mbit if mbit else 10_000.0) * 1e6 / 8 * WIRE_EFFICIENCY


Rates = float | None | dict[str, float | None]  # one rate for every link, or one per edge site (None: unshaped)


def links_for(nodes: list[Node], mbit: Rates, control: dict[str, dict[str, float]] | None = None) -> list[Link]:
    """A link per edge site, each at its own rate, with the control traffic measured on it (site → up/down)."""
    out = []
    for site in dict.fromkeys(n.site for n in nodes if n.site != CLOUD):
        bps = link_bytes_per_s(mbit.get(site) if isinstance(mbit, dict) else mbit)
        c = (control or {}).get(site, {})
        out.append(Link(site, bps, bps, 0.0, c.get("up", 0.0), c.get("down", 0.0),
                        window_bytes=float(flinksettings.RECEIVE_WINDOW_BYTES)))
    return out


def control_prices(measured: JobProfile, node_of: dict[str, Node], sources: set[str]) \
        -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Flink's own traffic from what profiling counted per TaskManager socket (`measured.control`, on the
    wire; priced in payload bytes/s like the links): (site → {up, down} that stays whatever is placed,
    op uid → {up, down} that an operator adds to its site's link when it runs there). What a TaskManager
    exchanged with the JobManager beyond what an idle TaskManager does (heartbeats, its own metrics) is, up
    to the JobManager, first the checkpointed state its operators acknowledged (`measured.state`: it goes
    with the operator that holds it); the rest comes from the subtasks it ran (a metric dump and an
    acknowledgement each), so it is shared among its operators by their subtasks. An edge site keeps what
    its TaskManager measured less the share of the operators that may move."""
    control = measured.control
    if not control:
        return {}, {}
    where = measured.where
    subtasks = {uid: sum(p.parallelism for p in ps) for uid, ps in measured.by_operator().items()}
    state = _per_operator(measured.state, measured.owners)
    ran = {tm: {uid: k for uid, k in subtasks.items() if where.get(uid) == tm} for tm in control}
    per_op: dict[str, dict[str, float]] = {}
    sites: dict[str, dict[str, float]] = {}
    for d in ("up", "down"):
        idle = [c[d] for tm, c in control.items() if d in c and not ran[tm]]
        base = min(idle) * WIRE_EFFICIENCY if idle else 0.0
        own = state if d == "up" else {}
        for tm, c in control.items():
            if d not in c or not ran[tm]:
                continue
            measured_here = c[d] * WIRE_EFFICIENCY
            shared = max(0.0, measured_here - base - sum(own.get(uid, 0.0) for uid in ran[tm]))
            share = shared / sum(ran[tm].values())
            movable = 0.0
            for uid, k in ran[tm].items():
                if uid not in sources:
                    per_op.setdefault(uid, {})[d] = share * k + own.get(uid, 0.0)
                    movable += per_op[uid][d]
            node = node_of.get(tm)
            if node is not None and node.site != CLOUD:
                sites.setdefault(node.site, {})[d] = sites.get(node.site, {}).get(d, 0.0) + \
                    max(0.0, measured_here - movable)
    return sites, per_op


def with_bandwidth(p: Problem, mbit: Rates) -> Problem:
    """The same problem with every link at `mbit` each way (or each site's link at its own rate)."""
    def bps(site: str) -> float:
        return link_bytes_per_s(mbit.get(site) if isinstance(mbit, dict) else mbit)
    return dataclasses.replace(p, links=tuple(dataclasses.replace(l, up_bytes_per_s=bps(l.site),
                                                                  down_bytes_per_s=bps(l.site))
                                              for l in p.links)).validate()


def structure_problem(ops: list[OpSpec], nodes: list[Node], mbit: Rates) -> Problem:
    """The job's shape without costs: enough for cloud-only and for checking slots and pins."""
    return _problem(ops, {o.uid: (0.0, 1.0, 0.0) for o in ops}, nodes, mbit)


def price(ops: list[OpSpec], measured: JobProfile, nodes: list[Node], mbit: Rates) -> Problem:
    """The planning problem of a job from what profiling measured (`measured.owners`: vertex id → op uid;
    `measured.where`: op uid → node id during profiling), with Flink's own traffic where it was counted
    per socket (`control_prices`)."""
    profiles, owners, where = measured.profiles, measured.owners, measured.where
    uids = {o.uid for o in ops}
    strays = sorted({owners[p.vertex] for p in profiles if p.vertex in owners and owners[p.vertex] not in uids})
    if strays:
        raise EdgeplaceError(f"Flink vertex {', '.join(map(repr, strays))} belongs to no operator of the job "
                             f"({', '.join(sorted(uids))}); its topology does not list every Flink task it runs")
    by_op = measured.by_operator()
    node_of = {n.id: n for n in nodes}
    load = {n.id: 0.0 for n in nodes}
    for uid, ps in by_op.items():
        load[where[uid]] += sum(p.busy_cores for p in ps)
    python, python_on = worker_cpu(by_op)
    stats = {}
    for op in ops:
        ps = by_op.get(op.uid, [])
        main = _main_vertex(op, ps)
        usable = main is not None and (main.observed_out_rate if op.is_source else main.observed_in_rate) > 0
        if not usable and main is not None and _starved(op, ops, by_op):
            stats[op.uid] = (0.0, 1.0, 0.0, 0.0)  # nothing reached it: per unit λ it gets 0 records, costs 0
            continue
        if not usable:
            raise EdgeplaceError(f"profiling gave no usable metrics for operator {op.uid} "
                                 f"({'no samples' if main is None else ', '.join(main.flags) or 'no records'}); "
                                 "profile longer (profile_s) or check that the job runs")
        node = node_of[where[op.uid]]
        own = sum(p.busy_cores for p in ps)
        # busy time, capped at the node's cores (on a quota-starved node it includes waiting for the quota)
        starved = min(1.0, node.cores / max(1e-9, load[node.id]))
        # what limits the operator's own subtasks: its busiest Flink task. Its tasks (a key-by helper and the
        # operator, a generator and its source) are threads with Python workers of their own that pipeline
        # records, so their busy times do not add up; the CPU they take does
        busy_cpu = max((p.busy_cores for p in ps), default=0.0) * starved
        if measured.cpu.get(node.id, 0) > 0 and load[node.id] > 0:
            # what the TaskManager really used: its operators' Python workers as each reported, the rest (the
            # JVM's task threads and its shared ones: network, gRPC, JIT, GC) by busy share
            rest = max(0.0, measured.cpu[node.id] - python_on.get(node.id, 0.0))
            cpu = python.get(op.uid, 0.0) + own / load[node.id] * rest
        else:
            cpu = own * starved
        rate_in = main.observed_out_rate if op.is_source else main.observed_in_rate
        cost = cpu / rate_in * node.speed if rate_in > 0 else 0.0
        busy_cost = busy_cpu / rate_in * node.speed if rate_in > 0 else 0.0
        sel = 1.0 if op.is_source else (main.observed_out_rate / rate_in if rate_in > 0 else 1.0)
        stats[op.uid] = (cost, sel, _bytes_per_record(op, main, ps, measured), busy_cost)
    sites, per_op = control_prices(measured, node_of, {o.uid for o in ops if o.is_source})
    p = _problem(ops, stats, nodes, mbit, sites)
    p = dataclasses.replace(p, operators=tuple(dataclasses.replace(
        o, control_up_bytes_per_s=per_op.get(o.id, {}).get("up", 0.0),
        control_down_bytes_per_s=per_op.get(o.id, {}).get("down", 0.0)) for o in p.operators))
    return with_checkpoints(p, state_in_acks(measured), measured.heartbeat_timeout_s)


def worker_cpu(by_op: dict[str, list[OperatorProfile]]) -> tuple[dict[str, float], dict[str, float]]:
    """(op uid → cores of the Python workers it ran in, TaskManager id → cores of all of them), from the
    workers its vertices' subtasks reported (`OperatorProfile.workers`; a worker serves one slot, so several
    vertices of an operator report the same one, counted once). A worker that vertices of several operators
    reported (operators that shared a slot) is shared among them by busy time."""
    workers: dict[tuple[str, int], tuple[float, dict[str, float]]] = {}
    for uid, ps in by_op.items():
        for p in ps:
            for tm, pid, cores in p.workers:
                seen, users = workers.get((tm, pid), (0.0, {}))
                users[uid] = users.get(uid, 0.0) + p.busy_cores
                workers[(tm, pid)] = (max(seen, cores), users)
    per_op: dict[str, float] = {}
    per_tm: dict[str, float] = {}
    for (tm, _), (cores, users) in workers.items():
        per_tm[tm] = per_tm.get(tm, 0.0) + cores
        total = sum(users.values())
        for uid, b in users.items():
            per_op[uid] = per_op.get(uid, 0.0) + cores * (b / total if total > 0 else 1 / len(users))
    return per_op, per_tm


def state_in_acks(measured: JobProfile) -> dict[str, float]:
    """Operator uid → bytes of checkpointed state its subtasks send in one checkpoint's acknowledgements."""
    return _per_operator(measured.state_in_acks, measured.owners)


def with_checkpoints(p: Problem, acks: dict[str, float], heartbeat_timeout_s: float | None) -> Problem:
    """The problem with each operator's state in one checkpoint's acknowledgements (`acks`: operator id →
    bytes; others none) and the cluster's heartbeat timeout on every link."""
    return dataclasses.replace(
        p, operators=tuple(dataclasses.replace(o, checkpoint_ack_bytes=acks.get(o.id, 0.0)) for o in p.operators),
        links=tuple(dataclasses.replace(l, heartbeat_timeout_s=heartbeat_timeout_s) for l in p.links)).validate()


def _per_operator(per_vertex: dict[str, float], owners: dict[str, str]) -> dict[str, float]:
    """Vertex id → amount, summed per operator uid (vertices of no operator and NaN left out)."""
    out: dict[str, float] = {}
    for vertex, x in per_vertex.items():
        uid = owners.get(vertex)
        if uid is not None and x == x and x > 0:
            out[uid] = out.get(uid, 0.0) + x
    return out


def with_edge_pass(cloud: Problem, edge: Problem, cloud_where: dict[str, str],
                   edge_where: dict[str, str]) -> Problem:
    """The problem priced from a cloud-only pass (`cloud`) with each operator's cost at the edge taken from a
    pass that ran it there (`edge`), where it was measured with its inputs local. The two differ most at the
    WAN boundary: the first operator after the link pays for records it receives from the network, the
    source for those it sends. A source (pinned, so in both passes at the edge) keeps the cost it had with
    its consumers local, and the difference per consumer that crossed the link in one pass and not the other
    becomes its send cost. Selectivities and bytes come from the cloud pass."""
    site = {n.id: n.site for n in cloud.nodes}
    at_edge = {v for v, n in edge_where.items() if site.get(n, CLOUD) != CLOUD}

    def crossing(where: dict[str, str], u: str) -> int:
        return sum(site.get(where.get(v, ""), CLOUD) != site.get(where.get(u, ""), CLOUD)
                   for v in cloud.graph.successors(u))

    ops = []
    for o in cloud.operators:
        e = edge.op[o.id]
        if o.pin is not None and o.id in at_edge:
            crossed = crossing(cloud_where, o.id)
            extra = crossed - crossing(edge_where, o.id)
            send = max(0.0, (o.cost_s_per_record - e.cost_s_per_record) / extra) if extra > 0 else 0.0
            base = o.cost_s_per_record - send * crossed
            ops.append(dataclasses.replace(o, cost_s_per_record=max(0.0, base), send_cost_s_per_record=send,
                                           busy_s_per_record=e.busy_s_per_record))
        elif o.id in at_edge:
            ops.append(dataclasses.replace(o, edge_cost_s_per_record=e.cost_s_per_record,
                                           edge_busy_s_per_record=e.busy_s_per_record))
        else:
            ops.append(o)
    return dataclasses.replace(cloud, operators=tuple(ops)).validate()


def _bytes_per_record(op: OpSpec, main: OperatorProfile, ps: list[OperatorProfile], measured: JobProfile) -> float:
    """Bytes one output record of `op` puts on one edge to a consumer: measured on the vertices whose output
    leaves the operator, per output edge (Flink serialises a record once for each edge it goes out on, and
    counts all of them in numBytesOut)."""
    if not measured.edges:
        return main.bytes_out_per_record if main.bytes_out_per_record == main.bytes_out_per_record else 0.0
    owner = measured.owners
    out_deg: dict[str, int] = {}
    for a, _ in measured.edges:
        out_deg[a] = out_deg.get(a, 0) + 1
    by_vertex = {p.vertex: p for p in ps}
    leaving = [a for a, b in measured.edges if owner.get(a) == op.uid and owner.get(b) != op.uid and a in by_vertex]
    records = main.observed_out_rate
    if not leaving or records <= 0:
        return 0.0
    per_edge = [by_vertex[a].bytes_out_rate / out_deg[a] for a in leaving]
    return float(sum(per_edge) / len(per_edge) / records)


def _starved(op: OpSpec, ops: list[OpSpec], by_op: dict[str, list[OperatorProfile]]) -> bool:
    """No record came in because none went out of its inputs in the window (e.g. a sink after a window that
    did not fire while profiled): the inputs' measured selectivity 0 already prices it at no records."""
    spec = {o.uid: o for o in ops}
    mains = [_main_vertex(spec[u], by_op.get(u, [])) for u in op.inputs if u in spec]
    return not op.is_source and bool(mains) and all(m is not None and m.observed_out_rate == 0 for m in mains)


def _main_vertex(op: OpSpec, ps: list[OperatorProfile]) -> OperatorProfile | None:
    """The vertex whose output leaves the operator: the generator of a source, else the operator itself."""
    want = f"{op.name} gen" if op.is_source else op.name
    return next((p for p in ps if p.name == want), None)


def _problem(ops: list[OpSpec], stats: dict, nodes: list[Node], mbit: Rates,
             control: dict[str, dict[str, float]] | None = None) -> Problem:
    operators = tuple(Operator(o.uid, o.parallelism, *stats[o.uid][:3], o.stateful, _pin(o, nodes),
                               stats[o.uid][3] if len(stats[o.uid]) > 3 and stats[o.uid][3] != stats[o.uid][0] else None)
                      for o in ops)
    edges = tuple(Edge(u, o.uid, o.ship) for o in ops for u in o.inputs)
    return Problem(operators, edges, {o.uid: 1.0 for o in ops if o.is_source}, tuple(nodes),
                   tuple(links_for(nodes, mbit, control)),
                   (flinksettings.BUNDLE_RECORDS, flinksettings.BUNDLE_S)).validate()


def _pin(op: OpSpec, nodes: list[Node]) -> str | None:
    """Sources run where their data is born: the TaskManager of their edge site."""
    if not op.is_source:
        return None
    node = next((n for n in nodes if n.site == op.site or n.id == op.site), None)
    return node.id if node else op.site


def with_speeds(nodes: list[Node], speeds: dict[str, float]) -> list[Node]:
    """Nodes with measured speeds (nodes not in `speeds` keep theirs)."""
    return [dataclasses.replace(n, speed=speeds.get(n.id, n.speed)) for n in nodes]
