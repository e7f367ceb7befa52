"""Offload ranking (pure): which operators are worth moving to the edge, and why."""
from __future__ import annotations

from dataclasses import dataclass

from costmodel.problem import CLOUD, Problem

STATE_PENALTY = 0.5  # stateful operators: state migrates on redeploy and costs edge memory


@dataclass(frozen=True)
class RankEntry:
    op: str
    score: float              # WAN bytes saved per CPU-second spent at the edge (per unit λ), state-penalised
    eligible: bool            # can run at the edge without a round trip through the cloud
    candidates: tuple[str, ...]
    reason: str


def offload_ranking(p: Problem, assignment: dict[str, str]) -> list[RankEntry]:
    """Operators not yet at the edge, best offload candidates first."""
    r = p.rates
    out = []
    for v, o in p.op.items():
        if o.pin or p.node[assignment[v]].site != CLOUD:
            continue
        preds = list(p.graph.predecessors(v))
        sites = {p.node[assignment[u]].site for u in preds}
        bytes_in = sum(r[u] * p.op[u].selectivity * p.op[u].bytes_out_per_record for u in preds)
        bytes_out = r[v] * o.selectivity * o.bytes_out_per_record
        cpu = r[v] * o.cost_at(next(iter(sites)) if len(sites) == 1 else CLOUD)  # what it would cost there
        saved = bytes_in - bytes_out
        score = saved / cpu if cpu > 0 else (float("inf") if saved > 0 else 0.0)
        if o.stateful:
            score *= STATE_PENALTY
        eligible = len(sites) == 1 and CLOUD not in sites
        site = next(iter(sites)) if eligible else None
        cands = tuple(n for n in p.allowed(v) if site and p.node[n].site == site)
        why = (f"reduces WAN bytes by {saved:.4g} per unit rate for {cpu:.3g} CPU-s"
               + (", stateful (penalised)" if o.stateful else "")
               + ("" if eligible else ", inputs not all at one edge site (would need a round trip)")
               + ("" if not eligible or cands else ", no node at that site allows it"))
        out.append(RankEntry(v, score, eligible and bool(cands), cands, why))
    return sorted(out, key=lambda e: (-e.eligible, -e.score, e.op))
