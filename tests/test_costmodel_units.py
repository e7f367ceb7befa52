"""The cost model's smaller parts on problems whose answers follow from the problem-file semantics by hand:
offload ranking, edge-max, latency."""
from __future__ import annotations

import math

import pytest

from costmodel.predict import latency_s, predict
from costmodel.problem import from_json
from costmodel.ranking import STATE_PENALTY, offload_ranking
from placement.heuristics import cloud_only, edge_max


def chain(*ops, edge_slots=4, link=125_000.0, rtt_ms=0.0, two_sites=False):
    """src at edge-1 → ops…; cloud-1 has 4 cores. `ops`: (id, cost, selectivity, bytes out, stateful)."""
    operators = [{"id": "src", "cost_s_per_record": 1e-4, "bytes_out_per_record": 100, "pin": "site-1"}]
    edges, prev = [], "src"
    for i, c, sel, b, st in ops:
        operators.append({"id": i, "cost_s_per_record": c, "selectivity": sel, "bytes_out_per_record": b,
                          "stateful": st})
        edges.append({"from": prev, "to": i})
        prev = i
    nodes = [{"id": "edge-1", "site": "site-1", "slots": edge_slots, "cores": 0.5},
             {"id": "cloud-1", "site": "cloud", "slots": 8, "cores": 4.0}]
    links = [{"site": "site-1", "up_bytes_per_s": link, "down_bytes_per_s": link, "rtt_ms": rtt_ms}]
    rates = {"src": 1.0}
    if two_sites:
        operators.append({"id": "src2", "cost_s_per_record": 1e-4, "bytes_out_per_record": 100, "pin": "site-2"})
        edges.append({"from": "src2", "to": ops[0][0]})
        nodes.append({"id": "edge-2", "site": "site-2", "slots": 4, "cores": 0.5})
        links.append({"site": "site-2", "up_bytes_per_s": link, "down_bytes_per_s": link})
        rates["src2"] = 1.0
    return from_json({"operators": operators, "edges": edges, "source_rates": rates, "nodes": nodes, "links": links})


def test_ranking_puts_the_filter_first_and_says_why():
    p = chain(("map", 1e-4, 1.0, 100, False), ("filter", 1e-4, 0.01, 100, False))
    ranked = offload_ranking(p, cloud_only(p))
    assert [e.op for e in ranked] == ["map", "filter"]  # only map reads from the edge now; filter does not
    assert ranked[0].eligible and not ranked[1].eligible
    assert ranked[0].score == 0.0  # a map saves no bytes: 100 in, 100 out
    moved = {**cloud_only(p), "map": "edge-1"}
    top = offload_ranking(p, moved)[0]
    # 100 bytes in, 1 out per unit rate, for 1e-4 CPU-s: 990 000 bytes saved per CPU-second
    assert top.op == "filter" and top.eligible and top.score == pytest.approx(99 / 1e-4)
    assert "reduces WAN bytes by 99" in top.reason


def test_ranking_penalises_state_and_refuses_inputs_from_two_sites():
    stateful = chain(("agg", 1e-4, 0.01, 100, True))
    stateless = chain(("agg", 1e-4, 0.01, 100, False))
    s, f = offload_ranking(stateful, cloud_only(stateful))[0], offload_ranking(stateless, cloud_only(stateless))[0]
    assert s.score == pytest.approx(f.score * STATE_PENALTY) and "stateful" in s.reason
    union = chain(("agg", 1e-4, 0.01, 100, False), two_sites=True)
    entry = offload_ranking(union, cloud_only(union))[0]
    assert not entry.eligible and "not all at one edge site" in entry.reason


def test_edge_max_follows_the_sources_as_far_as_slots_allow():
    p = chain(("a", 1e-5, 1.0, 100, False), ("b", 1e-5, 1.0, 100, False), ("c", 1e-5, 1.0, 100, False),
              edge_slots=3)
    asg = edge_max(p)
    assert [asg[v] for v in ("src", "a", "b", "c")] == ["edge-1", "edge-1", "edge-1", "cloud-1"]  # 3 slots
    union = chain(("a", 1e-5, 1.0, 100, False), two_sites=True)
    assert edge_max(union)["a"] == "cloud-1"  # reads from two sites: only the cloud joins them


