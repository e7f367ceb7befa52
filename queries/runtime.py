"""PyFlink side of every job: environment from JobOptions, operators pinned by the placement,
generated sources with rate limits, and sinks that write JSON lines and end-to-end latency."""
from __future__ import annotations

import json
import os
import time
from typing import Callable

from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.functions import FilterFunction, FlatMapFunction, Function, MapFunction, RuntimeContext
from pyflink.datastream.slot_sharing_group import SlotSharingGroup

from common import flinksettings
from queries.options import JobOptions
from queries.topology import GROUP_CPU_CORES, GROUP_HEAP_MB, GROUP_MANAGED_MB, OpSpec

UNBOUNDED_END = 2 ** 62


class WorkerGauges(Function):
    """Mixed into every Python function of the jobs: open() registers two gauges of the Python worker process
    it runs in, its pid and the CPU milliseconds it has used (all its threads). Flink starts one worker per
    slot, and every operator has a slot sharing group of its own (`JobContext.pin`), so one worker's CPU is
    one operator subtask's Python CPU, its key-by helpers included (`collectors.profiles` reads it through
    REST). A subclass with its own open() calls super().open(ctx) first."""

    def open(self, runtime_context: RuntimeContext) -> None:
        group = runtime_context.get_metrics_group()
        group.gauge(flinksettings.WORKER_CPU_MS, lambda: time.process_time_ns() // 1_000_000)
        group.gauge(flinksettings.WORKER_PID, os.getpid)


class Metered(WorkerGauges, MapFunction, FlatMapFunction, FilterFunction):
    """A plain callable as a map, flat_map or filter function with the worker's gauges (`metered`)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def map(self, value):
        return self.fn(value)

    def flat_map(self, value):
        return self.fn(value)

    def filter(self, value):
        return self.fn(value)


def metered(fn: Callable) -> Metered:
    """`fn` for DataStream.map / flat_map / filter, reporting its Python worker's CPU (`WorkerGauges`)."""
    return Metered(fn)


def read_pins(path: str) -> dict[str, tuple[str, str]]:
    """The pins file that realisation writes (`placement.realize`): operator uid → (TaskManager id, name of
    the external resource that only that TaskManager offers)."""
    with open(path) as fh:
        return {uid: (pin["taskmanager"], pin["resource"]) for uid, pin in json.load(fh).items()}


class JobContext:
    """Builds a job whose every Flink operator carries its uid, name, parallelism and pinned group."""

    def __init__(self, opts: JobOptions, ops: list[OpSpec]):
        self.opts = opts
        self.ops = {op.uid: op for op in ops}
        self.pins = read_pins(opts.pins) if opts.pins else {}
        config = Configuration()
        config.set_string("python.operator-chaining.enabled", str(opts.chaining).lower())
        # 200: quick savepoints; smaller bundles make the Java task wait on the Python worker more often,
        # which Flink counts as busy time and which then understates true processing rates (measured: 50 → -12 %)
        config.set_string("python.fn-execution.bundle.size", str(flinksettings.BUNDLE_RECORDS))
        config.set_string("python.fn-execution.bundle.time", str(round(flinksettings.BUNDLE_S * 1000)))
        self.env = StreamExecutionEnvironment.get_execution_environment(config)
        if not opts.chaining:
            self.env.disable_operator_chaining()
        if opts.checkpoint_ms > 0:
            self.env.enable_checkpointing(opts.checkpoint_ms)

    def pin(self, stream, uid: str, part: str = ""):
        """Set uid, name, parallelism and (with a placement) the slot sharing group of one Flink operator."""
        op = self.ops[uid]
        p = next(p for p in op.parts if p.suffix == part)
        stream = stream.uid(op.part_uid(p)).name(p.name)
        if hasattr(stream, "set_parallelism"):
            stream = stream.set_parallelism(op.parallelism)
        group = self._group(uid)
        if group is not None:
            stream = stream.slot_sharing_group(group)
        return stream

    def _group(self, uid: str) -> SlotSharingGroup | None:
        """One group per logical operator, requesting its TaskManager's resource: its parts share a slot, so
        it uses `parallelism` slots. None for an operator without a pin (Flink decides)."""
        if uid not in self.pins:
            return None
        tm, resource = self.pins[uid]
        return (SlotSharingGroup.builder(f"{uid}@{tm}")
                .set_cpu_cores(GROUP_CPU_CORES).set_task_heap_memory_mb(GROUP_HEAP_MB)
                .set_managed_memory_mb(GROUP_MANAGED_MB)
                .set_external_resource(resource, 1.0).build())

    def keyed(self, keyed, consumer: str):
        """Pin PyFlink's hidden key-by helper operator(s) of a KeyedStream (or of connected keyed streams)
        feeding `consumer`: uid, parallelism and group of their owners in the topology
        (`OpSpec.key_helper_owners`: the operator a helper reads from, or `consumer` when it reads a union,
        which has no single group). Unpinned, Flink puts them in the default group, anywhere. Returns `keyed`."""
        streams = (keyed.stream1, keyed.stream2) if hasattr(keyed, "stream1") else (keyed,)
        for ks, owner in zip(streams, self.ops[consumer].key_helper_owners, strict=True):
            self._pin_java(ks._j_data_stream.getTransformation().getInputs().get(0), owner, f"keyby-{consumer}")
        return keyed

    def _pin_java(self, transformation, owner: str, suffix: str, name: str | None = None) -> None:
        """uid, parallelism, group (and name) of an operator PyFlink adds behind the job's back."""
        transformation.setUid(f"{owner}.{suffix}")
        transformation.setParallelism(self.ops[owner].parallelism)
        if name is not None:
            transformation.setName(name)
        group = self._group(owner)
        if group is not None:
            transformation.setSlotSharingGroup(group.get_java_slot_sharing_group())

    def source(self, uid: str, generate: Callable[[int, int], tuple], output_type,
               event_time_field: int | None = None) -> "DataStream":
        """Generated events at a site: `generate(seq, seed)` → record; the record's last field is the
        creation time (epoch seconds), stamped here. With `event_time_field`, that field (epoch ms) becomes
        the record's event time, with monotonous watermarks per source subtask."""
        end = (self.opts.events - 1) if self.opts.events else UNBOUNDED_END
        seq = self.env.from_source(NumberSequenceSource(0, end), WatermarkStrategy.no_watermarks(),
                                   self.ops[uid].name)
        seq = self.pin(seq, uid)
        gen = seq.map(Generator(generate, self.opts.seed, self.opts.rate / self.ops[uid].parallelism,
                                self.opts.out, uid), output_type=output_type)
        gen = self.pin(gen, uid, "gen")
        if event_time_field is None:
            return gen
        strategy = (WatermarkStrategy.for_monotonous_timestamps()
                    .with_timestamp_assigner(FieldTimestamp(event_time_field)))
        stamped = self.pin(gen.assign_timestamps_and_watermarks(strategy), uid, "wm")
        # PyFlink adds two operators in front (a Python one that extracts the timestamp, Flink's assigner):
        # pinned and named like the parts `source_op` lists, or they would land anywhere, unnamed
        assigner = stamped._j_data_stream.getTransformation().getInputs().get(0)
        extract = assigner.getInputs().get(0)
        for tr, part in ((assigner, "wm-assign"), (extract, "wm-extract")):
            self._pin_java(tr, uid, part, next(p.name for p in self.ops[uid].parts if p.suffix == part))
        return stamped

    def union(self, streams: list):
        return streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]

    def stages(self, streams: list, steps: list[tuple[str, Callable]]):
        """Operators applied one after the other to the sources' `streams` (in the topology's source order):
        `steps` = [(uid, make(stream, uid) → stream)], each pinned as `uid`. Where the topology has per-site
        replicas (`<uid>@<site>`), each source gets its own chain and their ends are united; else one chain
        reads the union of the sources. Returns the last stream."""
        sources = [op for op in self.ops.values() if op.is_source]
        if steps and all(f"{steps[0][0]}@{op.site}" in self.ops for op in sources):
            ends = []
            for stream, op in zip(streams, sources, strict=True):
                for uid, make in steps:
                    stream = self.pin(make(stream, f"{uid}@{op.site}"), f"{uid}@{op.site}")
                ends.append(stream)
            return self.union(ends)
        stream = self.union(streams)
        for uid, make in steps:
            stream = self.pin(make(stream, uid), uid)
        return stream

    def sink(self, stream, uid: str, to_json: Callable[[tuple], dict]) -> None:
        """JSON lines (when --out is set) and latency percentiles per subtask; then Flink's terminal sink."""
        writer = stream.flat_map(Writer(self.opts.out, uid, to_json), output_type=Types.STRING())
        self.pin(self.pin(writer, uid).print(), uid, "end")

    def execute(self, name: str) -> None:
        if self.opts.restore_from_file:
            savepoint = wait_for_savepoint(self.opts.restore_from_file)
            if not savepoint:
                raise SystemExit("no savepoint was given to restore from; the job was not started")
            conf = Configuration()
            conf.set_string("execution.savepoint.path", savepoint)
            self.env.configure(conf)
        self.env.execute(name)


