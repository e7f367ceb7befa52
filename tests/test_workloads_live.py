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
from tests.conftest import edgeplace

pytestmark = [pytest.mark.live, pytest.mark.slow]
REST = FlinkRest("http://127.0.0.1:18081")


@pytest.mark.parametrize("query, args", CATALOGUE, ids=[" ".join([q, *a]).replace("--opt query=", "")
                                                        for q, a in CATALOGUE])
def test_every_flink_task_belongs_to_an_operator_and_runs_where_planned(shared_testbed, tmp_path, query, args):
    job_args = ["--rate", "50", *args]
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