def test_latency_grows_with_load_and_counts_each_wan_crossing():
    p = chain(("sink", 1e-4, 1.0, 0, False), rtt_ms=40)
    asg = cloud_only(p)  # src at the edge, sink in the cloud: one crossing of 100 bytes
    lam = predict(p, asg).max_rate
    idle = latency_s(p, asg, lam * 1e-6)
    # service times (src on 0.5 core at speed 1, sink in the cloud) + transfer + half the RTT
    assert idle == pytest.approx(1e-4 + 100 / 125_000 + 0.020 + 1e-4, rel=1e-3)
    half, most = latency_s(p, asg, lam * 0.5), latency_s(p, asg, lam * 0.9)
    assert idle < half < most
    assert math.isinf(latency_s(p, asg, lam))


def test_the_crossover_is_where_edge_cpu_and_link_bind_equally():
    """src (1e-4 s, 100 B) → filter (2e-4 s, keeps 1 %) on a 0.5-core edge: with the filter at the edge λ* is
    0.5 / 3e-4 = 1 667/s whatever the link; in the cloud the link binds at bandwidth / 100 B (the edge
    still runs the source, 5 000/s). They are equal at 1 667 × 100 B = 166 700 B/s of payload."""
    from costmodel.pricing import link_bytes_per_s
    from placement.crossover import crossovers
    p = chain(("filter", 2e-4, 0.01, 100, False), ("sink", 1e-6, 1.0, 0, False))
    found = crossovers(p)
    assert len(found) == 1
    c = found[0]
    assert c.below["filter"] == "edge-1" and c.above["filter"] == "cloud-1"
    assert link_bytes_per_s(c.mbit) == pytest.approx(0.5 / 3e-4 * 100, rel=0.03)


def _qa_two_sites(mbit: dict[str, float], edge_slots: int = 3):
    """QA from two sites with one chain per site, costed by hand: the flagger is CPU-heavy and keeps the
    record size, the metrics emit one record per 10 (window) at half the size."""
    import dataclasses

    from costmodel.pricing import structure_problem
    from costmodel.problem import Node
    from queries import options
    from queries.qa import job as qa
    ops = qa.topology(options.parse(["--sites", "edge-1,edge-2"]))
    nodes = [Node("edge-1", "edge-1", edge_slots, 0.5), Node("edge-2", "edge-2", edge_slots, 0.5),
             Node("cloud-1", "cloud", 8, 4.0)]
    p = structure_problem(ops, nodes, mbit)
    cost = {"src": (2e-4, 1.0, 616.0), "flag": (1e-3, 1.0, 640.0), "metrics": (1e-3, 0.1, 320.0), "sink": (1e-4, 1.0, 0)}
    kind = lambda uid: "src" if uid.startswith("src-") else uid.split("@")[0]
    return dataclasses.replace(p, operators=tuple(
        dataclasses.replace(o, cost_s_per_record=cost[kind(o.id)][0], selectivity=cost[kind(o.id)][1],
                            bytes_out_per_record=cost[kind(o.id)][2]) for o in p.operators))


def test_two_sites_each_offload_their_own_chain_on_thin_links():
    from placement.policies import plan
    p = _qa_two_sites({"edge-1": 0.5, "edge-2": 0.5})
    best, base = plan(p, "optimal"), cloud_only(p)
    assert {v: best[v] for v in ("flag@edge-1", "flag@edge-2")} == {"flag@edge-1": "edge-1", "flag@edge-2": "edge-2"}
    gain = predict(p, best).total_rate / predict(p, base).total_rate
    assert gain >= 1.5, gain
    # λ* is per source; a run measures all sources' events together: two sources, twice λ*
    assert predict(p, base).total_rate == pytest.approx(2 * predict(p, base).max_rate)
    assert predict(p, base).wan_bytes_per_event == pytest.approx(616.0)


def test_heterogeneous_sites_offload_only_where_the_link_is_thin():
    from placement.policies import plan
    p = _qa_two_sites({"edge-1": 0.5, "edge-2": 100.0})
    best = plan(p, "optimal")
    assert best["flag@edge-1"] == "edge-1"
    assert best["flag@edge-2"] == best["metrics@edge-2"] == "cloud-1"  # its 0.5-core edge would be the bound


def test_a_layout_is_described_by_site_when_there_are_several():
    from placement.crossover import describe
    p = _qa_two_sites({"edge-1": 0.5, "edge-2": 0.5})
    base = cloud_only(p)
    assert describe(p, base) == "at the edge: nothing but the sources"
    one, other = {**base, "sink": "edge-1"}, {**base, "sink": "edge-2"}
    assert describe(p, one) == "at edge-1: sink" and describe(p, other) == "at edge-2: sink"
    assert describe(p, {**one, "flag@edge-2": "edge-2"}) == "at edge-1: sink; at edge-2: flag@edge-2"
    single = chain(("filter", 2e-4, 0.01, 100, False), ("sink", 1e-6, 1.0, 0, False))
    assert describe(single, {**cloud_only(single), "filter": "edge-1"}) == "at the edge: filter"


