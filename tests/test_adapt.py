"""The closed loop's decision rule (pure): gain thresholds, agreement over several decisions, cooldown."""
from __future__ import annotations

import math

import pytest

from costmodel.predict import Prediction
from experiments.adapt import AdaptOptions, RuleState, decide, gain


def pred(rate: float, wan: float = 100.0) -> Prediction:
    return Prediction(rate, "node:x", wan, {}, {})


def test_gain_by_objective():
    assert gain("throughput", pred(100), pred(150), 80) == pytest.approx(0.5)
    assert gain("throughput", pred(math.inf), pred(math.inf), 80) == 0.0
    assert gain("wan", pred(1000, 100), pred(1000, 25), 500) == pytest.approx(0.75)
    assert math.isinf(gain("wan", pred(500, 100), pred(1000, 200), 500))  # only best sustains 500 × 1.1
    assert gain("wan", pred(500, 100), pred(520, 50), 500) == 0.0  # neither does


def test_a_redeploy_needs_enough_gain_agreement_and_no_recent_redeploy():
    opts = AdaptOptions(min_gain=0.2, stable=3, cooldown=60)
    st = RuleState(last_redeploy=0.0)
    assert decide(opts, st, 100, "A", "A", 0.0).action == "stay"
    assert decide(opts, st, 100, "A", "B", 0.1).action == "stay"  # below the threshold
    assert [decide(opts, st, 100 + i, "A", "B", 0.5).action for i in range(3)] == ["wait", "wait", "redeploy"]
    st = RuleState(last_redeploy=0.0)
    seq = [decide(opts, st, 10 + i, "A", "B", 0.5) for i in range(3)]
    assert seq[-1].action == "wait" and "cooldown" in seq[-1].why  # 12 s after the last redeploy


def test_noise_that_changes_the_best_placement_never_redeploys():
    opts = AdaptOptions(min_gain=0.2, stable=3, cooldown=0)
    st = RuleState()
    flips = ["B", "C", "B", "C", "B", "A", "B", "C"]  # a better placement each time, never the same 3 in a row
    assert all(decide(opts, st, i, "A", b, 0.3 if b != "A" else 0).action != "redeploy" for i, b in enumerate(flips))
    gains = [0.3, 0.1, 0.3, 0.3, 0.05, 0.3]  # the same better placement, but the gain dips below the threshold
    assert all(decide(opts, st, i, "A", "B", g).action != "redeploy" for i, g in enumerate(gains))


def test_costs_come_from_the_busiest_window_and_everything_else_from_the_window_now():
    import dataclasses

    from experiments.adapt import CostMemory
    from tests.test_costmodel_units import chain
    busy = chain(("flag", 3e-3, 1.0, 100, False), ("sink", 1e-5, 1.0, 0, False))

    def scaled(p, k, sel=1.0):  # costs ×k (fixed overhead spread over fewer records), flag's selectivity `sel`
        return dataclasses.replace(p, operators=tuple(dataclasses.replace(
            o, cost_s_per_record=o.cost_s_per_record * k,
            selectivity=sel if o.id == "flag" else o.selectivity) for o in p.operators))
    memory = CostMemory()
    assert memory.apply(busy, 430.0) is busy
    slow = memory.apply(scaled(busy, 2.4, sel=0.5), 97.0)  # a link-bound window at a quarter of the rate
    assert slow.op["flag"].cost_s_per_record == busy.op["flag"].cost_s_per_record
    assert slow.op["flag"].selectivity == 0.5  # what the window measures now is kept
    assert memory.rate == 430.0
    near = scaled(busy, 1.1)
    assert memory.apply(near, 400.0) is near  # a window as busy (within 10 %) refreshes the costs
    assert memory.apply(scaled(busy, 3.0), 100.0).op["flag"].cost_s_per_record == near.op["flag"].cost_s_per_record
