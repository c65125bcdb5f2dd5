"""Augmentation: calls mixed into backgrounds at a measured SNR, masks, mixup — seeded, labels kept.

The SNR reference computes band power with an explicit DFT sum, one frequency at a time."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from sonotype.audio.io import read_audio, write_audio
from sonotype.errors import ConfigError, DataError
from sonotype.features.frontend import PRESETS, normalise, spectrogram
from sonotype.training.augment import (
    band_power,
    call_offset_range,
    cut_calls,
    mix_at_snr,
    mix_examples,
    mixup,
    spec_masks,
)
from sonotype.training.dataset import POSITIVE, Event, Item

SR = 2000
BAND = (30.0, 400.0)


def ref_band_power(x: np.ndarray, sr: float, fmin: float, fmax: float) -> float:
    """Mean power per sample in [fmin, fmax]: sum over all DFT frequencies k (negative ones too) whose
    |frequency| lies in the band of |X_k|^2 / n^2, X_k = sum_t x_t exp(-2 pi i k t / n), summed by loop."""
    n = len(x)
    total = 0.0
    for k in range(n):
        f = (k if k <= n // 2 else k - n) * sr / n
        if not fmin <= abs(f) <= fmax:
            continue
        xk = sum(float(x[t]) * cmath.exp(-2j * math.pi * k * t / n) for t in range(n))
        total += abs(xk) ** 2
    return total / n ** 2


def ref_snr(signal, noise, sr, band) -> float:
    return 10 * math.log10(ref_band_power(signal, sr, *band) / ref_band_power(noise, sr, *band))


def upcall(seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * (80 * t + 60 * t ** 2 / seconds))).astype(np.float32)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two 2 kHz recordings with annotated upcalls and one background with a 60 Hz hum; as Items."""
    d = tmp_path_factory.mktemp("aug")
    rng = np.random.default_rng(7)
    items = []
    for name, calls in (("a.wav", (3.0, 11.0, 20.0)), ("b.wav", (5.0, 15.0)), ("bg.wav", ())):
        n = 30 * SR
        x = 0.02 * rng.standard_normal(n) + (0.05 * np.sin(2 * np.pi * 60 * np.arange(n) / SR) if not calls else 0)
        for c in calls:
            x[int(c * SR):int(c * SR) + SR] += upcall()
        p = write_audio(d / name, x.astype(np.float32), sample_rate=SR, subtype="FLOAT")
        items.append(Item(str(p), SR, 0, n, None, tuple(Event(c, c + 1.0) for c in calls)))
    return items


@pytest.mark.parametrize("n", [257, 400])
def test_band_power_matches_explicit_dft(n):
    x = np.random.default_rng(n).standard_normal(n)
    for band in ((30.0, 400.0), (0.0, 1000.0), (123.0, 124.5)):
        assert band_power(x, sample_rate=SR, fmin=band[0], fmax=band[1]) == pytest.approx(
            ref_band_power(x, SR, *band), rel=1e-9, abs=1e-15)
    assert band_power(x, sample_rate=SR, fmin=0.0, fmax=SR / 2) == pytest.approx(np.mean(x ** 2), rel=1e-9)


@pytest.mark.parametrize("snr,offset", [(-6.0, 100), (0.0, -300), (12.5, 500)])
def test_mix_achieves_the_snr_measured_by_a_slow_reference(snr, offset):
    rng = np.random.default_rng(1)
    bg = (0.05 * rng.standard_normal(800)).astype(np.float32)
    call = upcall(0.4)
    mixed, scale = mix_at_snr(bg, call, offset=offset, snr=snr, sample_rate=SR, fmin=BAND[0], fmax=BAND[1])
    a, b = max(0, offset), min(len(bg), offset + len(call))
    added = mixed.astype(np.float64) - bg  # what was mixed in
    assert np.allclose(added[:a], 0) and np.allclose(added[b:], 0)
    assert np.allclose(added[a:b], scale * call[a - offset:b - offset], atol=1e-6)
    assert ref_snr(added[a:b], bg[a:b].astype(np.float64), SR, BAND) == pytest.approx(snr, abs=1e-3)
    with pytest.raises(DataError, match="misses"):
        mix_at_snr(bg, call, offset=900, snr=0.0, sample_rate=SR, fmin=BAND[0], fmax=BAND[1])


def test_cut_calls_reads_the_annotated_samples(recordings):
    calls = cut_calls(recordings, fade_s=0.0)
    assert len(calls) == 5 and {c.path for c in calls} == {recordings[0].path, recordings[1].path}
    x, _ = read_audio(recordings[0].path, start=3 * SR, stop=4 * SR)
    assert np.array_equal(calls[0].samples, x) and calls[0].start_s == 3.0
    faded = cut_calls(recordings[:1], fade_s=0.05)[0].samples
    assert faded[0] == 0.0 and np.array_equal(faded[200:-200], x[200:-200])


