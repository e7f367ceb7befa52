"""Nexmark queries q0 q1 q2 q3 q5 q7 q8 q11 q14 as placeable PyFlink jobs (`--opt query=q5`).

Every job: events(site) → bids|persons|auctions selection → query stages → sink. Semantics as the
reference SQL: q0 pass-through of bids; q1 price in euro (×0.908); q2 bids with auction % 123 == 0
(auction, price); q3 persons in OR/ID/CA joined with auctions of category 10 on seller (incremental);
q14 bids with 1e6 < 0.908·price < 5e7, their time-of-day type and 'c' count of extra.
Event-time queries (watermarks at the sources, windows in event time; sizes via --opt window_ms=,
slide_ms=, gap_ms=, Nexmark's defaults 10 s / 2 s / 10 s): q5 hot items (auctions with the most bids per
sliding window), q7 highest bid per tumbling window, q8 persons who opened an auction in the tumbling
window they registered in, q11 bids per bidder session. With several sites q5 and q7 run in two phases,
as Flink's local-global aggregation: each site counts its own bids per auction and window (q5) or finds
its own highest bids per window (q7), and the stage after it merges the sites' results."""
from __future__ import annotations

import sys

from queries.nexmark.model import NOMINAL_RATE
from queries.options import JobOptions, OptionsError, parse
from queries.topology import OpSpec, per_site, site_chains, sink_op, source_op

DESCRIPTION = "Nexmark q0 q1 q2 q3 q5 q7 q8 q11 q14 (--opt query=qN)"
QUERIES = ("q0", "q1", "q2", "q3", "q5", "q7", "q8", "q11", "q14")
EVENT_TIME = ("q5", "q7", "q8", "q11")
DEFAULTS_MS = {"window_ms": 10_000, "slide_ms": 2_000, "gap_ms": 10_000}


def window_ms(opts: JobOptions, key: str) -> int:
    v = int(opts.extra.get(key, DEFAULTS_MS[key]))
    if v <= 0:
        raise OptionsError(f"--opt {key} must be > 0")
    return v


def cycle_events(opts: JobOptions) -> int:
    """Events per source after which each event-time window of the query has closed once (0: no windows).
    Event time runs NOMINAL_RATE events per second of it, so at edge rates one 10-s window takes minutes of
    wall time, and its closing (a burst of work) lands in some measurement windows and not in others."""
    key = {"q5": "slide_ms", "q7": "window_ms", "q8": "window_ms", "q11": "gap_ms"}.get(query(opts))
    return window_ms(opts, key) * NOMINAL_RATE // 1000 if key else 0


def query(opts: JobOptions) -> str:
    q = opts.extra.get("query", "q2")
    if q not in QUERIES:
        raise OptionsError(f"unknown Nexmark query {q!r}; known: {', '.join(QUERIES)}")
    return q


def topology(opts: JobOptions) -> list[OpSpec]:
    q = query(opts)
    srcs = [source_op(f"src-{s}", f"Nexmark {s}", s, opts.par(f"src-{s}"), watermarks=q in EVENT_TIME)
            for s in opts.sites]
    ins = tuple(s.uid for s in srcs)
    # selections that read one event at a time run once per site (with several sites); the stages after them
    # read every site (the joins of q3/q8 keep one shared selection per side: their key-by helpers read a union)
    if q in ("q3", "q8"):
        persons, auctions, join = {"q3": ("Persons OR ID CA", "Auctions cat 10", "Q3 Join"),
                                   "q8": ("New Persons", "New Auctions", "Q8 Window Join")}[q]
        mid = [OpSpec("persons", persons, opts.par("persons"), inputs=ins),
               OpSpec("auctions", auctions, opts.par("auctions"), inputs=ins),
               OpSpec("join", join, opts.par("join"), stateful=True, inputs=("persons", "auctions"), ship="HASH",
                      two_input=True)]
        return [*srcs, *mid, sink_op("sink", f"Nexmark {q} Sink", ("join",), opts.par("sink"))]
    if q == "q2":  # SELECT auction, price FROM bid WHERE auction % 123 = 0: selection on the event stream
        chain = [OpSpec("filter", "Q2 Filter", opts.par("filter"), inputs=ins),
                 OpSpec("project", "Q2 Project", opts.par("project"), inputs=("filter",))]
    else:
        chain = [OpSpec("bids", "Bids", opts.par("bids"), inputs=ins)]
        # two phases with several sites: each site counts (q5) or finds its highest bids (q7) per window itself,
        # and the stage after it merges the sites' partial results
        if q == "q5" and per_site(opts):
            chain.append(OpSpec("count", "Q5 Count per Window", opts.par("count"), stateful=True, inputs=("bids",),
                                ship="HASH"))
        elif q == "q7" and per_site(opts):
            chain.append(OpSpec("site-max", "Q7 Site Highest Bid", 1, stateful=True, inputs=("bids",), ship="HASH"))
        elif q == "q1":
            chain.append(OpSpec("convert", "Q1 Euro", opts.par("convert"), inputs=("bids",)))
        elif q == "q14":
            chain.append(OpSpec("q14", "Q14 Price Band", opts.par("q14"), inputs=("bids",)))
    mid, ends = site_chains(opts, srcs, chain)
    if q == "q5":
        if not per_site(opts):
            mid.append(OpSpec("count", "Q5 Count per Window", opts.par("count"), stateful=True, inputs=ends,
                              ship="HASH"))
            ends = ("count",)
        mid.append(OpSpec("hot", "Q5 Hottest", opts.par("hot"), stateful=True, inputs=ends, ship="HASH"))
        ends = ("hot",)
    elif q == "q7":  # one global maximum per window: parallelism 1 (of the sites' maxima, with several sites)
        mid.append(OpSpec("max", "Q7 Highest Bid", 1, stateful=True, inputs=ends, ship="HASH"))
        ends = ("max",)
    elif q == "q11":
        mid.append(OpSpec("sessions", "Q11 Bidder Sessions", opts.par("sessions"), stateful=True, inputs=ends,
                          ship="HASH"))
        ends = ("sessions",)
    return [*srcs, *mid, sink_op("sink", f"Nexmark {q} Sink", ends, opts.par("sink"))]


