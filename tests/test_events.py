"""Event-level scores against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest

from sonotype.dataset import Event
from sonotype.events import score_events


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
