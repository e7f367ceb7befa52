"""Nexmark q5 q7 q8 q11 (event-time windows) and q14 on the event stream, as pinned PyFlink operators.

Windows are in event time (the events' date_time, ms); results carry the window bounds. Records end with
the creation time of the newest contributing event, so sinks can measure end-to-end latency."""
from __future__ import annotations

from datetime import datetime, timezone

from pyflink.common import Time, Types
from pyflink.datastream.functions import (AggregateFunction, KeyedCoProcessFunction, KeyedProcessFunction,
                                          ProcessWindowFunction)
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor
from pyflink.datastream.window import EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows

from queries.runtime import WorkerGauges, metered

# bid tuple: (auction, bidder, price, date_time, extra, created)
BID_FIELDS = ("auction", "bidder", "price", "date_time", "extra", "created")
COUNT_T = Types.TUPLE([Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(), Types.DOUBLE()])


def bid_time_type(date_time_ms: int) -> str:
    """q14's CASE on HOUR(dateTime) (UTC)."""
    hour = datetime.fromtimestamp(date_time_ms / 1000, tz=timezone.utc).hour
    if 8 <= hour <= 18:
        return "dayTime"
    if hour <= 6 or hour >= 20:
        return "nightTime"
    return "otherTime"


def q14_row(b: tuple) -> list[tuple]:
    price = 0.908 * b[2]
    if not 1_000_000 < price < 50_000_000:
        return []
    return [(b[0], b[1], price, bid_time_type(b[3]), b[3], b[4].count("c"), b[5])]


class CountWithLatest(AggregateFunction):
    """(count, newest creation time) of the records in a window."""

    def create_accumulator(self):
        return 0, 0.0

    def add(self, value, acc):
        return acc[0] + 1, max(acc[1], value[-1])

    def get_result(self, acc):
        return acc

    def merge(self, a, b):
        return a[0] + b[0], max(a[1], b[1])


class WithWindow(WorkerGauges, ProcessWindowFunction):
    """(key, count, window start, window end, newest creation time)."""

    def process(self, key, context, elements):
        count, created = next(iter(elements))
        yield key, count, context.window().start, context.window().end, created


class Hottest(WorkerGauges, KeyedProcessFunction):
    """Keyed by window end: sums each auction's counts (one per site when the sites count their own bids),
    and when the watermark passes the window emits the auctions whose count is the window's maximum (q5's
    join of AuctionBids with MaxBids). The watermark passes only once every site's count of the window has
    arrived: each count carries the window's last instant, and a site forwards its watermark after it."""

    def open(self, rc):
        super().open(rc)
        self.counts = rc.get_map_state(MapStateDescriptor("counts", Types.LONG(), Types.STRING()))

    def process_element(self, r, ctx):
        n, created = r[1], r[4]
        if self.counts.contains(r[0]):
            before, _, seen = self.counts.get(r[0]).split("|")
            n, created = n + int(before), max(created, float(seen))
        self.counts.put(r[0], f"{n}|{r[2]}|{created}")
        ctx.timer_service().register_event_time_timer(r[3] - 1)

    def on_timer(self, ts, ctx):
        rows = [(a, *v.split("|")) for a, v in self.counts.items()]
        top = max(int(n) for _, n, _, _ in rows)
        for a, n, start, created in rows:
            if int(n) == top:
                yield a, top, int(start), ts + 1, float(created)
        self.counts.clear()


class MaxBids(AggregateFunction):
    """The highest price in a window and every bid that has it."""

    def create_accumulator(self):
        return -1, []

    def add(self, b, acc):
        if b[2] > acc[0]:
            return b[2], [b]
        if b[2] == acc[0]:
            return acc[0], acc[1] + [b]
        return acc

    def get_result(self, acc):
        return acc

    def merge(self, a, b):
        return a if a[0] > b[0] else b if b[0] > a[0] else (a[0], a[1] + b[1])


class EmitMaxBids(WorkerGauges, ProcessWindowFunction):
    def process(self, key, context, elements):
        _, bids = next(iter(elements))
        for b in bids:
            yield b[0], b[2], b[1], b[3], context.window().end, b[5]


