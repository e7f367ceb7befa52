"""A receiver fed across a link waits for its Python bundles (costmodel.predict.bundle_terms): λ* by hand from
the problem-file semantics, and the planners' choice moving with it."""
from __future__ import annotations

import pytest

from costmodel.predict import predict
from costmodel.problem import from_json, to_json
from placement.heuristics import cloud_only, exhaustive
from placement.optimal import optimal

BW, WINDOW, SIZE, BUSY = 6.25e6, 40960.0, 8000.0, 2e-3


def imaging_like(size=SIZE, bundle=(200, 0.1), window=WINDOW, edge_cores=0.5):
    """src at the edge sends `size`-byte records to image (2 ms each), whose 100-byte results go to sink."""
    return from_json({
        "operators": [{"id": "src", "cost_s_per_record": 1e-4, "bytes_out_per_record": size, "pin": "edge-1"},
                      {"id": "image", "cost_s_per_record": BUSY, "bytes_out_per_record": 100.0},
                      {"id": "sink", "cost_s_per_record": 0.0}],
        "edges": [{"from": "src", "to": "image"}, {"from": "image", "to": "sink"}],
        "source_rates": {"src": 1.0},
        "nodes": [{"id": "edge-1", "site": "site-1", "slots": 4, "cores": edge_cores},
                  {"id": "cloud-1", "site": "cloud", "slots": 8, "cores": 4.0}],
        "links": [{"site": "site-1", "up_bytes_per_s": BW, "down_bytes_per_s": BW,
                   **({"window_bytes": window} if window is not None else {})}],
        **({"bundle": {"records": bundle[0], "seconds": bundle[1]}} if bundle else {})})


def test_a_receiver_waits_for_what_the_window_does_not_carry_during_a_bundle():
    p = imaging_like()
    pred = predict(p, cloud_only(p))
    # λ·(busy + s/bw) ≤ 1 + W/(2T·bw): the link's time per record adds to image's, less what the window carries
    # while bundles close on time, every 2T (Flink's timer closes one only T after the last one finished)
    assert pred.max_rate == pytest.approx((1 + WINDOW / (2 * 0.1 * BW)) / (BUSY + SIZE / BW))
    assert pred.bottleneck == "bundle:image"
    assert predict(from_json(to_json(p)), cloud_only(p)).max_rate == pred.max_rate  # the file keeps both settings


@pytest.mark.parametrize("change", [
    dict(bundle=None),  # no Python bundles (an older problem file): the link and image overlap
    dict(window=None),  # no window known for the link
    dict(size=WINDOW / 200),  # a whole bundle's records fit the window
])
def test_nothing_waits_without_bundles_a_window_or_records_larger_than_it_holds(change):
    p = imaging_like(**change)
    pred = predict(p, cloud_only(p))
    assert pred.max_rate == pytest.approx(1 / BUSY) and pred.bottleneck == "operator:image"


def test_the_planners_choice_moves_with_the_wait():
    """image at the edge sustains the edge's cores / 2.1 ms: 476 events/s on 1 core, 238 on 0.5. In the cloud
    it sustains 500
    without bundles, (1 + W/(2T·bw)) / 3.28 ms with them: 315 with 100-ms bundles, 500 with 5-ms ones (the
    window then covers most of the wait). optimal agrees with exhaustive search each time."""
    for bundle, edge_cores, where in (((200, 0.1), 1.0, "edge-1"), ((200, 0.005), 1.0, "cloud-1"),
                                      (None, 1.0, "cloud-1"), ((200, 0.1), 0.5, "cloud-1")):
        p = imaging_like(bundle=bundle, edge_cores=edge_cores)
        best, mine = exhaustive(p), optimal(p)
        assert mine["image"] == best["image"] == where, (bundle, edge_cores)
        assert predict(p, mine).max_rate == pytest.approx(predict(p, best).max_rate)
