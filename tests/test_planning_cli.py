"""`plan` on a problem file and `plan --rank` through the real CLI, without a cluster: the placement it writes is
the policy's, its prediction is what `predict` computes for it, and the ranking table says which operator to
offload and why."""
from __future__ import annotations

import json

import pytest

from costmodel.predict import predict
from costmodel.problem import from_json
from placement.policies import POLICIES, plan
from tests.conftest import edgeplace
from tests.test_bad_input import GOOD, problem_file


def test_plan_on_a_file_writes_the_policys_placement_with_the_prediction_that_predict_gives(tmp_path):
    f = problem_file(tmp_path)
    p = from_json(GOOD)
    rates = {}
    for policy in POLICIES:
        out = tmp_path / f"{policy}.json"
        res = edgeplace("plan", "--problem", f, "--policy", policy, "--out", str(out), timeout=60)
        assert res.returncode == 0, res.stderr
        written = json.loads(out.read_text())
        assert written["assignments"] == plan(p, policy) and written["meta"]["policy"] == policy
        rates[policy] = written["meta"]["predicted"]["max_rate"]
        assert rates[policy] == pytest.approx(predict(p, written["assignments"]).max_rate)
        assert f"{policy}: λ* = {rates[policy]:.6g}" in res.stderr
    shown = edgeplace("predict", "--problem", f, "--placement", str(tmp_path / "optimal.json"), "--json", timeout=60)
    assert json.loads(shown.stdout)["max_rate"] == pytest.approx(rates["optimal"])
    # a 1 Mbit/s link and a filter keeping 1 %: filtering at the edge beats raw records over the link
    assert rates["optimal"] == max(rates.values()) > rates["cloud-only"]


def test_plan_rank_puts_the_filter_first_and_refuses_the_sink_with_its_reason(tmp_path):
    res = edgeplace("plan", "--problem", problem_file(tmp_path), "--policy", "cloud-only",
                    "--out", str(tmp_path / "o.json"), "--rank", timeout=60)
    assert res.returncode == 0, res.stderr
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in res.stdout.splitlines() if line.startswith("│")]
    assert [r[0] for r in rows] == ["filter", "sink"]
    assert rows[0][2] == "yes" and "reduces WAN bytes by 99 per unit rate" in rows[0][3]
    assert rows[1][2] == "NO" and "not all at one edge site" in rows[1][3]


def test_predict_shows_flink_own_traffic_and_the_wan_bytes_per_event_it_adds(tmp_path):
    """The edge site's link carries 5,000 B/s of Flink's own traffic up whatever is placed, and the filter adds
    3,000 when it runs there: with it at the edge, 8,000 B/s up at any rate, so 8,000 / λ* more per event."""
    def control(d):
        d["links"][0]["control_up_bytes_per_s"] = 5_000.0
        next(o for o in d["operators"] if o["id"] == "filter")["control_up_bytes_per_s"] = 3_000.0
    f = problem_file(tmp_path, control)
    p = from_json(json.loads(open(f).read()))
    site = p.links[0].site
    edge = next(n.id for n in p.nodes if n.site == site)
    asg = {v: (edge if v == "filter" or p.op[v].pin else next(n.id for n in p.nodes if n.site == "cloud"))
           for v in p.op}
    pl = tmp_path / "filter-at-edge.json"
    pl.write_text(json.dumps({"version": 1, "assignments": asg}))
    res = edgeplace("predict", "--problem", f, "--placement", str(pl), "--json", timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    expect = predict(p, asg)
    assert out["control"][site] == pytest.approx({"up": 8_000.0, "down": 0.0})
    assert out["wan_up_bytes_per_event"] == pytest.approx(expect.wan_up_bytes_per_unit_rate + 8_000 / out["max_rate"])
    text = edgeplace("predict", "--problem", f, "--placement", str(pl), timeout=60)
    assert f"{site} up 8,000 B/s, down 0 B/s" in text.stdout, text.stdout


def test_a_site_whose_checkpoint_outlasts_the_heartbeat_sustains_nothing_and_optimal_avoids_it(tmp_path):
    """The filter's state, 2 MB per checkpoint, takes 20 s on a 100 kB/s uplink: beyond a 15-s heartbeat
    timeout the filter at the edge sustains nothing, and `plan` keeps it in the cloud; within a 25-s one
    it goes to the edge as it would without state (it cuts the WAN bytes 100×)."""
    def state(timeout):
        def mutate(d):
            d["links"][0].update(up_bytes_per_s=1e5, heartbeat_timeout_s=timeout)
            next(o for o in d["operators"] if o["id"] == "filter")["checkpoint_ack_bytes"] = 2e6
        return mutate
    short = problem_file(tmp_path, state(15.0))
    p = from_json(json.loads(open(short).read()))
    edge = next(n.id for n in p.nodes if n.site == p.links[0].site)
    asg = {v: (edge if v == "filter" or p.op[v].pin else next(n.id for n in p.nodes if n.site == "cloud"))
           for v in p.op}
    pl = tmp_path / "filter-at-edge.json"
    pl.write_text(json.dumps({"version": 1, "assignments": asg}))
    text = edgeplace("predict", "--problem", short, "--placement", str(pl), timeout=60)
    assert text.returncode == 0, text.stderr
    assert f"bottleneck checkpoint:{p.links[0].site}" in text.stdout and "take 20 s on its uplink, longer than the " \
        "15-s heartbeat timeout" in text.stdout, text.stdout
    for timeout, where in ((15.0, "cloud"), (25.0, p.links[0].site)):
        f = problem_file(tmp_path, state(timeout))
        out = tmp_path / f"planned-{timeout:g}.json"
        res = edgeplace("plan", "--problem", f, "--policy", "optimal", "--out", str(out), timeout=60)
        assert res.returncode == 0, res.stderr
        planned = json.loads(out.read_text())
        assert p.node[planned["assignments"]["filter"]].site == where and planned["meta"]["predicted"]["max_rate"] > 0
