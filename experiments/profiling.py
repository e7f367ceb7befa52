"""Profile a running job into a planning problem: sample its metrics, compute operator profiles, attribute
Flink vertices to logical operators, and price them on the cluster's nodes (I/O around modeling's pure part)."""
from __future__ import annotations

from collectors.profiles import OperatorProfile, profiles as compute_profiles
from collectors.rest import FlinkRest
from collectors.sampler import sample
from costmodel.problem import Problem
from experiments.modeling import ClusterNode, problem_from_profiles
from placement import deploy as dp
from queries.topology import OpSpec

MIN_PROFILE_S = 25.0  # the JobManager refreshes metrics every 10 s: a profile needs two fresh snapshots


def profile_running_job(rest: FlinkRest, job_id: str, ops: list[OpSpec], nodes: list[ClusterNode],
                        mbit: float | None, seconds: float, warmup: float = 0.0) -> tuple[Problem, list[OperatorProfile]]:
    run = sample(rest, job_id, max(MIN_PROFILE_S, seconds), interval=2.5, warmup=warmup)
    owners = dp.vertex_owners(rest, job_id, ops)
    where = {uid: sorted(tms)[0] for uid, tms in dp.actual(rest, job_id, ops).items() if tms and uid in
             {o.uid for o in ops}}
    profs = compute_profiles(run.frame())
    return problem_from_profiles(ops, profs, owners, where, nodes, mbit), profs