def build(opts: JobOptions) -> None:
    from pyflink.common import Types
    from pyflink.datastream.functions import KeyedCoProcessFunction
    from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor

    from queries.nexmark import model
    from queries.runtime import JobContext, WorkerGauges, metered

    q = query(opts)
    ops = topology(opts)
    ctx = JobContext(opts, ops)
    ev_type = Types.TUPLE([Types.INT(), Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(),
                           Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.DOUBLE()])
    streams = [ctx.source(op.uid, model.event, ev_type, 5 if q in EVENT_TIME else None) for op in ops if op.is_source]
    bid_of = lambda s, uid: s.flat_map(metered(lambda e: [(e[1], e[2], e[3], e[5], e[9], e[10])] if e[0] == 2 else []),
                                       output_type=bid_type)
    # bid: (auction, bidder, price, date_time, extra, created)
    bid_type = Types.TUPLE([Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(), Types.STRING(), Types.DOUBLE()])

    if q in ("q5", "q7", "q8", "q11", "q14"):
        from queries.nexmark import windowed
        windowed.build(q, ctx, streams, bid_of, {k: window_ms(opts, k) for k in DEFAULTS_MS})
    elif q == "q3":
        events = ctx.union(streams)
        person_t = Types.TUPLE([Types.LONG(), Types.STRING(), Types.STRING(), Types.STRING(), Types.DOUBLE()])
        auction_t = Types.TUPLE([Types.LONG(), Types.LONG(), Types.DOUBLE()])
        # one flat_map per selection: a filter + map pair would be two Flink operators to pin
        persons = ctx.pin(events.flat_map(metered(lambda e: [(e[1], e[6], e[7], e[8], e[10])]
                                          if e[0] == 0 and e[8] in ("OR", "ID", "CA") else []),
                                          output_type=person_t), "persons")
        auctions = ctx.pin(events.flat_map(metered(lambda e: [(e[1], e[2], e[10])] if e[0] == 1 and e[4] == 10 else []),
                                           output_type=auction_t), "auctions")

        class Join(WorkerGauges, KeyedCoProcessFunction):
            """Incremental join on seller: each side kept in state; emit on every match."""

            def open(self, rc):
                super().open(rc)
                self.person = rc.get_map_state(MapStateDescriptor("person", Types.STRING(), Types.STRING()))
                self.auctions = rc.get_list_state(ListStateDescriptor("auctions", Types.LONG()))

            def process_element1(self, p, c):  # person
                self.person.put("v", "\\x1f".join((p[1], p[2], p[3])))
                for a in self.auctions.get():
                    yield p[1], p[2], p[3], a, p[4]

            def process_element2(self, a, c):  # auction (id, seller, created)
                self.auctions.add(a[0])
                if self.person.contains("v"):
                    name, city, state = self.person.get("v").split("\\x1f")
                    yield name, city, state, a[0], a[2]

        joined = ctx.pin(ctx.keyed(persons.connect(auctions).key_by(lambda p: p[0], lambda a: a[1], key_type=Types.LONG()), "join")
                         .process(Join(), output_type=Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING(),
                                                                   Types.LONG(), Types.DOUBLE()])), "join")
        ctx.sink(joined, "sink", lambda r: {"name": r[0], "city": r[1], "state": r[2], "auction": r[3]})
    elif q == "q2":
        proj = ctx.stages(streams, [
            ("filter", lambda s, uid: s.filter(metered(lambda e: e[0] == 2 and e[1] % 123 == 0))),
            ("project", lambda s, uid: s.map(metered(lambda e: (e[1], e[3], e[10])),
                                             output_type=Types.TUPLE([Types.LONG(), Types.LONG(), Types.DOUBLE()])))])
        ctx.sink(proj, "sink", lambda r: {"auction": r[0], "price": r[1]})
    else:
        euro = ("convert", lambda s, uid: s.map(metered(lambda b: (b[0], b[1], int(b[2] * 0.908), b[3], b[4], b[5])),
                                                output_type=bid_type))
        out = ctx.stages(streams, [("bids", bid_of), *([euro] if q == "q1" else [])])
        ctx.sink(out, "sink", lambda b: {"auction": b[0], "bidder": b[1], "price": b[2], "date_time": b[3]})
    ctx.execute(f"nexmark-{q}")


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
