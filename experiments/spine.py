"""The spine of edgeplace: collect → price → plan → realize, each stage from its own package.

`step` is the whole path once, for a job that runs: `plan --job` stops before realize, the closed loop runs
it repeatedly. The runner uses `running` and `profile` to price a job before it plans every cell."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from collectors.profiles import JobProfile
from collectors.profiling import profile_job
from common.say import Say, quiet
from costmodel.predict import Prediction, predict
from costmodel.pricing import Rates, price
from costmodel.problem import Node, Problem
from experiments.environments import Environment
from placement.model import Placement
from placement.policies import plan
from placement.realize import Deployed, Realizer
from queries.topology import OpSpec


@dataclass(frozen=True)
class Step:
    problem: Problem          # what the job costs on this cluster, as measured now
    placement: Placement      # what the policy chose
    prediction: Prediction    # what the cost model expects of it
    deployed: Deployed | None  # the job after realisation (None: not realised)


def profile(env: Environment, job_id: str, ops: list[OpSpec], mbit: Rates, seconds: float,
            warmup: float, nodes: list[Node] | None = None, steady: float = 0.0,
            say: Say = quiet, cycle_events: int = 0, longest: float = 0.0) -> tuple[Problem, JobProfile]:
    """collect → price: a running job's planning problem on `nodes` (default: the environment's), profiled
    once its costs settle (waiting at most `steady` s), over two closings of its event-time windows if they
    close every `cycle_events` events per source (at most `longest` s). Where the environment can see its
    TaskManagers' processes, their CPU over the window is measured too."""
    measured = profile_job(env.target.rest, job_id, ops, seconds, warmup, env.cpu_meter(), env.wan_counters,
                           steady, say, cycle_events, longest)
    return price(ops, measured, nodes if nodes is not None else env.nodes, mbit), measured


def step(env: Environment, job_id: str, ops: list[OpSpec], policy: str, mbit: Rates, seconds: float,
         warmup: float, nodes: list[Node] | None = None, target_rate: float | None = None, realize: bool = False,
         say: Say = quiet) -> Step:
    """collect → price → plan (→ realize): the placement `policy` chooses for a running job, and with
    `realize` the job redeployed onto it (stop with savepoint, resubmit, verify, roll back on failure)."""
    problem, _ = profile(env, job_id, ops, mbit, seconds, warmup, nodes)
    placement = Placement(plan(problem, policy, target_rate), meta={"policy": policy, "problem": f"job {job_id}"})
    prediction = predict(problem, placement.assignments)
    placement.meta["predicted"] = prediction.to_json()
    deployed = Realizer(env.target, say).redeploy(job_id, placement) if realize else None
    return Step(problem, placement, prediction, deployed)


@contextmanager
def running(env: Environment, query: str, args: list[str], placement: Placement | None, scratch: Path,
            say: Say = quiet) -> Iterator[Deployed]:
    """A job deployed and verified for the length of the block, then ended (savepoint into `scratch`,
    discarded) and the cluster repaired — also when the block fails; on Ctrl-C or SIGTERM it is cancelled at
    once (`Realizer.end`). A block that redeploys the job sets
    the yielded `job_id` to the new job's, so that the job running at the end is the one ended."""
    realizer = Realizer(env.target, say)
    deployed = realizer.deploy(query, args, placement)
    interrupted = False
    try:
        yield deployed
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C or SIGTERM: cancelled at once, not stopped with a savepoint
        raise
    finally:
        realizer.end(deployed.job_id, scratch, interrupted)
