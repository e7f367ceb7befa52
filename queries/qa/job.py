"""SKA signal-quality pipeline: mock visibilities per baseline at each edge site → RFI flagger (running
median/MAD per baseline, channel and polarisation) → QA metrics per baseline over windows of slots
(amplitude/phase mean and variance, also RFI-excised; RFI run length; RFI fraction per channel; amplitude
histogram; clipped samples) → sink. Options: --opt baselines=8 --opt window=10."""
from __future__ import annotations

import sys

from queries.options import JobOptions, parse
from queries.topology import OpSpec, site_chains, sink_op, source_op

DESCRIPTION = "SKA QA: visibilities → RFI flagger → QA metrics (stateful)"


def params(opts: JobOptions) -> tuple[int, int]:
    return int(opts.extra.get("baselines", 8)), int(opts.extra.get("window", 10))


def topology(opts: JobOptions) -> list[OpSpec]:
    srcs = [source_op(f"src-{s}", f"Visibilities {s}", s, opts.par(f"src-{s}")) for s in opts.sites]
    # a baseline belongs to one station: with several sites, flagging and metrics run once per site
    chain, ends = site_chains(opts, srcs, [
        OpSpec("flag", "RFI Flagger", opts.par("flag"), stateful=True, inputs=tuple(s.uid for s in srcs),
               ship="HASH"),
        OpSpec("metrics", "QA Metrics", opts.par("metrics"), stateful=True, inputs=("flag",), ship="HASH")])
    return [*srcs, *chain, sink_op("sink", "QA Sink", ends, opts.par("sink"))]


def build(opts: JobOptions) -> None:
    import json

    import numpy as np
    from pyflink.common import Types
    from pyflink.datastream.functions import KeyedProcessFunction
    from pyflink.datastream.state import ValueStateDescriptor

    from queries.qa import model
    from queries.runtime import JobContext, WorkerGauges

    baselines, window = params(opts)
    shape = (model.CHANNELS, model.POLS)

    class Flagger(WorkerGauges, KeyedProcessFunction):
        def open(self, rc):
            super().open(rc)
            self.hist = rc.get_state(ValueStateDescriptor("history", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, r, ctx):
            v = (np.asarray(r[2], dtype=np.float32) + 1j * np.asarray(r[3], dtype=np.float32)).reshape(shape)
            amp, phase = np.abs(v), np.angle(v)
            hist = self.hist.value()
            hist = np.empty((0, *shape), np.float32) if hist is None else hist
            flags = model.flag(hist, amp)
            self.hist.update(model.remember(hist, amp, flags))
            yield (r[0], r[1], amp.ravel().tolist(), phase.ravel().tolist(),
                   "".join("1" if f else "0" for f in flags.ravel()), r[4])

    class Metrics(WorkerGauges, KeyedProcessFunction):
        def open(self, rc):
            super().open(rc)
            self.buf = rc.get_state(ValueStateDescriptor("window", Types.PICKLED_BYTE_ARRAY()))
            self.run = rc.get_state(ValueStateDescriptor("run", Types.INT()))

        def process_element(self, r, ctx):
            amp = np.asarray(r[2], dtype=np.float32).reshape(shape)
            phase = np.asarray(r[3], dtype=np.float32).reshape(shape)
            flags = np.frombuffer(r[4].encode(), dtype=np.uint8).reshape(shape) == ord("1")
            run = model.run_length(self.run.value() or 0, flags)
            self.run.update(run)
            buf = self.buf.value() or []
            buf.append((amp, phase, flags))
            if len(buf) < window:
                self.buf.update(buf)
                return
            self.buf.clear()
            m = model.window_metrics(np.stack([b[0] for b in buf]), np.stack([b[1] for b in buf]),
                                     np.stack([b[2] for b in buf]))
            yield r[0], r[1], json.dumps(m), run, r[5]

    ops = topology(opts)
    ctx = JobContext(opts, ops)
    rec_t = Types.TUPLE([Types.LONG(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.FLOAT()),
                         Types.PRIMITIVE_ARRAY(Types.FLOAT()), Types.DOUBLE()])
    streams = []
    for i, op in enumerate(o for o in ops if o.is_source):
        streams.append(ctx.source(op.uid, lambda seq, seed, i=i: model.record(seq, seed, baselines, i), rec_t))
    flagged_t = Types.TUPLE([Types.LONG(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.FLOAT()),
                             Types.PRIMITIVE_ARRAY(Types.FLOAT()), Types.STRING(), Types.DOUBLE()])
    metrics_t = Types.TUPLE([Types.LONG(), Types.LONG(), Types.STRING(), Types.INT(), Types.DOUBLE()])
    metrics = ctx.stages(streams, [
        ("flag", lambda s, uid: ctx.keyed(s.key_by(lambda r: r[0], key_type=Types.LONG()), uid)
         .process(Flagger(), output_type=flagged_t)),
        ("metrics", lambda s, uid: ctx.keyed(s.key_by(lambda r: r[0], key_type=Types.LONG()), uid)
         .process(Metrics(), output_type=metrics_t))])
    ctx.sink(metrics, "sink", lambda r: {"baseline": r[0], "t": r[1], "run_length": r[3], **json.loads(r[2])})
    ctx.execute("qa")


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
