"""Pure models of the workloads: Nexmark generator statistics, QA flagger accuracy, imaging peaks."""
import collections

import numpy as np
import pytest

from queries import options, registry
from queries.imaging import model as im
from queries.nexmark import job as nexmark_job, model as nx
from queries.qa import model as qa


@pytest.fixture(scope="module")
def events():
    return [nx.event(n, 3) for n in range(100_000)]


def test_event_mix_is_1_3_46(events):
    mix = collections.Counter(e[0] for e in events)
    assert mix[nx.PERSON] == pytest.approx(2_000, rel=0.02)
    assert mix[nx.AUCTION] == pytest.approx(6_000, rel=0.02)
    assert mix[nx.BID] == pytest.approx(92_000, rel=0.02)


def test_hot_auctions_and_bidders(events):
    bids = [(n, e) for n, e in enumerate(events) if e[0] == nx.BID]
    hot_auction = sum(e[1] == ((nx.FIRST_ID + nx.auctions_before(n) - 1) // 2) * 2 for n, e in bids) / len(bids)
    hot_bidder = sum(e[2] == ((nx.FIRST_ID + nx.persons_before(n) - 1) // 4) * 4 + 1 for n, e in bids) / len(bids)
    assert hot_auction == pytest.approx(1 - 1 / nx.HOT_AUCTION_RATIO, abs=0.02)
    assert hot_bidder == pytest.approx(1 - 1 / nx.HOT_BIDDER_RATIO, abs=0.02)


def _flink_row_bytes(e: tuple) -> int:
    """Bytes of one event as Flink's row serializer writes it, derived from its rules (not from the model):
    a null mask of one bit per field, 8 bytes per LONG, and per STRING its UTF-8 bytes after a one-byte
    length (strings under 128 characters)."""
    longs = [f for f in e if isinstance(f, int)]
    strings = [f for f in e if isinstance(f, str)]
    return (len(e) + 7) // 8 + 8 * len(longs) + sum(len(f.encode()) + 1 for f in strings)


def test_events_have_the_nominal_nexmark_sizes_on_the_wire(events):
    for kind, nominal in nx.NOMINAL.items():
        sizes = [_flink_row_bytes(e) for e in events if e[0] == kind]
        assert np.mean(sizes) == pytest.approx(nominal, rel=0.05), kind


def test_prices_span_the_log_uniform_range(events):
    prices = np.array([e[3] for e in events if e[0] == nx.BID])
    assert prices.min() >= 100 and prices.max() <= 100_000_000
    assert np.median(np.log10(prices)) == pytest.approx(5.0, abs=0.1)  # 10^U(0,6) × 100


def test_generator_is_deterministic_per_sequence_number():
    assert nx.event(12345, 7) == nx.event(12345, 7) and nx.event(12345, 7) != nx.event(12345, 8)


def test_flagger_finds_injected_rfi_with_few_false_positives():
    tp = fn = fp = tn = 0
    for b in range(6):
        hist = np.empty((0, qa.CHANNELS, qa.POLS), np.float32)
        for t in range(300):
            amp = np.abs(qa.visibilities(b, t, 5))
            truth = qa.rfi_mask(b, t, 5)
            f = qa.flag(hist, amp)
            hist = qa.remember(hist, amp, f)
            tp += (f & truth).sum(); fn += (~f & truth).sum(); fp += (f & ~truth).sum(); tn += (~f & ~truth).sum()
    assert tp + fn > 500
    assert tp / (tp + fn) >= 0.95
    assert fp / (fp + tn) <= 0.02


def test_dirty_image_peaks_at_the_point_source():
    for s in range(20):
        r = im.slice_record(s, 11)
        stats = im.image_stats(im.dirty_image(*r[1:]))
        assert (stats["peak_x"], stats["peak_y"]) == im.source_position(s, 11)
        assert stats["peak"] > 10 * stats["rms"]


def test_every_query_has_uid_named_operators_and_a_pinned_source():
    for name in registry.QUERIES:
        for extra in (["--opt", f"query={q}"] for q in nexmark_job.QUERIES) if name == "nexmark" else [[]]:
            ops = registry.load(name).topology(options.parse(["--sites", "edge-1,edge-2", *extra]))
            assert len({o.uid for o in ops}) == len(ops)
            assert [o.site for o in ops if o.is_source] == ["edge-1", "edge-2"]
            assert all(u in {o.uid for o in ops} for o in ops for u in o.inputs)


def test_event_time_queries_give_their_sources_a_watermark_part():
    for q in nexmark_job.QUERIES:
        ops = registry.load("nexmark").topology(options.parse(["--opt", f"query={q}"]))
        src = next(o for o in ops if o.is_source)
        assert any(p.suffix == "wm" for p in src.parts) == (q in nexmark_job.EVENT_TIME)


@pytest.mark.parametrize("query, key, default_ms", [("q5", "slide_ms", 2_000), ("q7", "window_ms", 10_000),
                                                     ("q8", "window_ms", 10_000), ("q11", "gap_ms", 10_000)])
def test_an_event_time_query_closes_its_windows_every_cycle_of_events(query, key, default_ms):
    """`cycle_events` is how many events of one source carry event time across one window period: the
    generator's own clock, not a restatement of it (a window of event time spans that many events)."""
    for period in (default_ms, 700):
        args = ["--opt", f"query={query}"] + (["--opt", f"{key}={period}"] if period != default_ms else [])
        n = registry.cycle_events("nexmark", args)
        assert nx.event(n, 1)[5] - nx.event(0, 1)[5] == period  # date_time (ms) one period later
        assert nx.event(n - 1, 1)[5] - nx.event(0, 1)[5] < period


@pytest.mark.parametrize("query, args", [("nexmark", ["--opt", "query=q2"]), ("nexmark", ["--opt", "query=q3"]),
                                         ("qa", []), ("imaging", [])])
def test_a_query_without_event_time_windows_has_no_cycle(query, args):
    assert registry.cycle_events(query, args) == 0


def test_a_bad_window_option_is_named():
    from common.errors import EdgeplaceError
    with pytest.raises(EdgeplaceError, match="window_ms"):
        registry.cycle_events("nexmark", ["--opt", "query=q8", "--opt", "window_ms=-5"])