def wait_for_savepoint(path: str, timeout: float = 600.0) -> str:
    """The savepoint path written (atomically, by rename) to `path`; "" if none comes within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                return fh.read().strip()
        except FileNotFoundError:
            time.sleep(0.05)
    return ""


class FieldTimestamp(TimestampAssigner):
    """Event time = one field of the record (epoch milliseconds)."""

    def __init__(self, field: int):
        self.field = field

    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return int(value[self.field])


class Generator(WorkerGauges, MapFunction):
    """seq → event, at most `rate` records/s in this subtask (0 = unthrottled). With an output directory it
    also writes <out>/progress-<uid>-<subtask>.json ({"count", "time"}) about once a second: the emitted
    count measured at the source itself, independent of the JobManager's cached metrics."""

    def __init__(self, generate, seed: int, rate: float, out: str | None = None, uid: str = "src"):
        self.generate, self.seed, self.rate, self.out, self.uid = generate, seed, rate, out, uid

    def open(self, ctx: RuntimeContext) -> None:
        super().open(ctx)
        self.start, self.count = time.time(), 0
        self.last = self.start
        self.path = (os.path.join(self.out, f"progress-{self.uid}-{ctx.get_index_of_this_subtask()}.json")
                     if self.out else None)
        if self.path:
            os.makedirs(self.out, exist_ok=True)

    def map(self, seq):
        self.count += 1
        now = time.time()
        if self.rate > 0:
            ahead = self.count / self.rate - (now - self.start)
            if ahead > 0:
                time.sleep(ahead)
        if self.path and now - self.last >= 1.0:
            self.last = now
            with open(self.path + ".tmp", "w") as fh:
                json.dump({"count": self.count, "time": now}, fh)
            os.replace(self.path + ".tmp", self.path)
        return (*self.generate(seq, self.seed), time.time())