class HighestOfSites(WorkerGauges, KeyedProcessFunction):
    """q7's second phase, keyed by window end: keeps every site's highest bids of the window, and when the
    watermark passes the window (every site's result has arrived) emits those with the highest price."""

    def open(self, rc):
        super().open(rc)
        self.bids = rc.get_list_state(ListStateDescriptor("bids", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, r, ctx):
        self.bids.add(tuple(r))
        ctx.timer_service().register_event_time_timer(r[4] - 1)

    def on_timer(self, ts, ctx):
        rows = list(self.bids.get())
        top = max(r[1] for r in rows)
        yield from (r for r in rows if r[1] == top)
        self.bids.clear()


class NewUserJoin(WorkerGauges, KeyedCoProcessFunction):
    """q8 keyed by person id = seller: a person and an auction of theirs in the same tumbling window."""

    def __init__(self, size_ms: int):
        self.size = size_ms

    def open(self, rc):
        super().open(rc)
        self.person = rc.get_map_state(MapStateDescriptor("person", Types.LONG(), Types.STRING()))
        self.seller = rc.get_map_state(MapStateDescriptor("seller", Types.LONG(), Types.DOUBLE()))

    def _start(self, ts: int) -> int:
        return ts - ts % self.size

    def process_element1(self, p, ctx):  # person (id, name, date_time, created)
        w = self._start(p[2])
        self.person.put(w, f"{p[1]}|{p[3]}")
        ctx.timer_service().register_event_time_timer(w + self.size - 1)

    def process_element2(self, a, ctx):  # auction (seller, date_time, created)
        w = self._start(a[1])
        prev = self.seller.get(w)
        self.seller.put(w, max(prev or 0.0, a[2]))
        ctx.timer_service().register_event_time_timer(w + self.size - 1)

    def on_timer(self, ts, ctx):
        w = ts + 1 - self.size
        if self.person.contains(w) and self.seller.contains(w):
            name, created = self.person.get(w).split("|")
            yield ctx.get_current_key(), name, w, max(float(created), self.seller.get(w))
        if self.person.contains(w):
            self.person.remove(w)
        if self.seller.contains(w):
            self.seller.remove(w)


def build(q: str, ctx, streams: list, bid_of, ms: dict[str, int]) -> None:
    """Add query `q`'s operators after the sources' event `streams` and its sink; `bid_of(stream, uid)` selects
    the bids (one selection per site where the topology replicates it)."""
    band = ("q14", lambda s, uid: s.flat_map(metered(q14_row), output_type=Types.TUPLE(
        [Types.LONG(), Types.LONG(), Types.DOUBLE(), Types.STRING(), Types.LONG(), Types.INT(), Types.DOUBLE()])))
    bids = ctx.stages(streams, [("bids", bid_of)]) if q not in ("q5", "q7", "q8", "q14") else None
    if q == "q14":
        out = ctx.stages(streams, [("bids", bid_of), band])
        ctx.sink(out, "sink", lambda r: {"auction": r[0], "bidder": r[1], "price": r[2], "bid_time_type": r[3],
                                         "date_time": r[4], "c_counts": r[5]})
    elif q == "q5":
        count = lambda s, uid: (ctx.keyed(s.key_by(lambda b: b[0], key_type=Types.LONG()), uid)
                                .window(SlidingEventTimeWindows.of(Time.milliseconds(ms["window_ms"]),
                                                                   Time.milliseconds(ms["slide_ms"])))
                                .aggregate(CountWithLatest(), WithWindow(),
                                           accumulator_type=Types.TUPLE([Types.LONG(), Types.DOUBLE()]),
                                           output_type=COUNT_T))
        # one count of every site's bids, or (per-site replicas) each site's partial counts, which Hottest sums
        counts = ctx.stages(streams, [("bids", bid_of), ("count", count)])
        hot = ctx.pin(ctx.keyed(counts.key_by(lambda r: r[3], key_type=Types.LONG()), "hot").process(Hottest(), output_type=COUNT_T),
                      "hot")
        ctx.sink(hot, "sink", lambda r: {"auction": r[0], "num": r[1], "start": r[2], "end": r[3]})
    elif q == "q7":
        best_t = Types.TUPLE([Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(), Types.DOUBLE()])
        highest = lambda s, uid: (ctx.keyed(s.key_by(lambda b: 0, key_type=Types.INT()), uid)
                                  .window(TumblingEventTimeWindows.of(Time.milliseconds(ms["window_ms"])))
                                  .aggregate(MaxBids(), EmitMaxBids(), accumulator_type=Types.PICKLED_BYTE_ARRAY(),
                                             output_type=best_t))
        if any(u.startswith("site-max@") for u in ctx.ops):  # two phases: each site's highest, then theirs
            sites = ctx.stages(streams, [("bids", bid_of), ("site-max", highest)])
            best = ctx.pin(ctx.keyed(sites.key_by(lambda r: r[4], key_type=Types.LONG()), "max")
                           .process(HighestOfSites(), output_type=best_t), "max")
        else:
            best = ctx.pin(highest(ctx.stages(streams, [("bids", bid_of)]), "max"), "max")
        ctx.sink(best, "sink", lambda r: {"auction": r[0], "price": r[1], "bidder": r[2], "date_time": r[3],
                                          "end": r[4]})
    elif q == "q11":
        sessions = ctx.pin(ctx.keyed(bids.key_by(lambda b: b[1], key_type=Types.LONG()), "sessions")
                           .window(EventTimeSessionWindows.with_gap(Time.milliseconds(ms["gap_ms"])))
                           .aggregate(CountWithLatest(), WithWindow(),
                                      accumulator_type=Types.TUPLE([Types.LONG(), Types.DOUBLE()]),
                                      output_type=COUNT_T), "sessions")
        ctx.sink(sessions, "sink", lambda r: {"bidder": r[0], "bid_count": r[1], "start": r[2], "end": r[3]})
    elif q == "q8":
        events = ctx.union(streams)
        persons = ctx.pin(events.flat_map(metered(lambda e: [(e[1], e[6], e[5], e[10])] if e[0] == 0 else []),
                                          output_type=Types.TUPLE([Types.LONG(), Types.STRING(), Types.LONG(),
                                                                   Types.DOUBLE()])), "persons")
        auctions = ctx.pin(events.flat_map(metered(lambda e: [(e[2], e[5], e[10])] if e[0] == 1 else []),
                                           output_type=Types.TUPLE([Types.LONG(), Types.LONG(), Types.DOUBLE()])),
                           "auctions")
        joined = ctx.pin(ctx.keyed(persons.connect(auctions).key_by(lambda p: p[0], lambda a: a[0], key_type=Types.LONG()),
                                   "join")
                         .process(NewUserJoin(ms["window_ms"]),
                                  output_type=Types.TUPLE([Types.LONG(), Types.STRING(), Types.LONG(),
                                                           Types.DOUBLE()])), "join")
        ctx.sink(joined, "sink", lambda r: {"id": r[0], "name": r[1], "start": r[2]})
