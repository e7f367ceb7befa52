"""Logical operators of a job (pure, no pyflink): what the planner places and `deploy` verifies.

A logical operator is one placement unit. It may consist of several Flink operators ("parts") that are
always pinned together, e.g. a source = Flink's sequence source + the Python generator behind it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from queries.options import OptionsError

KEY_HELPER = "_stream_key_by_map_operator"  # the Python operator PyFlink puts in front of every key_by
KIND_PREFIX = {"source": "Source: ", "sink": "Sink: ", "operator": ""}
# What each logical operator's slot sharing group requests of its TaskManager (`JobContext._group`): every
# slot a TaskManager offers must be able to hold one such group (`placement.flinkdist.taskmanager_memory_mb`)
GROUP_CPU_CORES, GROUP_HEAP_MB, GROUP_MANAGED_MB = 0.25, 24, 24


@dataclass(frozen=True)
class Task:
    """A Flink vertex as Flink names its subtasks (and schedulercfg lists them), and the logical operator it
    belongs to."""

    uid: str
    task_name: str
    parallelism: int


@dataclass(frozen=True)
class Part:
    suffix: str   # "" for the main Flink operator; uid = "<op uid>.<suffix>"
    kind: str     # source | operator | sink  (decides the "Source: "/"Sink: " prefix Flink prints)
    name: str


@dataclass(frozen=True)
class OpSpec:
    uid: str
    name: str
    parallelism: int = 1
    stateful: bool = False
    inputs: tuple[str, ...] = ()
    ship: str = "FORWARD"          # how records reach this operator: FORWARD | HASH | REBALANCE
    site: str | None = None        # sources: the edge site where their data is born
    parts: tuple[Part, ...] = field(default=())
    two_input: bool = False        # HASH: inputs connected and keyed one by one (a join), not a union
    replica_of: str | None = None  # one site's copy of this shared operator (its data stays within `site`)

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", (Part("", "operator", self.name),))

    def part_uid(self, part: Part) -> str:
        return f"{self.uid}.{part.suffix}" if part.suffix else self.uid

    def tasks(self) -> list[Task]:
        return [Task(self.uid, KIND_PREFIX[p.kind] + p.name, self.parallelism) for p in self.parts]

    @property
    def key_helper_owners(self) -> tuple[str, ...]:
        """Who runs PyFlink's key-by helper(s) in front of this operator: each input of a join; the single
        input of a key_by; this operator itself when it keys a union of several inputs."""
        if self.ship != "HASH":
            return ()
        if self.two_input or len(self.inputs) == 1:
            return self.inputs
        return (self.uid,)

    @property
    def is_source(self) -> bool:
        return any(p.kind == "source" for p in self.parts)


def source_op(uid: str, name: str, site: str, parallelism: int = 1, watermarks: bool = False) -> OpSpec:
    """A generated source at an edge site: Flink's sequence source + the Python event generator (+ the
    event-time timestamp/watermark assigner, for jobs with event-time windows)."""
    parts = (Part("", "source", name), Part("gen", "operator", f"{name} gen"))
    if watermarks:  # PyFlink's timestamp extraction (Python), Flink's assigner, and the record restored
        parts += (Part("wm-extract", "operator", f"{name} timestamps"),
                  Part("wm-assign", "operator", f"{name} watermark assigner"),
                  Part("wm", "operator", f"{name} watermarks"))
    return OpSpec(uid, name, parallelism, site=site, parts=parts)


def per_site(opts) -> bool:
    """Whether a job gives its per-site operators one copy per edge site: with two or more sites, unless
    `--opt per_site=0` asks for one shared operator that reads every site (the layout before replicas)."""
    flag = opts.extra.get("per_site", "1")
    if flag not in ("0", "1"):
        raise OptionsError(f"--opt per_site takes 0 or 1, got {flag!r}")
    return len(opts.sites) > 1 and flag == "1"


def replica(op: OpSpec, site: str, inputs: tuple[str, ...], parallelism: int) -> OpSpec:
    """`op`'s copy at `site` (uid `<uid>@<site>`, Flink name `<name> <site>`), reading `inputs`."""
    return dataclasses.replace(op, uid=f"{op.uid}@{site}", name=f"{op.name} {site}", parallelism=parallelism,
                               inputs=inputs, site=site, replica_of=op.uid,
                               parts=tuple(dataclasses.replace(p, name=f"{p.name} {site}") for p in op.parts))


def site_chains(opts, sources: list[OpSpec], chain: list[OpSpec]) -> tuple[list[OpSpec], tuple[str, ...]]:
    """The operators `chain` (each reading the one before; the first reads the sources) as one chain per site
    when the job replicates per site, else shared. Returns the operators and the uids the next stage reads.
    A replica's parallelism: `--parallelism <uid>@<site>=N`, else the shared operator's."""
    if not per_site(opts):
        return chain, (chain[-1].uid,) if chain else tuple(s.uid for s in sources)
    ops, lasts = [], []
    for src in sources:
        prev = src.uid
        for op in chain:
            r = replica(op, src.site, (prev,), opts.par(f"{op.uid}@{src.site}", op.parallelism))
            ops.append(r)
            prev = r.uid
        lasts.append(prev)
    return ops, tuple(lasts)


def sink_op(uid: str, name: str, inputs: tuple[str, ...], parallelism: int = 1) -> OpSpec:
    """A sink: the Python writer (files, latency) + Flink's terminal sink behind it."""
    return OpSpec(uid, name, parallelism, inputs=inputs,
                  parts=(Part("", "operator", name), Part("end", "sink", f"{name} end")))


def all_tasks(ops: list[OpSpec]) -> list[Task]:
    """Every Flink task of the job as schedulercfg names it, PyFlink's key-by helpers included (under the
    operator whose slot sharing group they are pinned to)."""
    par = {op.uid: op.parallelism for op in ops}
    helpers = [Task(owner, KEY_HELPER, par[owner]) for op in ops for owner in op.key_helper_owners]
    return [t for op in ops for t in op.tasks()] + helpers
