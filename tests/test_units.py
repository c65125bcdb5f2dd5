"""Tests of sonotype.units: every conversion checked against brute-force enumeration.

The brute-force side never uses a closed formula: it walks frames / windows one by one and
checks the framing convention directly (frame ``f`` covers samples ``[f*hop, f*hop + n_fft)``,
window ``w`` covers frames ``[w*stride, w*stride + window)``).
"""

from __future__ import annotations

import numpy as np
import pytest

from sonotype import units
from sonotype.errors import ConfigError
from sonotype.features.frontend import FrontEnd

RNG_SEED = 20240611


def brute_frames(n_samples: int, n_fft: int, hop: int) -> list[tuple[int, int]]:
    """Sample span [start, stop) of every whole frame, by walking the signal."""
    spans, f = [], 0
    while f * hop + n_fft <= n_samples:
        spans.append((f * hop, f * hop + n_fft))
        f += 1
    return spans


def brute_windows(num_frames: int, window: int, stride: int) -> list[list[int]]:
    """Frame indices of every whole window, by walking the frames."""
    out, w = [], 0
    while True:
        frames = list(range(w * stride, w * stride + window))
        if frames[-1] >= num_frames:
            return out
        out.append(frames)
        w += 1


def brute_window_span(index: int, window: int, stride: int, n_fft: int, hop: int) -> tuple[int, int]:
    """Union of the sample spans of the window's frames (they overlap or touch since hop <= n_fft)."""
    starts = [f * hop for f in range(index * stride, index * stride + window)]
    return min(starts), max(s + n_fft for s in starts)


def random_geometry(rng) -> tuple[int, int, int, int]:
    n_fft = int(rng.integers(1, 65))
    hop = int(rng.integers(1, n_fft + 1))
    window = int(rng.integers(1, 12))
    stride = int(rng.integers(1, window + 1))
    return n_fft, hop, window, stride


# --------------------------------------------------------------------- frames and windows


def test_n_frames_matches_enumeration():
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(3000):
        n_fft = int(rng.integers(1, 80))
        hop = int(rng.integers(1, n_fft + 1))
        n = int(rng.integers(0, 600))
        spans = brute_frames(n, n_fft, hop)
        assert units.n_frames(n, n_fft=n_fft, hop=hop) == len(spans), (n, n_fft, hop)
        for f, (a, b) in enumerate(spans):
            assert units.frame_start(f, hop=hop) == a
            assert b <= n


def test_n_frames_edges():
    assert units.n_frames(0, n_fft=512, hop=256) == 0
    assert units.n_frames(511, n_fft=512, hop=256) == 0
    assert units.n_frames(512, n_fft=512, hop=256) == 1
    assert units.n_frames(767, n_fft=512, hop=256) == 1
    assert units.n_frames(768, n_fft=512, hop=256) == 2


def test_n_windows_matches_enumeration():
    rng = np.random.default_rng(RNG_SEED + 1)
    for _ in range(3000):
        window = int(rng.integers(1, 40))
        stride = int(rng.integers(1, window + 1))
        nf = int(rng.integers(0, 300))
        wins = brute_windows(nf, window, stride)
        assert units.n_windows(nf, window=window, stride=stride) == len(wins), (nf, window, stride)
        for w, frames in enumerate(wins):
            assert units.window_first_frame(w, stride=stride) == frames[0]


def test_window_spans_match_enumeration():
    rng = np.random.default_rng(RNG_SEED + 2)
    for _ in range(1500):
        n_fft, hop, window, stride = random_geometry(rng)
        for w in range(int(rng.integers(0, 50)), int(rng.integers(50, 60))):
            full = units.window_sample_span(w, window=window, stride=stride, n_fft=n_fft, hop=hop)
            assert full == brute_window_span(w, window, stride, n_fft, hop)
            # nominal span: the stride-cell of the window, [first frame start, first frame of next window)
            nominal = units.window_nominal_span(w, stride=stride, hop=hop)
            assert nominal == (w * stride * hop, (w + 1) * stride * hop)
            assert full[0] == nominal[0] and full[1] >= nominal[1]


def test_full_span_is_inside_the_signal_exactly_when_the_window_exists():
    """Window w exists in n samples  <=>  its full span ends at or before n."""
    rng = np.random.default_rng(RNG_SEED + 3)
    for _ in range(800):
        n_fft, hop, window, stride = random_geometry(rng)
        n = int(rng.integers(0, 900))
        count = units.n_windows(units.n_frames(n, n_fft=n_fft, hop=hop), window=window, stride=stride)
        for w in range(count + 3):
            stop = units.window_sample_span(w, window=window, stride=stride, n_fft=n_fft, hop=hop)[1]
            assert (w < count) == (stop <= n), (n, n_fft, hop, window, stride, w)


def test_samples_for_windows_is_the_smallest_sufficient_length():
    rng = np.random.default_rng(RNG_SEED + 4)
    for _ in range(300):
        n_fft, hop, window, stride = random_geometry(rng)
        for count in range(0, 6):
            need = units.samples_for_windows(count, window=window, stride=stride, n_fft=n_fft, hop=hop)

            def windows_in(n):
                return len(brute_windows(len(brute_frames(n, n_fft, hop)), window, stride))

            assert windows_in(need) >= count
            if need > 0:
                assert windows_in(need - 1) < count
    assert units.samples_for_windows(-3, window=32, stride=16, n_fft=512, hop=256) == 0


