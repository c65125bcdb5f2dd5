"""Event-level scores against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest

from sonotype.detection.events import score_events
from sonotype.training.dataset import Event


def brute(regions, events, durations):
    n_ev = found = n_reg = matching = 0
    for name in durations:
        rs, es = regions.get(name, []), events.get(name, [])
        n_ev += len(es); n_reg += len(rs)
        for e in es:
            found += any(min(r[1], e.end) > max(r[0], e.start) for r in rs)
        for r in rs:
            matching += any(min(r[1], e.end) > max(r[0], e.start) for e in es)
    return n_ev, found, n_reg, matching


@pytest.mark.parametrize("seed", range(10))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    durations = {f"f{i}.wav": 900.0 for i in range(3)}
    regions, events = {}, {}
    for name in list(durations)[:2]:
        s = np.sort(rng.uniform(0, 890, 15))
        regions[name] = [(a, a + rng.uniform(0.2, 3)) for a in s]
        t = np.sort(rng.uniform(0, 890, 10))
        events[name] = [Event(a, a + rng.uniform(0.5, 2)) for a in t]
    regions["f2.wav"] = [(10.0, 11.0)]  # a file with no events: a false alarm
    got = score_events(regions, events, durations)
    assert (got.events, got.events_found, got.regions, got.regions_matching) == brute(regions, events, durations)
    assert got.false_alarms_per_hour == pytest.approx(got.false_alarms / 0.75)
    assert 0 <= got.precision <= 1 and 0 <= got.recall <= 1


def test_touching_is_not_overlapping_and_empty_inputs():
    ev = {"a.wav": [Event(1.0, 2.0)]}
    assert score_events({"a.wav": [(2.0, 3.0)]}, ev, {"a.wav": 3600}).events_found == 0
    assert score_events({"a.wav": [(1.9, 3.0)]}, ev, {"a.wav": 3600}).events_found == 1
    s = score_events({}, {}, {"a.wav": 60.0})
    assert (s.precision, s.recall, s.f1, s.false_alarms_per_hour) == (0.0, 0.0, 0.0, 0.0)


def test_pam_rule_matches_by_centre_within_the_tolerance():
    ev = {"a.wav": [Event(10.0, 11.0)]}
    assert score_events({"a.wav": [(12.0, 12.8)]}, ev, {"a.wav": 60}, tolerance_s=1.5).events_found == 1  # centre 12.4
    assert score_events({"a.wav": [(12.0, 13.2)]}, ev, {"a.wav": 60}, tolerance_s=1.5).events_found == 0  # centre 12.6
    assert score_events({"a.wav": [(12.0, 13.2)]}, ev, {"a.wav": 60}).events_found == 0  # no overlap either
    assert score_events({"a.wav": [(5.0, 10.2)]}, ev, {"a.wav": 60}, tolerance_s=1.5).events_found == 0  # centre 7.6
    assert score_events({"a.wav": [(5.0, 10.2)]}, ev, {"a.wav": 60}).events_found == 1  # overlaps


def test_event_threshold_is_the_best_event_f1_over_the_candidates():
    from sonotype.detection.events import ScoredSpan, choose_event_threshold, span_event_scores
    from sonotype.detection.regions import RegionRule, find_regions
    from sonotype.features.frontend import FrontEnd
    fr = FrontEnd(n_fft=512, hop=256, fmin=0.0).at_rate(8000)   # windows of 32 frames, stride 16: 0.512 s apart
    rng = np.random.default_rng(3)
    n = 400
    scores = rng.uniform(0, 0.6, n)
    events = []
    for k in range(0, n - 10, 37):                  # calls where the scores rise, of varying strength
        scores[k:k + 3] = rng.uniform(0.4, 1.0)
        a = fr.window_span(k)[0] / 8000
        events.append(Event(a + 0.2, a + 1.0))
    span = ScoredSpan(scores, fr, 0, fr.window_span(n - 1)[1], tuple(events))
    th, best = choose_event_threshold({"x": span}, candidates=60)
    # brute force over the same candidates with find_regions and score_events directly
    grid = np.unique(np.quantile(scores, np.linspace(0.5, 1.0, 60, endpoint=False)))
    f1s = []
    for t in grid:
        regs = find_regions(scores, fr, rule=RegionRule(threshold=float(t)), n_samples=span.n_samples)
        f1s.append(score_events({"x": [(g.start_s, g.stop_s) for g in regs]}, {"x": list(events)},
                                {"x": span.n_samples / 8000}).f1)
    tied = [t for t, f in zip(grid, f1s) if f == max(f1s)]
    assert best.f1 == pytest.approx(max(f1s)) and th == pytest.approx(tied[(len(tied) - 1) // 2])
    # a precision target trades recall for fewer false alarms
    th9, at9 = choose_event_threshold({"x": span}, candidates=60, target_precision=0.9)
    assert at9.precision >= 0.9 or at9 == best
    assert span_event_scores({"x": span}, rule=RegionRule(threshold=th)).f1 == best.f1


def brute_matching(m: np.ndarray) -> int:
    """The largest set of (region, event) pairs with no region or event used twice, by trying every
    assignment of regions to events or to nothing (small matrices only)."""
    import itertools
    r, e = m.shape
    best = 0
    for choice in itertools.product(range(-1, e), repeat=r):
        used = [j for j in choice if j >= 0]
        if len(used) == len(set(used)) and all(m[i, j] for i, j in enumerate(choice) if j >= 0):
            best = max(best, len(used))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_one_to_one_is_a_maximum_matching(seed):
    from sonotype.detection.events import matched_pairs
    rng = np.random.default_rng(seed)
    m = rng.random((int(rng.integers(0, 6)), int(rng.integers(0, 6)))) < rng.uniform(0.1, 0.7)
    assert matched_pairs(m) == brute_matching(m)


def test_one_long_region_finds_one_call_one_to_one_and_all_of_them_by_overlap():
    events = {"a.wav": [Event(10.0 * k, 10.0 * k + 1) for k in range(1, 6)]}  # five calls
    regions = {"a.wav": [(5.0, 60.0)]}                                       # one region over all of them
    durations = {"a.wav": 900.0}
    overlap = score_events(regions, events, durations)
    one = score_events(regions, events, durations, one_to_one=True)
    assert (overlap.recall, overlap.precision) == (1.0, 1.0)
    assert (one.events_found, one.regions_matching, one.recall, one.precision) == (1, 1, 0.2, 1.0)
    split = score_events({"a.wav": [(10.0, 10.4), (10.6, 11.0)]}, {"a.wav": events["a.wav"][:1]}, durations,
                         one_to_one=True)  # one call split in two regions: one of them is a false alarm
    assert (split.events_found, split.false_alarms) == (1, 1)
