"""Scores -> regions, against a slow sample-by-sample reference."""

from __future__ import annotations

import numpy as np
import pytest

from sonotype.detection.regions import RegionRule, find_regions
from sonotype.errors import ConfigError
from sonotype.features.frontend import FrontEnd

FR = FrontEnd(n_fft=512, hop=64, fmin=40, fmax=1000).at_rate(2000)


def reference(scores, rule, n_samples):
    """Mark every covered sample, merge gaps by filling short holes, cut runs, drop short ones."""
    step = FR.stride_samples
    length = FR.window_samples if rule.span == "full" else step
    mask = np.zeros(n_samples + length + step * len(scores), bool)
    for i, s in enumerate(scores):
        if s >= rule.threshold:
            mask[i * step:i * step + length] = True
    mask = mask[:n_samples]
    gap = round(rule.merge_gap * FR.sample_rate)
    idx = np.nonzero(mask)[0]
    runs = []
    for k in idx:
        if runs and k <= runs[-1][1] + gap:
            runs[-1][1] = k + 1
        else:
            runs.append([k, k + 1])
    return [(a, b) for a, b in runs if (b - a) / FR.sample_rate >= rule.min_duration]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("span", ["full", "nominal"])
def test_regions_match_reference(seed, span):
    rng = np.random.default_rng(seed)
    scores = rng.random(80) ** 3
    n = FR.window_samples + 79 * FR.stride_samples
    rule = RegionRule(threshold=0.4, merge_gap=float(rng.choice([0.0, 0.1, 1.5])),
                      min_duration=float(rng.choice([0.0, 0.6, 2.0])), span=span)
    got = find_regions(scores, FR, rule=rule, n_samples=n)
    assert [(r.start, r.stop) for r in got] == reference(scores, rule, n)
    for r in got:
        win = scores[r.first_window:r.first_window + 1]
        assert r.peak_score >= r.mean_score >= rule.threshold and win[0] >= rule.threshold
        assert r.stop_s > r.start_s and abs(r.duration_s - (r.stop - r.start) / 2000) < 1e-12


def test_first_window_offset_shifts_regions_and_nothing_below_threshold():
    s = np.array([0.1, 0.9, 0.95, 0.1, 0.1])
    a = find_regions(s, FR, rule=RegionRule(threshold=0.5))
    b = find_regions(s, FR, rule=RegionRule(threshold=0.5), first_window=10)
    assert len(a) == len(b) == 1 and b[0].start - a[0].start == 10 * FR.stride_samples
    assert a[0].n_windows == 2 and a[0].peak_score == pytest.approx(0.95)
    assert find_regions(s, FR, rule=RegionRule(threshold=0.99)) == []


def test_bad_rule_is_refused():
    with pytest.raises(ConfigError, match="span"):
        RegionRule(span="middle")
    with pytest.raises(ConfigError, match="merge_gap"):
        RegionRule(merge_gap=-1)
