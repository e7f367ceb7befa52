"""Experiment configuration (TOML or YAML), validated up front: a bad field is named in one message."""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from common import schema
from common.errors import EdgeplaceError
from placement.policies import FLINK_DEFAULT, POLICIES as PLANNED
from queries import options, registry

ADAPTIVE = "adaptive"  # `edgeplace adapt` re-places the job through the phases (experiments with phases)
POLICIES = (FLINK_DEFAULT, *PLANNED, ADAPTIVE)
NEEDS_PROFILE = set(PLANNED) - {"cloud-only"} | {ADAPTIVE}  # policies that need operator costs


@dataclass(frozen=True)
class Phase:
    """A stretch of an experiment under one condition: the link at `mbit` for `duration_s`."""
    duration_s: float
    mbit: float


@dataclass(frozen=True)
class AdaptSpec:
    """How the `adaptive` policy runs `edgeplace adapt` inside each phase's settle time."""
    interval_s: float = 5.0
    window_s: float = 25.0
    min_gain: float = 0.2
    stable: int = 2
    cooldown_s: float = 20.0


@dataclass(frozen=True)
class QuerySpec:
    name: str
    label: str
    args: tuple[str, ...] = ()
    bandwidths_mbit: tuple[float, ...] = ()  # this query's own bandwidths (e.g. around its crossover)


