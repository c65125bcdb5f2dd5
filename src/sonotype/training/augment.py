"""Detector training-data augmentation: calls mixed into other backgrounds, SpecAugment masks, mixup.

* :func:`mix_examples` cuts the annotated calls out of the training recordings and mixes each, at
  a random signal-to-noise ratio (dB, measured in a frequency band, :func:`band_power`), random
  time shift and random gain, into a window of background (a stretch that touches no annotated
  event) from another recording. Every example is labelled by the same rule as real windows
  (:func:`sonotype.training.dataset.window_labels` with the inserted event): the shift is drawn so that the
  call covers at least ``min_overlap`` of itself (or of the window), so each example is POSITIVE.
* :func:`spec_masks`: SpecAugment-style time and frequency masks on normalised windows.
* :func:`mixup`: convex combinations of examples and of their labels.

Everything draws from a :class:`numpy.random.Generator` the caller seeds, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..audio.io import read_audio
from ..errors import ConfigError, DataError
from ..features.frontend import Framing, normalise, spectrogram
from .dataset import Event, Item, window_labels


def band_power(x: np.ndarray, *, sample_rate: float, fmin: float, fmax: float) -> float:
    """Mean power per sample of ``x`` ``(n,)`` inside ``[fmin, fmax]`` Hz (Parseval over the DFT bins in
    the band; bins other than DC and Nyquist stand for two, their negative-frequency twin included)."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if n == 0:
        return 0.0
    spec = np.fft.rfft(x)  # (n//2+1,)
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    twice = np.full(freqs.shape, 2.0)
    twice[0] = 1.0
    if n % 2 == 0:
        twice[-1] = 1.0
    inside = (freqs >= fmin) & (freqs <= fmax)
    return float(np.sum(twice[inside] * np.abs(spec[inside]) ** 2) / (n * n))


def snr_db(signal: np.ndarray, noise: np.ndarray, *, sample_rate: float, fmin: float, fmax: float) -> float:
    """``10 log10(band power of signal / band power of noise)``, both ``(n,)``."""
    ps = band_power(signal, sample_rate=sample_rate, fmin=fmin, fmax=fmax)
    pn = band_power(noise, sample_rate=sample_rate, fmin=fmin, fmax=fmax)
    return float(10.0 * np.log10(max(ps, 1e-30) / max(pn, 1e-30)))


def mix_at_snr(background: np.ndarray, call: np.ndarray, *, offset: int, snr: float, sample_rate: float,
               fmin: float, fmax: float) -> tuple[np.ndarray, float]:
    """Add ``call`` ``(m,)`` into ``background`` ``(n,)`` starting at sample ``offset`` (may be negative or run
    past the end: the call is clipped to the background), scaled so that, over the samples they share, the
    call's band power is ``snr`` dB above the background's. Returns the mixture ``(n,)`` float32 and the scale."""
    bg = np.asarray(background, np.float64)
    a, b = max(0, offset), min(bg.shape[0], offset + len(call))
    if b <= a:
        raise DataError(f"call at offset {offset} ({len(call)} samples) misses the {bg.shape[0]}-sample background")
    part = np.asarray(call, np.float64)[a - offset:b - offset]
    pc = band_power(part, sample_rate=sample_rate, fmin=fmin, fmax=fmax)
    pn = band_power(bg[a:b], sample_rate=sample_rate, fmin=fmin, fmax=fmax)
    if pc <= 0:
        raise DataError(f"the call holds no power in {fmin:g}-{fmax:g} Hz; cannot mix it at an SNR")
    scale = float(np.sqrt(max(pn, 1e-30) * 10.0 ** (snr / 10.0) / pc))
    out = bg.copy()
    out[a:b] += scale * part
    return out.astype(np.float32), scale


@dataclass(frozen=True)
class Call:
    """An annotated call cut from a recording: its samples ``(m,)`` (faded in and out), where it came from."""

    samples: np.ndarray
    sample_rate: float
    path: str
    start_s: float


