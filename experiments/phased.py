"""Experiments whose conditions change (`[[phases]]`): one deployment per (query, policy, repetition) lives
through every phase, the link set to each phase's rate in turn, and each phase is measured after
`settle_s`. A static policy keeps the placement planned for the first phase; `adaptive` starts on the
optimal placement of the first phase and runs the closed loop (`experiments.adapt`) while each phase
settles, then is measured on whatever placement the loop left."""
from __future__ import annotations

import json
import time
from pathlib import Path

from collectors.profiling import attribution
from collectors.rest import FlinkRestError
from common.errors import EdgeplaceError
from common.say import Say
from costmodel.predict import predict
from costmodel.pricing import structure_problem, with_bandwidth
from costmodel.problem import Problem
from experiments import config as cfg
from experiments.adapt import AdaptOptions, CostMemory, adapt
from experiments.environments import Environment
from experiments.measure import measure
from experiments.runner import Results, _failed_row, _placement, _profile, _row, cell_id, job_of
from experiments.spine import running
from placement.model import Placement


def run_phased(conf: cfg.ExperimentConfig, res: Results, todo: list[dict], env: Environment, nodes, say: Say,
               progress) -> None:
    """Every (query, policy, repetition) with a phase left to measure runs through all its phases again
    (the phases of one deployment are measured in sequence, so a resumed run repeats them together)."""
    runs: dict[tuple, list[dict]] = {}
    for c in todo:
        runs.setdefault((c["query"], c["policy"], c["repetition"]), [])
    for c in conf.cells():
        if (c["query"], c["policy"], c["repetition"]) in runs:
            runs[(c["query"], c["policy"], c["repetition"])].append(c)
    profiled: dict[str, Problem] = {}
    failed: dict[str, str] = {}  # query label → why its profiling failed
    done, total = [0], sum(len(v) for v in runs.values())
    for (label, policy, _), cells in runs.items():
        q = conf.query(label)
        args, ops = job_of(conf, q, env)
        if policy in cfg.NEEDS_PROFILE and label not in profiled and label not in failed:
            try:
                profiled[label] = _profile(conf, res, env, q, args, ops, nodes, say)
            except (EdgeplaceError, FlinkRestError) as exc:
                failed[label] = f"profiling failed: {exc}"
                say(f"{label}: profiling failed, its cells are recorded as failed: {exc}")
                env.heal(say)
        if label in failed and policy in cfg.NEEDS_PROFILE:
            _fail(res, cells, Placement({}, meta={"partial": True}), failed[label], done, total, say)
            continue
        first = conf.cluster.rates(conf.phases[0].mbit, env.sites)
        base = profiled.get(label) or structure_problem(ops, nodes, first)
        placement = _placement("optimal" if policy == cfg.ADAPTIVE else policy, with_bandwidth(base, first), ops)
        try:
            _through_phases(conf, res, env, q, args, ops, policy, placement, cells, profiled.get(label), say,
                            progress, done, total)
        except (EdgeplaceError, FlinkRestError) as exc:  # this run's phases are recorded failed; the rest goes on
            measured = set(res.done()["cell"])
            _fail(res, [c for c in cells if cell_id(c) not in measured], placement, str(exc), done, total, say)
            env.heal(say)


def _through_phases(conf, res: Results, env: Environment, q, args, ops, policy: str, placement: Placement,
                    cells: list[dict], problem: Problem | None, say: Say, progress, done: list[int], total: int):
    c0 = cells[0]
    name = f"{c0['query']}-{policy}-{c0['repetition']}-{int(time.time())}"
    out_dir = env.target.flink_side(res.root / "sinks" / name)
    log = res.root / "adapt" / f"{c0['query']}-{c0['repetition']}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    env.before_deploy(conf.cluster.rates(conf.phases[0].mbit, env.sites))
    say(f"deploying {c0['query']} ({policy}, repetition {c0['repetition']}) for {len(conf.phases)} phases")
    memory = CostMemory()  # one loop through all phases: what it learnt in one phase it knows in the next
    with running(env, q.name, [*args, "--out", str(out_dir)], placement, res.root / "scratch-savepoints",
                 say) as d:
        for c in sorted(cells, key=lambda x: x["phase"]):
            phase = conf.phases[c["phase"]]
            env.set_wan(conf.cluster.rates(phase.mbit, env.sites))
            started = time.time()
            redeploys, warmup = 0, conf.settle_s
            if policy == cfg.ADAPTIVE:  # the loop decides while the phase settles
                d.job_id, redeploys, since = _adapt_through(env, d.job_id, conf, log, memory, say)
                warmup = max(0.0, conf.warmup_s - since)  # a job the loop just redeployed warms up first
            m = measure(env.target.rest, d.job_id, ops, env.cpu_meter(), out_dir, warmup,
                        phase.duration_s - conf.settle_s, env.wan_counters)
            now_on = Placement(attribution(env.target.rest, d.job_id, ops)[1]) if policy == cfg.ADAPTIVE else placement
            pred = predict(with_bandwidth(problem, conf.cluster.rates(phase.mbit, env.sites)), now_on.assignments) \
                if problem is not None and not now_on.partial else None
            res.add(_row(c, now_on, pred, m, d.job_id, started, "", redeploys))
            done[0] += 1
            say(f"[{done[0]}/{total}] {cell_id(c)}: {m.source_rate:,.0f} events/s"
                + (f" (predicted {pred.total_rate:,.0f})" if pred else "")
                + (f", {redeploys} redeploy(s)" if policy == cfg.ADAPTIVE else ""))
            if progress:
                progress(done[0], total)


def _adapt_through(env: Environment, job_id: str, conf: cfg.ExperimentConfig, log: Path, memory: CostMemory,
                   say: Say):
    """Run the closed loop for the settle time, keeping `memory` from the phases before; (the job now
    running, redeploys, seconds since the last)."""
    a = conf.adapt
    opts = AdaptOptions(a.interval_s, a.window_s, a.min_gain, a.stable, a.cooldown_s, "throughput",
                        conf.warmup_s)
    started = time.time()
    job_id = adapt(env, job_id, opts, log, say, rounds=max(1, round(conf.settle_s / a.interval_s)),
                   memory=memory)
    moves = [e for e in _redeploys(log) if e["time"] >= started]  # entries of earlier phases are older
    since = time.time() - moves[-1]["time"] - moves[-1].get("redeploy_s", 0) if moves else float("inf")
    return job_id, len(moves), since


def _redeploys(log: Path) -> list[dict]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [e for e in map(json.loads, lines) if e.get("action") == "redeploy"]


def _fail(res: Results, cells: list[dict], placement: Placement, why: str, done: list[int], total: int, say: Say):
    for c in cells:
        res.add(_failed_row(c, placement, None, why))
        done[0] += 1
        say(f"[{done[0]}/{total}] {cell_id(c)}: FAILED: {why}")

