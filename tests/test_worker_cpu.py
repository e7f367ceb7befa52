"""Each operator's CPU from its own Python worker (the gauges `queries.runtime.WorkerGauges` registers): the
profiles read them (`collectors.profiles._worker`) and pricing gives every operator its workers' CPU and a
busy-time share of only the rest of its TaskManager's CPU (`costmodel.pricing.worker_cpu`)."""
from __future__ import annotations

import pandas as pd
import pytest

from collectors.profiles import JobProfile, OperatorProfile, profiles
from common.flinksettings import WORKER_CPU_MS, WORKER_PID
from costmodel.pricing import price, worker_cpu
from costmodel.problem import Node
from queries import options
from queries.calibrate import job as calibrate

NODES = [Node("edge-1", "edge-1", 4, 0.5), Node("cloud-1", "cloud", 8, 2.0)]


def _rows(vertex: str, name: str, polls: list[dict], tm: str = "edge-1") -> list[dict]:
    """Tidy sampler rows of one subtask: one dict of metric → value per poll, 2.5 s apart."""
    return [{"time": 100.0 + 2.5 * k, "job": "j", "vertex": vertex, "vertex_name": name, "subtask": 0,
             "taskmanager": tm, "metric": m, "value": float(v)}
            for k, poll in enumerate(polls) for m, v in poll.items()]


def _poll(k: int, cpu_ms: float | None, pid: int | None, busy_per_s: float = 500.0) -> dict:
    """The counters of a subtask `k` polls in (10 records/s, 10 s of the task's own clock per poll: the
    JobManager's cached answers make poll times a poor clock) and its worker gauges where given."""
    d = {"numRecordsIn": 10.0 * k, "numRecordsOut": 10.0 * k, "numBytesOut": 100.0 * k,
         "accumulateBusyTimeMs": busy_per_s * 10 * k, "accumulateIdleTimeMs": (1000 - busy_per_s) * 10 * k,
         "accumulateBackPressuredTimeMs": 0.0}
    if cpu_ms is not None:
        d[WORKER_CPU_MS] = cpu_ms
    if pid is not None:
        d[WORKER_PID] = pid
    return d


def test_a_worker_uses_its_cpu_ms_over_the_tasks_own_clock_and_only_its_last_pid():
    # 3,000 CPU ms over 2 polls = 20 s of the task's clock: 0.15 cores (poll times say 5 s: 0.6 would be wrong)
    polls = [_poll(0, None, None), _poll(1, 1_000, 41), _poll(2, 2_500, 41), _poll(3, 4_000, 41)]
    (p,) = profiles(pd.DataFrame(_rows("v", "Work", polls)))
    assert p.workers == (("edge-1", 41, pytest.approx(0.15)),)
    # a worker that restarted (new pid) counts from its own first reading: the old one's CPU is not its own
    polls = [_poll(0, 9_000, 40), _poll(1, 1_000, 41), _poll(2, 1_500, 41)]
    (p,) = profiles(pd.DataFrame(_rows("v", "Work", polls)))
    assert p.workers == (("edge-1", 41, pytest.approx(0.05)),)
    # no gauges (a Java-only task), or only one reading: no worker
    assert profiles(pd.DataFrame(_rows("v", "Sink: end", [_poll(k, None, None) for k in range(3)])))[0].workers == ()
    polls = [_poll(0, None, None), _poll(1, None, None), _poll(2, 700, 41)]
    assert profiles(pd.DataFrame(_rows("v", "Work", polls)))[0].workers == ()
    assert profiles(pd.DataFrame(_rows("v", "Work", polls)))[0].to_json()["workers"] == []


def _prof(vertex: str, name: str, busy: float, rate_in: float, rate_out: float,
          workers: tuple = ()) -> OperatorProfile:
    return OperatorProfile(vertex, name, 1, 0, 0, 0, rate_in, rate_out, rate_out * 10, 1, 10, busy, 0, 0, 5, 0,
                           (), workers)


def test_one_worker_counts_once_per_operator_and_a_shared_one_is_split_by_busy_time():
    by_op = {"work": [_prof("h", "_stream_key_by_map_operator", 0.6, 100, 100, (("edge-1", 7, 0.2),)),
                      _prof("w", "Work", 0.9, 100, 50, (("edge-1", 7, 0.2),))],
             "sink": [_prof("s", "Work Sink", 0.1, 50, 0, (("cloud-1", 7, 0.05),))]}  # pid 7 again: another host
    per_op, per_tm = worker_cpu(by_op)
    assert per_op == {"work": pytest.approx(0.2), "sink": pytest.approx(0.05)}
    assert per_tm == {"edge-1": pytest.approx(0.2), "cloud-1": pytest.approx(0.05)}
    # two operators in one slot (unpinned, Flink's default group): one worker, shared by their busy time
    by_op = {"a": [_prof("a", "A", 0.3, 100, 100, (("edge-1", 9, 0.4),))],
             "b": [_prof("b", "B", 0.1, 100, 100, (("edge-1", 9, 0.4),))]}
    per_op, per_tm = worker_cpu(by_op)
    assert per_op == {"a": pytest.approx(0.3), "b": pytest.approx(0.1)} and per_tm == {"edge-1": pytest.approx(0.4)}


