"""Experiment configuration (TOML or YAML), validated up front: a bad field is named in one message."""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from common.errors import EdgeplaceError
from placement.policies import FLINK_DEFAULT, POLICIES as PLANNED
from queries import registry

POLICIES = (FLINK_DEFAULT, *PLANNED)
NEEDS_PROFILE = set(PLANNED) - {"cloud-only"}  # policies that need operator costs


@dataclass(frozen=True)
class QuerySpec:
    name: str
    label: str
    args: tuple[str, ...] = ()


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

    def cells(self) -> list[dict]:
        return [{"query": q.label, "bandwidth_mbit": b, "policy": p, "repetition": r}
                for q in self.queries for b in self.bandwidths_mbit for p in self.policies
                for r in range(self.repetitions)]

    def query(self, label: str) -> QuerySpec:
        return next(q for q in self.queries if q.label == label)

    def to_json(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def _need(d: dict, key: str, where: str):
    if key not in d:
        raise EdgeplaceError(f"config: missing field {where}{key}")
    return d[key]


def parse(data: dict) -> ExperimentConfig:
    if not isinstance(data, dict):
        raise EdgeplaceError("config: the top level must be a table/mapping")
    name = str(_need(data, "name", ""))
    qs = _need(data, "queries", "")
    if not isinstance(qs, list) or not qs:
        raise EdgeplaceError("config: field queries must be a non-empty list")
    queries = []
    for i, q in enumerate(qs):
        qname = _need(q, "name", f"queries[{i}].")
        if qname not in registry.QUERIES:
            raise EdgeplaceError(f"config: queries[{i}].name: unknown query {qname!r} "
                                 f"(known: {', '.join(sorted(registry.QUERIES))})")
        args = q.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise EdgeplaceError(f"config: queries[{i}].args must be a list of strings")
        queries.append(QuerySpec(qname, str(q.get("label", qname)), tuple(args)))
    if len({q.label for q in queries}) != len(queries):
        raise EdgeplaceError("config: queries need distinct labels (set label = \"…\")")
    policies = _need(data, "policies", "")
    for p in policies:
        if p not in POLICIES:
            raise EdgeplaceError(f"config: policies: unknown policy {p!r} (known: {', '.join(POLICIES)})")
    bws = _need(data, "bandwidths_mbit", "")
    if not isinstance(bws, list) or not bws or not all(isinstance(b, (int, float)) and b > 0 for b in bws):
        raise EdgeplaceError("config: bandwidths_mbit must be a non-empty list of numbers > 0")
    rate = data.get("source_rate", "max")
    if not (rate == "max" or (isinstance(rate, (int, float)) and rate > 0)):
        raise EdgeplaceError("config: source_rate must be \"max\" or a number > 0")
    num = {}
    for key, lo in (("warmup_s", 0), ("duration_s", 1), ("repetitions", 1), ("profile_s", 5)):
        v = data.get(key, getattr(ExperimentConfig, key))
        if not isinstance(v, (int, float)) or v < lo:
            raise EdgeplaceError(f"config: {key} must be a number >= {lo}")
        num[key] = v
    c = data.get("cluster", {})
    cluster = ClusterSpec(**{k: c[k] for k in c if k in ClusterSpec.__dataclass_fields__})
    unknown = set(c) - set(ClusterSpec.__dataclass_fields__)
    if unknown:
        raise EdgeplaceError(f"config: cluster: unknown field(s) {', '.join(sorted(unknown))}")
    if cluster.kind not in ("local", "ansible"):
        raise EdgeplaceError("config: cluster.kind must be \"local\" or \"ansible\"")
    if cluster.kind == "ansible" and not cluster.inventory:
        raise EdgeplaceError("config: cluster.inventory is required with cluster.kind = \"ansible\"")
    calibrate = data.get("calibrate_speeds", False)
    if not isinstance(calibrate, bool):
        raise EdgeplaceError("config: calibrate_speeds must be true or false")
    return ExperimentConfig(name, tuple(queries), tuple(policies), tuple(float(b) for b in bws), rate,
                            float(num["warmup_s"]), float(num["duration_s"]), int(num["repetitions"]),
                            int(data.get("seed", 1)), float(num["profile_s"]), cluster, calibrate)


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
    return parse(data)
