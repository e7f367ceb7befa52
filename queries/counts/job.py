"""counts: per-key running counts — small, stateful, four placeable stages.

events(site) → parse → [HASH by key] count (keyed state) → sink. Output records: key, count, seq, site.
`--opt pad=N` gives each event N bytes of padding that `parse` drops (a projection: what crosses the WAN
shrinks N-fold when `parse` runs at the edge), so a thin link makes the edge the better place for it."""
from __future__ import annotations

import sys

from queries.options import JobOptions, parse
from queries.topology import OpSpec, sink_op, source_op

DESCRIPTION = "per-key running counts (stateful), for placement and redeploy tests"
KEYS = 16


def pad(opts: JobOptions) -> int:
    """Bytes of padding per event (0: none)."""
    n = int(opts.extra.get("pad", 0))
    if n < 0:
        raise ValueError(f"pad must be ≥ 0, not {n}")
    return n


def event(seq: int, seed: int) -> tuple:
    return ((seq * 2654435761 + seed) % KEYS, seq)


def topology(opts: JobOptions) -> list[OpSpec]:
    pad(opts)  # a bad value is found before a job is built
    sources = [source_op(f"src-{s}", f"Events {s}", s, opts.par(f"src-{s}")) for s in opts.sites]
    return [*sources,
            OpSpec("parse", "Parse", opts.par("parse"), inputs=tuple(s.uid for s in sources)),
            OpSpec("count", "Count", opts.par("count"), stateful=True, inputs=("parse",), ship="HASH"),
            sink_op("sink", "Counts Sink", ("count",), opts.par("sink"))]


def build(opts: JobOptions) -> None:
    from pyflink.common import Types
    from pyflink.datastream.functions import KeyedProcessFunction
    from pyflink.datastream.state import ValueStateDescriptor

    from queries.runtime import JobContext, WorkerGauges, metered

    class Count(WorkerGauges, KeyedProcessFunction):
        def open(self, ctx):
            super().open(ctx)
            self.n = ctx.get_state(ValueStateDescriptor("n", Types.LONG()))

        def process_element(self, value, ctx):
            n = (self.n.value() or 0) + 1
            self.n.update(n)
            yield value[0], n, value[1], value[2], value[3]

    ops = topology(opts)
    ctx = JobContext(opts, ops)
    padding = pad(opts)
    extra = ("x" * padding,) if padding else ()  # (key, seq, site[, padding], created)
    parsed_type = Types.TUPLE([Types.LONG(), Types.LONG(), Types.STRING(), Types.DOUBLE()])
    event_type = Types.TUPLE([Types.LONG(), Types.LONG(), Types.STRING(), *(Types.STRING() for _ in extra),
                              Types.DOUBLE()])
    streams = []
    for op in (o for o in ops if o.is_source):
        site = op.site
        streams.append(ctx.source(op.uid, lambda seq, seed, site=site: (*event(seq, seed), site, *extra),
                                  event_type))
    merged = ctx.union(streams)
    parsed = ctx.pin(merged.map(metered(lambda r: (r[0], r[1], r[2], r[-1])), output_type=parsed_type), "parse")
    counted = ctx.pin(ctx.keyed(parsed.key_by(lambda r: r[0], key_type=Types.LONG()), "count").process(
        Count(), output_type=Types.TUPLE([Types.LONG(), Types.LONG(), Types.LONG(), Types.STRING(),
                                          Types.DOUBLE()])), "count")
    ctx.sink(counted, "sink", lambda r: {"key": r[0], "count": r[1], "seq": r[2], "site": r[3]})
    ctx.execute("counts")


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