def test_a_saturated_edge_prices_each_operator_by_its_own_worker_not_by_busy_time():
    """Under a full CPU quota every task counts as busy while it waits for the quota, and a task with few
    records spends its busy time waiting on its Python worker: busy time is no measure of the CPU it took
    (q8 at the edge: the split priced the join 27-50 % low and the filters 20-55 % high). The workers' own CPU
    is; only what is left of the process tree (the JVM) goes by busy share."""
    ops = calibrate.topology(options.parse([]))
    profs = [_prof("g", "Events edge-1 gen", 0.8, 1000, 1000, (("edge-1", 11, 0.15),)),
             _prof("h", "_stream_key_by_map_operator", 0.6, 1000, 1000),   # in the work slot: its worker's
             _prof("w", "Work", 0.9, 1000, 100, (("edge-1", 12, 0.25),)),
             _prof("s", "Work Sink", 0.1, 100, 0, (("cloud-1", 13, 0.01),))]
    owners = {"g": "src-edge-1", "h": "work", "w": "work", "s": "sink"}
    where = {"src-edge-1": "edge-1", "work": "edge-1", "sink": "cloud-1"}
    p = price(ops, JobProfile(profs, owners, where, {"edge-1": 0.5, "cloud-1": 0.02}), NODES, 1)
    jvm = 0.5 - 0.15 - 0.25  # the edge's process tree less its workers
    assert p.op["work"].cost_s_per_record == pytest.approx((0.25 + jvm * 1.5 / 2.3) / 1000)
    assert p.op["src-edge-1"].cost_s_per_record == pytest.approx((0.15 + jvm * 0.8 / 2.3) / 1000)
    assert p.op["sink"].cost_s_per_record == pytest.approx((0.01 + 0.01) / 100)
    # the same profile without the workers' gauges: the whole tree by busy share, as before
    bare = [OperatorProfile(*(getattr(x, f) for f in ("vertex", "name", "parallelism", "true_processing_rate",
                                                      "true_output_rate", "true_processing_rate_total",
                                                      "observed_in_rate", "observed_out_rate", "bytes_out_rate",
                                                      "selectivity", "bytes_out_per_record", "busy", "idle",
                                                      "backpressure", "samples", "spread"))) for x in profs]
    q = price(ops, JobProfile(bare, owners, where, {"edge-1": 0.5, "cloud-1": 0.02}), NODES, 1)
    assert q.op["work"].cost_s_per_record == pytest.approx(0.5 * 1.5 / 2.3 / 1000)


def test_every_python_function_of_every_job_reports_its_worker():
    """Read from the jobs' code: every function handed to a DataStream operator (map, flat_map, filter,
    process, and the window function of an aggregate) is `metered(...)` or an instance of a WorkerGauges
    class, so every operator's worker reports its CPU (an operator without would have its Python CPU priced
    by busy share again, silently)."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "queries"
    trees = {f: ast.parse(f.read_text()) for f in root.rglob("*.py")}
    gauged = {c.name for t in trees.values() for c in ast.walk(t) if isinstance(c, ast.ClassDef)
              and any(isinstance(b, ast.Name) and b.id == "WorkerGauges" for b in c.bases)}
    assert {"Generator", "Writer", "Join", "NewUserJoin", "Flagger", "Metrics", "WithWindow"} <= gauged

    def reports(arg: ast.expr) -> bool:
        return isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and \
            (arg.func.id == "metered" or arg.func.id in gauged)
    calls, bare = 0, []
    for f, t in trees.items():
        for node in ast.walk(t):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            attr = node.func.attr
            fn = node.args[0] if attr in ("map", "flat_map", "filter", "process") and node.args else \
                node.args[1] if attr == "aggregate" and len(node.args) > 1 else None
            if fn is None:
                continue
            calls += 1
            if not reports(fn):
                bare.append(f"{f.relative_to(root.parent)}:{node.lineno} .{attr}({ast.unparse(fn)[:40]})")
    assert calls >= 20 and not bare, bare