# --------------------------------------------------------------------- seconds and overlap


def test_seconds_samples_round_trip():
    rng = np.random.default_rng(RNG_SEED + 5)
    for sr in (2000, 22050, 44100, 48000, 96000, 8000.5):
        for n in rng.integers(0, 10**9, 200):
            n = int(n)
            s = units.samples_to_seconds(n, sample_rate=sr)
            assert isinstance(s, float)
            assert s == pytest.approx(n / sr)
            assert units.seconds_to_samples(s, sample_rate=sr) == n
    # rounds to the nearest sample
    assert units.seconds_to_samples(0.0104, sample_rate=1000) == 10
    assert units.seconds_to_samples(0.0106, sample_rate=1000) == 11
    assert isinstance(units.seconds_to_samples(1.5, sample_rate=48000), int)


@pytest.mark.parametrize("sr", [0, -1, 0.0])
def test_samples_to_seconds_rejects_bad_rate(sr):
    with pytest.raises(ConfigError, match="sample_rate"):
        units.samples_to_seconds(10, sample_rate=sr)


def brute_overlapping(a: int, b: int, total: int, window: int, stride: int, n_fft: int, hop: int) -> list[int]:
    """Windows 0..total-1 whose full span (by enumeration of its frames) meets [a, b) (a < b)."""
    hits = []
    for w in range(total):
        lo, hi = brute_window_span(w, window, stride, n_fft, hop)
        if lo < b and a < hi:
            hits.append(w)
    return hits


def test_windows_overlapping_matches_enumeration():
    rng = np.random.default_rng(RNG_SEED + 6)
    checked_nonempty = 0
    for _ in range(2500):
        n_fft, hop, window, stride = random_geometry(rng)
        sr = float(rng.choice([1000, 2000, 8000, 44100, 48000]))
        total = int(rng.integers(0, 40))
        extent = units.samples_for_windows(total + 2, window=window, stride=stride, n_fft=n_fft, hop=hop) + 50
        a = int(rng.integers(0, extent))
        b = int(rng.integers(a + 1, extent + 2))  # non-empty interval of whole samples
        got = units.windows_overlapping(a / sr, b / sr, sample_rate=sr, window=window, stride=stride,
                                        n_fft=n_fft, hop=hop, total_windows=total)
        assert isinstance(got, range)
        want = brute_overlapping(a, b, total, window, stride, n_fft, hop)
        assert list(got) == want, (a, b, total, n_fft, hop, window, stride)
        checked_nonempty += bool(want)
    assert checked_nonempty > 1000  # the random cases really exercise hits, not just empty results


def test_windows_overlapping_dolphin_example():
    # 48 kHz, n_fft 512, hop 256, window 32, stride 16: windows start every 4096 samples, last 8448
    kw = dict(sample_rate=48000, window=32, stride=16, n_fft=512, hop=256)
    assert list(units.windows_overlapping(0.0, 1 / 48000, total_windows=10, **kw)) == [0]
    # sample 4096 is inside windows 0 (0..8448) and 1 (4096..12544)
    assert list(units.windows_overlapping(4096 / 48000, 4097 / 48000, total_windows=10, **kw)) == [0, 1]
    # sample 8448 is past window 0's end
    assert list(units.windows_overlapping(8448 / 48000, 8449 / 48000, total_windows=10, **kw)) == [1, 2]
    # clipped to the windows that exist
    assert list(units.windows_overlapping(0.0, 100.0, total_windows=5, **kw)) == [0, 1, 2, 3, 4]
    assert list(units.windows_overlapping(0.0, 100.0, total_windows=0, **kw)) == []
    assert list(units.windows_overlapping(90.0, 100.0, total_windows=5, **kw)) == []


# --------------------------------------------------------------------- Framing agrees with units


@pytest.mark.parametrize("sr", [2000, 44100, 48000, 96000])
def test_framing_uses_units(sr):
    fe = FrontEnd(fmin=40.0, fmax=900.0)
    fr = fe.at_rate(sr)
    rng = np.random.default_rng(sr)
    for n in rng.integers(0, 200_000, 50):
        n = int(n)
        nf = len(brute_frames(n, fr.n_fft, fr.hop))
        assert fr.n_frames(n) == nf
        assert fr.n_windows(n) == len(brute_windows(nf, fr.window, fr.stride))
    for w in range(5):
        assert fr.window_span(w) == brute_window_span(w, fr.window, fr.stride, fr.n_fft, fr.hop)
    assert fr.window_samples == fr.window_span(0)[1]
    assert fr.stride_samples == fr.window_span(1)[0]
    assert fr.stride_s == pytest.approx(fr.stride_samples / sr)
    times = fr.window_times(4)
    assert times.shape == (4, 2)
    for w in range(4):
        lo, hi = fr.window_span(w)
        assert times[w, 0] == pytest.approx(lo / sr) and times[w, 1] == pytest.approx(hi / sr)