def cut_calls(items: Sequence[Item], *, fade_s: float = 0.05) -> list[Call]:
    """The annotated events of ``items`` as :class:`Call` s (Hann fade of ``fade_s`` s at both ends)."""
    out = []
    for it in items:
        for ev in it.events or ():
            a, b = int(round(ev.start * it.sample_rate)), min(it.frames, int(round(ev.end * it.sample_rate)))
            if b - a < 4:
                continue
            x, _ = read_audio(it.path, channel=it.channel, start=a, stop=b)
            k = min(len(x) // 2, int(fade_s * it.sample_rate))
            if k:
                ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)  # (k,) 0 -> 1
                x = x.copy()
                x[:k] *= ramp
                x[-k:] *= ramp[::-1]
            out.append(Call(x.astype(np.float32), float(it.sample_rate), it.path, ev.start))
    return out


@dataclass(frozen=True)
class MixedExamples:
    """Augmented examples: normalised windows ``(N, W, B)``, labels ``(N,)`` (POSITIVE), the SNR (dB) each
    was mixed at, and per example (call index, background item index, window start sample, inserted event)."""

    windows: np.ndarray
    y: np.ndarray
    snr_db: np.ndarray
    call: np.ndarray
    background: np.ndarray
    start: np.ndarray
    events: tuple[Event, ...]


def call_offset_range(call_len: int, window_len: int, *, min_overlap: float) -> tuple[int, int]:
    """Smallest and largest start (samples, relative to the window's first sample) of a call of ``call_len``
    samples that keeps at least ``min_overlap`` of the call (or of the window, if shorter) inside the window."""
    need = int(np.ceil(min_overlap * min(call_len, window_len)))
    return need - call_len, window_len - need


def mix_examples(calls: Sequence[Call], backgrounds: Sequence[Item], framing: Framing, *, count: int,
                 rng: np.random.Generator, snr_range: tuple[float, float] = (0.0, 15.0), gain_db: float = 6.0,
                 min_overlap: float = 0.5, preroll_s: float = 0.0, band: tuple[float, float] | None = None,
                 max_tries: int = 1000) -> MixedExamples:
    """``count`` windows, each a random call of ``calls`` mixed into a random background stretch of
    ``backgrounds`` (a window-sized stretch that touches none of that recording's events, never the call's own
    recording) at an SNR uniform in ``snr_range`` dB (band power in ``band`` Hz, default the front end's band),
    with a random shift (the call keeps ``min_overlap`` inside the window) and a gain uniform in
    ``+-gain_db`` dB. ``preroll_s`` seconds of background before the window are passed through the front end
    too (a stateful scale such as PCEN settles there) and dropped. Windows are normalised as the front end's."""
    if count < 0 or not calls:
        raise DataError("augmentation needs annotated calls to mix in (an annotation table with events)")
    if snr_range[0] > snr_range[1]:
        raise ConfigError(f"snr_range must be (low, high) dB, got {snr_range}")
    fmin, fmax = band or (framing.fmin, framing.fmax)
    span = framing.window_samples
    pre = int(round(preroll_s * framing.sample_rate))
    pools = [(i, it) for i, it in enumerate(backgrounds) if it.frames >= span + pre
             and abs(it.sample_rate - framing.sample_rate) < 1e-6]
    if not pools:
        raise DataError("no background recording is long enough (one window) at the front end's sample rate")
    weights = np.array([it.frames for _, it in pools], np.float64)
    wins, ys, snrs, cis, bgi, starts, events = [], [], [], [], [], [], []
    for _ in range(count):
        ci = int(rng.integers(len(calls)))
        call = calls[ci]
        for _ in range(max_tries):
            k = int(rng.choice(len(pools), p=weights / weights.sum()))
            i, it = pools[k]
            if it.path == call.path and len(pools) > 1:
                continue  # mixed into *other* recordings
            evs = [(int(e.start * it.sample_rate), int(np.ceil(e.end * it.sample_rate))) for e in it.events or ()]
            s = int(rng.integers(pre, it.frames - span + 1))
            if all(b <= s or a >= s + span for a, b in evs):  # the window is clear (a preroll may hold calls)
                break
        else:
            raise DataError(f"found no background stretch clear of annotated events in {max_tries} tries")
        first, last = call_offset_range(len(call.samples), span, min_overlap=min_overlap)
        off = int(rng.integers(first, last + 1))
        snr = float(rng.uniform(*snr_range))
        gain = 10.0 ** (float(rng.uniform(-gain_db, gain_db)) / 20.0)
        bg, _ = read_audio(it.path, channel=it.channel, start=s - pre, stop=s + span)
        mixed, _ = mix_at_snr(bg, call.samples, offset=pre + off, snr=snr, sample_rate=framing.sample_rate,
                              fmin=fmin, fmax=fmax)
        frames = spectrogram(gain * mixed, framing)[-framing.window:]  # (W, B)
        ev = Event((s + off) / framing.sample_rate, (s + off + len(call.samples)) / framing.sample_rate, "mixed")
        wins.append(frames); snrs.append(snr); cis.append(ci); bgi.append(i); starts.append(s); events.append(ev)
        ys.append(window_labels(1, _WindowAt(framing, s), [ev], min_overlap=min_overlap)[0])
    w = normalise(np.stack(wins), centre_bins=framing.centre_bins)[0] if wins else np.zeros(
        (0, framing.window, framing.n_bins), np.float32)
    return MixedExamples(w, np.asarray(ys, np.int64), np.asarray(snrs), np.asarray(cis, np.int64), np.asarray(bgi, np.int64),
                         np.asarray(starts, np.int64), tuple(events))