@dataclass(frozen=True)
class ClusterSpec:
    kind: str = "local"            # local testbed (real clusters: the Ansible inventory, see README)
    edge: int = 1
    cloud: int = 1
    edge_cpu: float = 0.5
    edge_slots: int = 4
    cloud_slots: int = 8
    inventory: str | None = None
    rest_port: int = 8081
    rpc_port: int = 6123
    subnet: str = "10.213.0.0/24"
    sites: dict[str, dict[str, float]] = field(default_factory=dict)  # site → its own {"mbit", "cpu"}

    def site_cpu(self) -> dict[str, float]:
        return {s: float(v["cpu"]) for s, v in self.sites.items() if "cpu" in v}

    def rates(self, mbit: float | None, sites: list[str]) -> float | None | dict[str, float | None]:
        """The link rates of a cell at `mbit`: one rate for all sites, or per site where a site has its own."""
        fixed = {s: float(v["mbit"]) for s, v in self.sites.items() if "mbit" in v}
        unknown = sorted(set(self.sites) - set(sites))
        if unknown:
            raise EdgeplaceError(f"[cluster.sites] names {', '.join(unknown)}, not an edge site of this cluster "
                                 f"({', '.join(sites) or 'none'})")
        return {s: fixed.get(s, mbit) for s in sites} if fixed else mbit


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    queries: tuple[QuerySpec, ...]
    policies: tuple[str, ...]
    bandwidths_mbit: tuple[float, ...]
    source_rate: str | float = "max"   # "max" = unthrottled, else records/s per source
    warmup_s: float = 15.0
    duration_s: float = 20.0
    repetitions: int = 3
    seed: int = 1
    profile_s: float = 25.0
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    calibrate_speeds: bool = False     # measure node speed factors first (experiments.calibration)
    phases: tuple[Phase, ...] = ()     # changing conditions: one deployment per (query, policy, repetition)
    settle_s: float = 45.0             # seconds of each phase before it is measured (adaptive adapts then)
    adapt: AdaptSpec = field(default_factory=AdaptSpec)
    profile_steady_s: float = 0.0      # longest wait for a profiled job's costs to settle before profile_s
    # also profile with everything that fits at the edge, and price each operator's cost there from that pass:
    # edge-CPU-bound cells were predicted 10-54 % fast from the cloud pass alone (session 24)
    profile_edge_pass: bool = True
    profile_each_repetition: bool = False  # each repetition is priced by a profile of its own
    # a job whose event-time windows close rarely is measured (and profiled) on until two of them closed,
    # for at most this long (`collectors.profiling.CYCLES`)
    measure_longest_s: float = 120.0
    # a cell predicted to overrun its checkpoints is measured on until its state reached the priced size and
    # a heartbeat timeout passed, or the job failed, for at most this long (`experiments.measure.OverrunWatch`)
    measure_overrun_s: float = 600.0

    def cells(self) -> list[dict]:
        if self.phases:
            return [{"query": q.label, "bandwidth_mbit": ph.mbit, "policy": p, "repetition": r, "phase": i}
                    for q in self.queries for p in self.policies for r in range(self.repetitions)
                    for i, ph in enumerate(self.phases)]
        return [{"query": q.label, "bandwidth_mbit": b, "policy": p, "repetition": r}
                for q in self.queries for b in self.bandwidths_of(q) for p in self.policies
                for r in range(self.repetitions)]

    def bandwidths_of(self, q: QuerySpec) -> tuple[float, ...]:
        """The bandwidths a query's cells are measured at: its own, else the experiment's."""
        return q.bandwidths_mbit or self.bandwidths_mbit

    def query(self, label: str) -> QuerySpec:
        return next(q for q in self.queries if q.label == label)

    def to_json(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def schema_of() -> dict:
    """The config file's JSON Schema: types, ranges, finite numbers, no unknown keys."""
    BANDWIDTHS = {"type": "array", "minItems": 1, "uniqueItems": True, "items": schema.number(0, True)}
    return {
        "type": "object", "additionalProperties": False,
        "required": ["name", "queries", "policies"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9._-]+$"},
            "queries": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {"name": {"enum": sorted(registry.QUERIES)},
                               "label": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9._-]+$"},
                               "args": {"type": "array", "items": {"type": "string"}},
                               "bandwidths_mbit": BANDWIDTHS}}},
            "policies": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(POLICIES)}},
            "bandwidths_mbit": BANDWIDTHS,
            "source_rate": {"oneOf": [{"const": "max"}, schema.number(0, True)]},
            "warmup_s": schema.number(0), "duration_s": schema.number(1), "profile_s": schema.number(5),
            "profile_steady_s": schema.number(0), "profile_edge_pass": {"type": "boolean"},
            "profile_each_repetition": {"type": "boolean"}, "measure_longest_s": schema.number(0),
            "measure_overrun_s": schema.number(0),
            "repetitions": {"type": "integer", "minimum": 1}, "seed": {"type": "integer"},
            "calibrate_speeds": {"type": "boolean"},
            "phases": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["duration_s", "mbit"],
                "properties": {"duration_s": schema.number(1), "mbit": schema.number(0, True)}}},
            "settle_s": schema.number(0),
            "adapt": {"type": "object", "additionalProperties": False, "properties": {
                "interval_s": schema.number(1), "window_s": schema.number(5), "min_gain": schema.number(0),
                "stable": {"type": "integer", "minimum": 1}, "cooldown_s": schema.number(0)}},
            "cluster": {"type": "object", "additionalProperties": False, "properties": {
                "kind": {"enum": ["local", "ansible"]}, "inventory": {"type": "string", "minLength": 1},
                **{k: {"type": "integer", "minimum": 0 if k in ("edge",) else 1}
                   for k in ("edge", "cloud", "edge_slots", "cloud_slots")},
                "edge_cpu": schema.number(0, True),
                **{k: {"type": "integer", "minimum": 1024, "maximum": 65535} for k in ("rest_port", "rpc_port")},
                "subnet": {"type": "string"},
                "sites": {"type": "object", "additionalProperties": {
                    "type": "object", "additionalProperties": False, "minProperties": 1,
                    "properties": {"mbit": schema.number(0, True), "cpu": schema.number(0, True)}}}},
                "if": {"properties": {"kind": {"const": "ansible"}}, "required": ["kind"]},
                "then": {"required": ["inventory"]}},
        },
    }