class Writer(WorkerGauges, FlatMapFunction):
    """Appends each record as JSON to <out>/<uid>-<subtask>.jsonl; keeps end-to-end latencies."""

    def __init__(self, out: str | None, uid: str, to_json):
        self.out, self.uid, self.to_json = out, uid, to_json

    def open(self, ctx: RuntimeContext) -> None:
        super().open(ctx)
        self.index = ctx.get_index_of_this_subtask()
        self.fh = None
        if self.out:
            os.makedirs(self.out, exist_ok=True)
            self.fh = open(os.path.join(self.out, f"{self.uid}-{self.index}.jsonl"), "a", buffering=1 << 16)
        self.latencies: list[float] = []
        self.last_flush = time.time()

    def flat_map(self, record):
        now = time.time()
        self.latencies.append(now - record[-1])
        if self.fh:
            self.fh.write(json.dumps(self.to_json(record)) + "\n")
        if now - self.last_flush > 1.0:
            self._flush()
        return []

    def _flush(self) -> None:
        self.last_flush = time.time()
        if self.fh:
            self.fh.flush()
        if self.out and self.latencies:
            lat = sorted(self.latencies[-20000:])
            pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
            summary = {"count": len(self.latencies), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99),
                       "time": self.last_flush}
            path = os.path.join(self.out, f"latency-{self.uid}-{self.index}.json")
            with open(path + ".tmp", "w") as fh:
                json.dump(summary, fh)
            os.replace(path + ".tmp", path)

    def close(self) -> None:
        self._flush()
        if self.fh:
            self.fh.close()
