"""The placement policies by name (pure): cloud-only, edge-max, greedy and exhaustive (placement.heuristics)
and optimal (placement.optimal). `flink-default` is no plan: it deploys with only the sources pinned."""
from __future__ import annotations

from common.errors import EdgeplaceError
from costmodel.problem import Problem
from placement.heuristics import cloud_only, edge_max, exhaustive, greedy

POLICIES = ("cloud-only", "edge-max", "greedy", "exhaustive", "optimal")
FLINK_DEFAULT = "flink-default"


def plan(p: Problem, policy: str, target_rate: float | None = None) -> dict[str, str]:
    """The assignment (operator id → node id) that `policy` chooses for `p`."""
    if policy == FLINK_DEFAULT:
        raise EdgeplaceError("flink-default means no pinning: deploy without --placement (there is nothing to plan)")
    if policy not in POLICIES:
        raise EdgeplaceError(f"unknown policy {policy!r}; known: {FLINK_DEFAULT}, {', '.join(POLICIES)}")
    if target_rate is not None and policy != "optimal":
        raise EdgeplaceError("--target-rate goes with --policy optimal")
    if policy == "optimal":
        from placement.optimal import optimal  # scipy's solver loads only when asked for (~0.7 s of every command)
        return optimal(p, target_rate)
    return {"cloud-only": cloud_only, "edge-max": edge_max, "greedy": greedy, "exhaustive": exhaustive}[policy](p)
