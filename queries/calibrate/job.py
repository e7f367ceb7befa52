"""calibrate: a middle operator with a known cost per record, selectivity and output size.

events(site) → work (sleeps cost_ms per record; keeps 1 of every `keep_every`; emits `payload` chars)
→ sink. Options: --opt cost_ms=2 --opt keep_every=2 --opt payload=500 --opt busy=0 (1 = spin, not sleep),
--opt loops=0 (> 0: a fixed amount of Python work per record instead, for measuring a node's speed)."""
from __future__ import annotations

import sys

from queries.options import JobOptions, parse
from queries.topology import OpSpec, sink_op, source_op

DESCRIPTION = "known per-record cost, selectivity and record size (collector calibration)"


def params(opts: JobOptions) -> dict:
    return {"cost_ms": float(opts.extra.get("cost_ms", 2)), "keep_every": int(opts.extra.get("keep_every", 2)),
            "payload": int(opts.extra.get("payload", 500)), "busy": opts.extra.get("busy", "0") == "1",
            "loops": int(opts.extra.get("loops", 0))}


def topology(opts: JobOptions) -> list[OpSpec]:
    sources = [source_op(f"src-{s}", f"Events {s}", s, opts.par(f"src-{s}")) for s in opts.sites]
    return [*sources,
            OpSpec("work", "Work", opts.par("work"), inputs=tuple(s.uid for s in sources), ship="REBALANCE"),
            sink_op("sink", "Work Sink", ("work",), opts.par("sink"))]


def build(opts: JobOptions) -> None:
    import time

    from pyflink.common import Types
    from pyflink.datastream.functions import FlatMapFunction

    from queries.runtime import JobContext, WorkerGauges

    p = params(opts)

    class Work(WorkerGauges, FlatMapFunction):
        def flat_map(self, r):
            if p["loops"] > 0:  # the same work on every node: its time per record measures the node's speed
                x = r[0]
                for i in range(p["loops"]):
                    x = (x * 31 + i) & 0xFFFFFFFF
            elif p["busy"]:
                end = time.perf_counter() + p["cost_ms"] / 1000
                while time.perf_counter() < end:
                    pass
            else:
                time.sleep(p["cost_ms"] / 1000)
            if r[0] % p["keep_every"] == 0:
                yield r[0], "x" * p["payload"], r[-1]

    ops = topology(opts)
    ctx = JobContext(opts, ops)
    ev = Types.TUPLE([Types.LONG(), Types.DOUBLE()])
    streams = [ctx.source(op.uid, lambda seq, seed: (seq,), ev) for op in ops if op.is_source]
    merged = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
    work = ctx.pin(merged.rebalance().flat_map(Work(), output_type=Types.TUPLE(
        [Types.LONG(), Types.STRING(), Types.DOUBLE()])), "work")
    ctx.sink(work, "sink", lambda r: {"seq": r[0]})
    ctx.execute("calibrate")


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