class _WindowAt:
    """A framing whose window 0 starts at sample ``start`` (labels one window by the rule of real windows)."""

    def __init__(self, framing: Framing, start: int):
        self.f, self.start = framing, start

    def window_times(self, count: int) -> np.ndarray:
        return (self.f.window_times(count) * self.f.sample_rate + self.start) / self.f.sample_rate


def spec_masks(windows: np.ndarray, rng: np.random.Generator, *, time: int = 0, freq: int = 0, count: int = 1,
               value: float = 0.0) -> np.ndarray:
    """SpecAugment-style masks on windows ``(N, W, B)``: per window ``count`` time masks (consecutive frames,
    width uniform in ``0..time``) and ``count`` frequency masks (consecutive bins, ``0..freq`` wide), set to
    ``value`` (0: the mean of a normalised window). Returns a masked copy."""
    w = np.array(windows, np.float32, copy=True)
    n, nt, nf = w.shape
    if time > nt or freq > nf or time < 0 or freq < 0:
        raise ConfigError(f"mask widths time={time}, freq={freq} must fit the {nt}x{nf} windows")
    for i in range(n):
        for _ in range(count):
            if time:
                t = int(rng.integers(0, time + 1)); t0 = int(rng.integers(0, nt - t + 1))
                w[i, t0:t0 + t, :] = value
            if freq:
                f = int(rng.integers(0, freq + 1)); f0 = int(rng.integers(0, nf - f + 1))
                w[i, :, f0:f0 + f] = value
    return w


def mixup_pairs(n: int, rng: np.random.Generator, *, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Partners ``(n,)`` (a permutation) and weights ``(n,)`` ~ Beta(alpha, alpha) for :func:`mixup`."""
    if alpha <= 0:
        raise ConfigError(f"mixup alpha must be > 0, got {alpha}")
    return rng.permutation(n), rng.beta(alpha, alpha, size=n)


def mixup(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): ``x' = lam x + (1 - lam) x[p]``, ``y' = lam y + (1 - lam) y[p]`` for a random
    permutation ``p`` and ``lam ~ Beta(alpha, alpha)`` per example. ``x`` ``(N, ...)``, ``y`` ``(N,)``; float32 out."""
    perm, lam = mixup_pairs(len(y), rng, alpha=alpha)
    lx = lam.reshape((-1,) + (1,) * (np.ndim(x) - 1))
    xm = lx * np.asarray(x, np.float64) + (1 - lx) * np.asarray(x, np.float64)[perm]
    ym = lam * np.asarray(y, np.float64) + (1 - lam) * np.asarray(y, np.float64)[perm]
    return xm.astype(np.float32), ym.astype(np.float32)
