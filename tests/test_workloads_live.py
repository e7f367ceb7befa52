"""Every workload edgeplace ships, on real Flink: each Flink task belongs to one operator of the job's
topology and runs where the placement puts that operator (hidden helpers that PyFlink adds included)."""
from __future__ import annotations

import pytest

from collectors.attribution import actual, vertex_owners
from collectors.rest import FlinkRest
from experiments.bench import CATALOGUE
from placement.flink import stop_with_savepoint
from placement.model import Placement
from placement.realize import operators
from tests.conftest import STOPS_FAST, edgeplace

pytestmark = [pytest.mark.live, pytest.mark.slow]
REST = FlinkRest("http://127.0.0.1:18081")


def rate(query: str) -> str:
    """Records/s per source: STOPS_FAST (measured per stop: 10-12 s at 50/s, 3.3-4.3 s at 200/s for q5 and
    qa). Imaging stays at 50: its 66 KB dirty images cross the shared testbed's 8 Mbit/s link, and its stop
    took 45-70 s at every rate tried (10-200/s)."""
    return "50" if query == "imaging" else STOPS_FAST


@pytest.mark.parametrize("query, args", CATALOGUE, ids=[" ".join([q, *a]).replace("--opt query=", "")
                                                        for q, a in CATALOGUE])
def test_every_flink_task_belongs_to_an_operator_and_runs_where_planned(shared_testbed, tmp_path, query, args):
    job_args = ["--rate", rate(query), *args]
    ops = operators(query, job_args)
    # the first operator after the sources at the edge, the rest in the cloud: every edge kind is crossed
    first = next(o.uid for o in ops if not o.is_source)
    asg = {o.uid: "edge-1" if o.is_source or o.uid == first else "cloud-1" for o in ops}
    Placement(asg).write(tmp_path / "p.json")
    res = edgeplace("deploy", "--query", query, "--placement", str(tmp_path / "p.json"), *job_args)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip().splitlines()[-1]
    try:
        owners = vertex_owners(REST, job, ops)
        assert set(owners.values()) <= set(asg), sorted(set(owners.values()) - set(asg))
        where = actual(REST, job, ops)
        assert where == {u: {tm} for u, tm in asg.items()}, where
    finally:
        stop_with_savepoint(REST, job, tmp_path / "sp")


@pytest.mark.parametrize("query, args", [("qa", []), ("nexmark", ["--opt", "query=q5"]),
                                         ("nexmark", ["--opt", "query=q14"])], ids=["qa", "q5", "q14"])
def test_per_site_replicas_run_at_their_own_sites(shared_testbed, tmp_path, query, args):
    """Two sites: each site's first replica runs at that site's edge, everything else in the cloud; every
    Flink task (key-by helpers and watermark parts included) belongs to one operator and runs where planned."""
    job_args = ["--rate", rate(query), "--sites", "edge-1,edge-2", *args]
    ops = operators(query, job_args)
    firsts = {o.site: o.uid for o in reversed(ops) if o.replica_of and o.inputs == (f"src-{o.site}",)}
    assert sorted(firsts) == ["edge-1", "edge-2"], [o.uid for o in ops]
    asg = {o.uid: o.site if o.is_source or o.uid in firsts.values() else "cloud-1" for o in ops}
    Placement(asg).write(tmp_path / "p.json")
    res = edgeplace("deploy", "--query", query, "--placement", str(tmp_path / "p.json"), *job_args)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip().splitlines()[-1]
    try:
        assert actual(REST, job, ops) == {u: {tm} for u, tm in asg.items()}
    finally:
        stop_with_savepoint(REST, job, tmp_path / "sp")


def test_every_slot_of_a_taskmanager_can_hold_one_operators_group(shared_testbed):
    """Each logical operator's slot sharing group requests task heap and managed memory of its TaskManager
    (`queries.topology.GROUP_*`): a TaskManager must have enough of both for one group per slot, or a job
    with an operator per slot stays unscheduled (a 16-slot TaskManager of 1280 MB held only 6)."""
    from queries.topology import GROUP_HEAP_MB, GROUP_MANAGED_MB
    tms = REST.taskmanagers()
    assert tms
    for tm in tms:
        total = tm["totalResource"]
        assert total["taskHeapMemory"] >= tm["slotsNumber"] * GROUP_HEAP_MB, (tm["id"], total)
        assert total["managedMemory"] >= tm["slotsNumber"] * GROUP_MANAGED_MB, (tm["id"], total)
