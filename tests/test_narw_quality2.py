"""scripts/narw_quality2.py's scoring pieces against slow obvious references."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
nq2 = pytest.importorskip("narw_quality2")

from sonotype.training.augment import Call, band_power  # noqa: E402


@pytest.mark.parametrize("pool", ["mean", "max", "min"])
def test_segment_scores_pool_the_windows_that_cover_each_segment(pool):
    rng = np.random.default_rng(3)
    scores = rng.random(20)
    win, hop, res, dur = 12.0, 1.5, 1.5, 40.0
    got = nq2.segment_scores(scores, win, hop, res, dur, pool)
    f = {"mean": np.mean, "max": np.max, "min": np.min}[pool]
    for i in range(len(got)):
        a, b = i * res, min((i + 1) * res, dur)
        cov = [scores[k] for k in range(len(scores)) if k * hop <= a and k * hop + win >= b]
        if cov:
            assert got[i] == pytest.approx(f(cov))
        else:  # past the last window: the nearest window's score
            assert got[i] in scores


def test_peaks_thresholded_equal_greedy_suppression_among_segments_above_the_threshold():
    rng = np.random.default_rng(4)
    seg, res = rng.random(60), 1.5
    starts, sc = nq2.peaks(seg, res)
    assert np.all(np.diff(sc) <= 0)
    for t in (0.3, 0.6, 0.9):
        kept: list[int] = []
        for i in sorted(range(len(seg)), key=lambda i: -seg[i]):
            if seg[i] >= t and all(abs(i - j) * res >= max(nq2.NMS_S, res) for j in kept):
                kept.append(i)
        assert sorted(starts[sc >= t].tolist()) == sorted(k * res for k in kept)


def test_band_limit_keeps_the_band_and_removes_what_is_outside():
    sr = 2000.0
    t = np.arange(4000) / sr
    x = (np.sin(2 * np.pi * 150 * t) + np.sin(2 * np.pi * 600 * t)).astype(np.float32)
    y = nq2.band_limit(Call(x, sr, "x.wav", 0.0), (80.0, 220.0)).samples
    assert y.shape == x.shape
    inside = band_power(y, sample_rate=sr, fmin=140, fmax=160) / band_power(x, sample_rate=sr, fmin=140, fmax=160)
    outside = band_power(y, sample_rate=sr, fmin=590, fmax=610) / band_power(x, sample_rate=sr, fmin=590, fmax=610)
    assert inside > 0.8 and outside < 1e-4