def test_mixed_examples_are_seeded_positive_and_at_the_drawn_snr(recordings):
    fr = PRESETS["narw"].at_rate(SR)
    calls = cut_calls(recordings)
    kw = dict(count=24, snr_range=(-3.0, 9.0), gain_db=6.0, min_overlap=0.5)
    a = mix_examples(calls, recordings, fr, rng=np.random.default_rng(5), **kw)
    b = mix_examples(calls, recordings, fr, rng=np.random.default_rng(5), **kw)
    c = mix_examples(calls, recordings, fr, rng=np.random.default_rng(6), **kw)
    assert a.windows.shape == (24, fr.window, fr.n_bins) and np.isfinite(a.windows).all()
    assert np.array_equal(a.windows, b.windows) and a.events == b.events
    assert not np.array_equal(a.windows, c.windows)
    assert (a.y == POSITIVE).all()
    assert ((a.snr_db >= -3.0) & (a.snr_db <= 9.0)).all()
    span = fr.window_samples
    for i, ev in enumerate(a.events):
        it = recordings[a.background[i]]
        w0, w1 = a.start[i] / SR, (a.start[i] + span) / SR
        overlap = min(w1, ev.end) - max(w0, ev.start)  # the real-window rule, by hand
        assert overlap >= 0.5 * min(ev.end - ev.start, w1 - w0) - 1e-9
        assert all(e.end <= w0 or e.start >= w1 for e in it.events)  # background clear of its own events
        assert ev.end - ev.start == pytest.approx(1.0, abs=1e-3)
    assert all(recordings[a.background[i]].path != calls[a.call[i]].path for i in range(24))  # other recordings


def test_mixed_example_snr_measured_back(recordings):
    """Rebuild one example's audio from its background stretch: the call band power over the shared samples
    sits at the drawn SNR above the background's (slow reference)."""
    fr = PRESETS["narw"].at_rate(SR)
    calls = cut_calls(recordings[:1])
    ex = mix_examples(calls, recordings[1:], fr, count=1, rng=np.random.default_rng(0), snr_range=(4.0, 4.0),
                      gain_db=0.0)
    it = recordings[1:][ex.background[0]]
    bg, _ = read_audio(it.path, start=int(ex.start[0]), stop=int(ex.start[0]) + fr.window_samples)
    off = int(round(ex.events[0].start * SR)) - int(ex.start[0])
    call = calls[ex.call[0]].samples
    mixed, _ = mix_at_snr(bg, call, offset=off, snr=4.0, sample_rate=SR, fmin=BAND[0], fmax=BAND[1])
    fr0 = PRESETS["narw"].at_rate(SR)
    again = normalise(spectrogram(mixed, fr0)[None], centre_bins=fr0.centre_bins)[0][0]
    assert np.allclose(again, ex.windows[0], atol=1e-4)  # the example is this mixture
    a, b = max(0, off), min(len(bg), off + len(call))
    assert ref_snr((mixed.astype(np.float64) - bg)[a:b], bg[a:b].astype(np.float64), SR, BAND) == pytest.approx(
        4.0, abs=1e-3)


def test_call_offset_range_keeps_the_overlap():
    lo, hi = call_offset_range(2000, 2496, min_overlap=0.5)
    for off in (lo, hi):
        ov = min(2496, off + 2000) - max(0, off)
        assert ov >= 1000
    assert min(2496, lo - 1 + 2000) - max(0, lo - 1) < 1000


def test_spec_masks_cover_the_requested_sizes():
    x = np.ones((400, 32, 64), np.float32)
    m = spec_masks(x, np.random.default_rng(0), time=6, freq=10)
    assert np.array_equal(m, spec_masks(x, np.random.default_rng(0), time=6, freq=10))
    assert np.array_equal(x, np.ones_like(x))  # a copy
    t_widths, f_widths = [], []
    for w in m:
        rows = np.nonzero((w == 0).all(axis=1))[0]  # frames masked across every bin
        cols = np.nonzero((w == 0).all(axis=0))[0]  # bins masked across every frame
        for idx in (rows, cols):
            assert idx.size == 0 or idx[-1] - idx[0] + 1 == idx.size  # one contiguous mask
        t_widths.append(rows.size); f_widths.append(cols.size)
        assert ((w == 0) == ((w == 0).all(axis=1)[:, None] | (w == 0).all(axis=0)[None, :])).all()
    assert max(t_widths) == 6 and max(f_widths) == 10 and min(t_widths) == 0 and min(f_widths) == 0
    assert set(t_widths) == set(range(7)) and set(f_widths) == set(range(11))
    with pytest.raises(ConfigError, match="fit"):
        spec_masks(x, np.random.default_rng(0), time=33)


def test_mixup_keeps_labels_with_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)).astype(np.float32)
    y = (rng.random(50) < 0.3).astype(np.float32)
    x[:, 0] = y  # a feature that is the label: mixing must move it with the label
    xm, ym = mixup(x, y, np.random.default_rng(1), alpha=0.4)
    xm2, ym2 = mixup(x, y, np.random.default_rng(1), alpha=0.4)
    assert np.array_equal(xm, xm2) and np.array_equal(ym, ym2)
    assert np.allclose(xm[:, 0], ym, atol=1e-6)
    assert ((ym >= 0) & (ym <= 1)).all() and not np.array_equal(ym, y)
    with pytest.raises(ConfigError, match="alpha"):
        mixup(x, y, rng, alpha=0.0)