def test_an_edge_pass_prices_operators_where_they_ran_and_the_source_pays_to_send():
    """Costs as measured in two passes (the q2 figures of this machine, µs per record): cloud-only, where the
    filter receives over the network and the source sends; edge-max, where both are local at the edge."""
    from costmodel.pricing import with_edge_pass
    from placement.optimal import optimal

    def problem(src, flt):
        ops = [{"id": "src", "cost_s_per_record": src, "bytes_out_per_record": 131, "pin": "edge-1"},
               {"id": "filter", "cost_s_per_record": flt, "selectivity": 0.01, "bytes_out_per_record": 100},
               {"id": "sink", "cost_s_per_record": 2e-3}]
        return from_json({"operators": ops, "edges": [{"from": "src", "to": "filter"}, {"from": "filter", "to": "sink"}],
                          "source_rates": {"src": 1.0},
                          "nodes": [{"id": "edge-1", "site": "site-1", "slots": 4, "cores": 0.5},
                                    {"id": "cloud-1", "site": "cloud", "slots": 8, "cores": 1.5}],
                          "links": [{"site": "site-1", "up_bytes_per_s": 1e7, "down_bytes_per_s": 1e7}]})

    cloud_where = {"src": "edge-1", "filter": "cloud-1", "sink": "cloud-1"}
    edge_where = {"src": "edge-1", "filter": "edge-1", "sink": "edge-1"}
    p = with_edge_pass(problem(160e-6, 107e-6), problem(100e-6, 55e-6), cloud_where, edge_where)
    assert p.op["src"].cost_s_per_record == pytest.approx(100e-6)
    assert p.op["src"].send_cost_s_per_record == pytest.approx(60e-6)
    assert p.op["filter"].edge_cost_s_per_record == pytest.approx(55e-6)
    assert p.op["filter"].cost_s_per_record == pytest.approx(107e-6)
    # each placement is priced with what its own pass measured: the edge node holds 160 µs per event
    # cloud-only (the source sends), 155 with the filter beside the source (it no longer sends)
    assert predict(p, cloud_where).limits["node:edge-1"] == pytest.approx(0.5 / 160e-6)
    with_filter = {**cloud_where, "filter": "edge-1"}
    assert predict(p, with_filter).limits["node:edge-1"] == pytest.approx(0.5 / 155e-6)
    assert optimal(p) == with_filter  # the single-pass problem would keep the filter in the cloud
    assert optimal(problem(160e-6, 107e-6)) == cloud_where


def test_a_tie_goes_to_the_least_cpu_at_the_edge_and_then_to_the_fewest_wan_bytes():
    """src → filter (keeps half) → count (2 ms per record, one subtask: at most 1 000 events/s wherever the
    filter runs) → sink, as q5 at 50 Mbit/s: both layouts sustain the same λ*, and the filter at the edge would
    save WAN bytes on a link that does not bind by spending the slow edge's CPU. A thin link makes the filter's
    saving the rate itself."""
    from placement.policies import plan
    ops = (("filter", 1e-5, 0.5, 100, False), ("count", 2e-3, 1.0, 10, True), ("sink", 1e-6, 1.0, 0, False))
    fat = chain(*ops)
    at_edge = {"src": "edge-1", "filter": "edge-1", "count": "cloud-1", "sink": "cloud-1"}
    a, b = predict(fat, at_edge), predict(fat, {**at_edge, "filter": "cloud-1"})
    assert a.max_rate == pytest.approx(b.max_rate) and a.bottleneck == b.bottleneck == "operator:count"
    assert a.wan_bytes_per_unit_rate < b.wan_bytes_per_unit_rate
    assert a.edge_cpu_per_unit_rate == pytest.approx(b.edge_cpu_per_unit_rate + 1e-5)
    for policy in ("optimal", "exhaustive", "greedy"):
        assert plan(fat, policy)["filter"] == "cloud-1", policy
    thin = chain(*ops, link=50_000.0)
    assert predict(thin, at_edge).max_rate > 1.5 * predict(thin, {**at_edge, "filter": "cloud-1"}).max_rate
    for policy in ("optimal", "exhaustive", "greedy"):
        assert plan(thin, policy)["filter"] == "edge-1", policy