def parse(data: object, source: str = "config") -> ExperimentConfig:
    try:
        schema.check(data, schema_of(), source)
    except ValueError as exc:
        raise EdgeplaceError(str(exc)) from None
    own = [i for i, q in enumerate(data["queries"]) if "bandwidths_mbit" in q]
    if "phases" in data and own:
        raise EdgeplaceError(f"{source}: queries[{own[0]}].bandwidths_mbit: a phased experiment's bandwidths are "
                             "its [[phases]]; give the query none")
    given = "bandwidths_mbit" in data or bool(own) and len(own) == len(data["queries"])
    if given == ("phases" in data):
        raise EdgeplaceError(f"{source}: give either bandwidths_mbit (one cell per bandwidth; each query may have "
                             "its own) or [[phases]] (conditions that change during one deployment), not " +
                             ("both" if "phases" in data else "neither" if not own else
                              f"bandwidths for only some queries (queries[{own[0]}] has its own)"))
    queries = tuple(QuerySpec(q["name"], q.get("label", q["name"]), tuple(q.get("args", [])),
                              tuple(float(b) for b in q.get("bandwidths_mbit", []))) for q in data["queries"])
    if len({q.label for q in queries}) != len(queries):
        raise EdgeplaceError(f"{source}: queries: two have the same label; give each a distinct label = \"…\"")
    for q in queries:  # the job's own argument parser: a bad option is found before anything starts
        try:
            registry.load(q.name).topology(options.parse(list(q.args)))
        except (ValueError, KeyError) as exc:
            raise EdgeplaceError(f"{source}: queries ({q.label}).args: {exc}") from None
    d = ExperimentConfig.__dataclass_fields__
    num = {k: data.get(k, d[k].default) for k in ("warmup_s", "duration_s", "profile_s", "repetitions", "seed",
                                                  "settle_s", "profile_steady_s", "measure_longest_s",
                                                  "measure_overrun_s")}
    flag = {k: bool(data.get(k, d[k].default)) for k in ("calibrate_speeds", "profile_edge_pass",
                                                         "profile_each_repetition")}
    phases = tuple(Phase(float(p["duration_s"]), float(p["mbit"])) for p in data.get("phases", []))
    short = [i for i, p in enumerate(phases) if p.duration_s <= num["settle_s"]]
    if short:
        raise EdgeplaceError(f"{source}: phases[{short[0]}].duration_s ({phases[short[0]].duration_s:g}) must be "
                             f"longer than settle_s ({num['settle_s']:g}): each phase is measured after it settles")
    if ADAPTIVE in data["policies"] and not phases:
        raise EdgeplaceError(f"{source}: policies: {ADAPTIVE!r} needs conditions that change: give [[phases]] "
                             "(duration_s, mbit) instead of bandwidths_mbit")
    adapt = AdaptSpec(**{k: (int(v) if k == "stable" else float(v)) for k, v in data.get("adapt", {}).items()})
    bandwidths = tuple(float(b) for b in data.get("bandwidths_mbit", [])) or tuple(dict.fromkeys(p.mbit for p in phases))
    return ExperimentConfig(str(data["name"]), queries, tuple(data["policies"]), bandwidths,
                            data.get("source_rate", "max"),
                            float(num["warmup_s"]), float(num["duration_s"]), int(num["repetitions"]),
                            int(num["seed"]), float(num["profile_s"]), ClusterSpec(**data.get("cluster", {})),
                            flag["calibrate_speeds"], phases, float(num["settle_s"]), adapt,
                            float(num["profile_steady_s"]), flag["profile_edge_pass"],
                            flag["profile_each_repetition"], measure_longest_s=float(num["measure_longest_s"]),
                            measure_overrun_s=float(num["measure_overrun_s"]))


def load(path: str | Path) -> ExperimentConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise EdgeplaceError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) if p.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise EdgeplaceError(f"{path}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'TOML'}: {exc}") from exc
    return parse(data, str(path))
