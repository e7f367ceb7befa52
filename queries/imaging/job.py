"""Fast imaging: visibility time slices at each edge site → dirty image (gridding + 2-D FFT, CPU-heavy,
large output) → image statistics (peak, position, rms) → sink."""
from __future__ import annotations

import sys

from queries.options import JobOptions, parse
from queries.topology import OpSpec, site_chains, sink_op, source_op

DESCRIPTION = "fast imaging: visibility slices → gridding + FFT dirty image → image statistics"


def topology(opts: JobOptions) -> list[OpSpec]:
    srcs = [source_op(f"src-{s}", f"Slices {s}", s, opts.par(f"src-{s}")) for s in opts.sites]
    # a slice is imaged on its own: with several sites, each site images its own slices
    chain, ends = site_chains(opts, srcs, [
        OpSpec("image", "Dirty Image", opts.par("image"), inputs=tuple(s.uid for s in srcs), ship="REBALANCE"),
        OpSpec("stats", "Image Stats", opts.par("stats"), inputs=("image",))])
    return [*srcs, *chain, sink_op("sink", "Imaging Sink", ends, opts.par("sink"))]


def build(opts: JobOptions) -> None:
    import numpy as np
    from pyflink.common import Types

    from queries.imaging import model
    from queries.runtime import JobContext, metered

    ops = topology(opts)
    ctx = JobContext(opts, ops)
    f_arr = Types.PRIMITIVE_ARRAY(Types.FLOAT())
    slice_t = Types.TUPLE([Types.LONG(), f_arr, f_arr, f_arr, f_arr, Types.DOUBLE()])
    streams = []
    for i, op in enumerate(o for o in ops if o.is_source):
        streams.append(ctx.source(op.uid, lambda seq, seed, i=i: model.slice_record(seq * 100 + i, seed), slice_t))
    stats = ctx.stages(streams, [
        ("image", lambda s, uid: s.rebalance().map(
            metered(lambda x: (x[0], model.dirty_image(x[1], x[2], x[3], x[4]).ravel().tolist(), x[5])),
            output_type=Types.TUPLE([Types.LONG(), f_arr, Types.DOUBLE()]))),
        ("stats", lambda s, uid: s.map(
            metered(lambda r: (r[0], model.image_stats(np.asarray(r[1], np.float32).reshape(model.GRID, model.GRID)),
                               r[2])),
            output_type=Types.TUPLE([Types.LONG(), Types.MAP(Types.STRING(), Types.DOUBLE()), Types.DOUBLE()])))])
    ctx.sink(stats, "sink", lambda r: {"slice": r[0], **r[1]})
    ctx.execute("imaging")


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
