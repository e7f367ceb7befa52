"""q5's windowed count at a thin edge (#15): its checkpointed state, as a real Flink 2.3 reported it for q5
cloud-only on the testbed (tests/recorded/record_checkpoints.py), priced into the problem the acceptance run
profiled for q5. Measured on the testbed (session 22): with the count at the edge the job lost its edge
TaskManager at 0.15 Mbit/s (its heartbeat timed out behind a 1.0–1.4 MB acknowledgement) and ran for
8 minutes at 0.3 Mbit/s."""
from __future__ import annotations

import json
from pathlib import Path

from collectors.attribution import vertex_owners
from collectors.checkpoints import read_state
from collectors.clusterconf import heartbeat_timeout_s
from collectors.profiles import JobProfile
from costmodel.predict import predict
from costmodel.pricing import link_bytes_per_s, state_in_acks, with_bandwidth, with_checkpoints
from costmodel.problem import load
from placement.heuristics import edge_max
from placement.optimal import optimal
from queries import options, registry
from tests.test_checkpoints import Replay

ROOT = Path(__file__).parent.parent
RECORDED = json.loads((ROOT / "tests" / "recorded" / "checkpoints-q5-cloud-only.json").read_text())
PROFILED = ROOT / "docs" / "validation" / "acceptance-2" / "problems" / "problem-nexmark-q5-r0.json"
OPS = registry.load("nexmark").topology(options.parse(["--opt", "query=q5", "--sites", "edge-1"]))


def _problem():
    rest = Replay(RECORDED["answers"])
    job = RECORDED["job"]
    reading = read_state(rest, job)
    measured = JobProfile([], vertex_owners(rest, job, OPS), {}, state_in_acks=reading.in_acks)
    return with_checkpoints(load(PROFILED), state_in_acks(measured), heartbeat_timeout_s(rest))


def test_the_counts_state_is_what_crosses_in_the_acknowledgements():
    p = _problem()
    held = {o.id: o.checkpoint_ack_bytes for o in p.operators if o.checkpoint_ack_bytes > 0}
    assert 1.0e6 <= held["count"] <= 1.4e6  # as the thin-link run saw it
    assert held["count"] > 0.99 * sum(held.values()) and "bids" not in held  # the source's offsets: bytes
    assert all(l.heartbeat_timeout_s == 60.0 for l in p.links)


def test_a_thin_link_cannot_carry_the_counts_checkpoint_within_the_heartbeat_timeout():
    p = _problem()
    thin, wide = with_bandwidth(p, 0.15), with_bandwidth(p, 0.3)
    at_edge = edge_max(p)
    assert at_edge["count"] == "edge-1"
    failed = predict(thin, at_edge)
    assert failed.max_rate == 0 and failed.bottleneck == "checkpoint:edge-1" and failed.total_rate == 0
    assert p.op["count"].checkpoint_ack_bytes / link_bytes_per_s(0.15) > 60 > \
        p.op["count"].checkpoint_ack_bytes / link_bytes_per_s(0.3)
    ran = predict(wide, at_edge)
    assert ran.max_rate > 0 and not ran.bottleneck.startswith("checkpoint")
    # the planner keeps the count off the thin edge, and sustains a rate there
    best = optimal(thin)
    assert best["count"] == "cloud-1" and predict(thin, best).max_rate > 0
