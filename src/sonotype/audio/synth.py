"""Seeded synthetic cetacean-like audio: signal generators and small corpora for tests and ``sonotype demo``.

Units: times in seconds (``*_s``), milliseconds (``*_ms``) or microseconds (``*_us``); frequencies in Hz;
amplitudes are linear full-scale (1.0 = clipping); levels in dB. ``snr_db`` everywhere means
``20*log10(call RMS over its active 10-ms frames / RMS of the coloured background)`` (snapping-shrimp
transients are not counted in the background RMS), so sparse click trains and dense whistles compare fairly.

Every generator takes ``rng`` (a :class:`numpy.random.Generator` or an int seed) and is deterministic given it;
the corpus writers take ``seed``. All signals are float32 in ``[-1, 1]``.

(Over 400 lines: one generator per sound kind and the corpora built from them; splitting them would scatter
the shared unit conventions above.)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft
from scipy.signal.windows import tukey

from ..errors import ConfigError
from .io import write_audio

DEFAULT_SR = 48000
#: whistle contour families (convex = rises then falls, concave = falls then rises)
WHISTLE_SHAPES = ("upsweep", "downsweep", "convex", "concave", "sinusoidal")
#: clip-corpus classes, in folder order; the last is background noise
CLASSES = ("whistle", "burst_pulse", "click_train", "noise")
VOCAL_CLASSES = CLASSES[:3]
#: longest :func:`make_long_recording` (it builds the whole file in memory: 600 s at 48 kHz is ~115 MB float32)
MAX_LONG_SECONDS = 600.0
_FRAME_S = 0.01  # frame length for the active-RMS used by snr_db
_CALL_PEAK = 0.8  # a call is never scaled above this peak, whatever its requested SNR


@dataclass(frozen=True)
class CorpusItem:
    """One labelled item of a synthetic corpus: a call inside a file (``start``/``end`` in seconds), or a
    noise-only clip (None). (Annotated events read from a table are :class:`sonotype.training.dataset.Event`.)"""

    filename: str  # relative to the corpus root (clips) or the WAV's base name (long recording)
    start: float | None
    end: float | None
    label: str  # class, one of CLASSES
    call_type: str  # whistle contour family, else the class
    snr_db: float | None  # effective SNR after peak limiting


@dataclass(frozen=True)
class Corpus:
    """What :func:`make_clip_corpus` wrote under ``root``."""

    root: Path
    sample_rate: int
    clip_seconds: float
    labels_path: Path
    clips: tuple[CorpusItem, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(self.root / c.filename for c in self.clips)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.clips)


@dataclass(frozen=True)
class LongRecording:
    """What :func:`make_long_recording` wrote: one WAV and its ``<stem>_annotations.csv``."""

    path: Path
    annotations_path: Path
    sample_rate: int
    seconds: float
    events: tuple[CorpusItem, ...]


# ----------------------------------------------------------------------------------------- helpers
def _rng(rng: np.random.Generator | int) -> np.random.Generator:
    """``rng`` itself, or a fresh generator seeded with the int ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng must be a numpy.random.Generator or an int seed, got {rng!r}")


def _n_samples(seconds: float, sample_rate: int, what: str = "duration_s") -> int:
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    n = int(round(float(seconds) * sample_rate))
    if n < 1:
        raise ConfigError(f"{what} must be at least one sample long, got {seconds!r} s at {sample_rate} Hz")
    return n


def _pick(rng: np.random.Generator, value: float | None, lo: float, hi: float) -> float:
    """``value`` if given, else a uniform draw from ``[lo, hi)``."""
    return float(rng.uniform(lo, hi)) if value is None else float(value)


def _check_amplitude(amplitude: float) -> None:
    if not 0.0 < amplitude <= 1.0:
        raise ConfigError(f"amplitude must be in (0, 1] (full scale), got {amplitude!r}")


def _gabor(sample_rate: int, *, fc_hz: float, sigma_s: float) -> np.ndarray:
    """Unit-peak Gabor click (Gaussian-windowed cosine), centred on its middle sample."""
    half = max(1, int(np.ceil(3.5 * sigma_s * sample_rate)))
    t = np.arange(-half, half + 1) / sample_rate
    return np.exp(-0.5 * (t / sigma_s) ** 2) * np.cos(2 * np.pi * fc_hz * t)


def _click_times(n: int, sample_rate: int, *, first: int, ici_ms: float, ici_end_ms: float, last: int,
                 rng: np.random.Generator | None = None, jitter: float = 0.0) -> np.ndarray:
    """Click centre samples from ``first`` while ``<= last``; the interval slides linearly from ici_ms to ici_end_ms."""
    if ici_ms <= 0 or ici_end_ms <= 0:
        raise ConfigError(f"inter-click intervals must be > 0 ms, got {ici_ms!r} and {ici_end_ms!r}")
    times, t = [], float(first)
    while round(t) <= last:
        times.append(int(round(t)))
        ici = (ici_ms + (ici_end_ms - ici_ms) * t / n) * 1e-3 * sample_rate
        t += max(ici * (1.0 + rng.uniform(-jitter, jitter) if rng is not None else 1.0), 1.0)
    if not times:
        raise ConfigError(f"duration_s ({n / sample_rate} s) is shorter than one click")
    return np.asarray(times, dtype=np.int64)


def _render_clicks(click: np.ndarray, times: np.ndarray, amps: np.ndarray, amplitude: float) -> np.ndarray:
    """Sum of ``click`` centred at ``times`` (samples >= half its length), ending with the last click, peak ``amplitude``."""
    half = len(click) // 2
    out = np.zeros(int(times[-1]) + half + 1, dtype=np.float64)
    for t, a in zip(times, amps):
        out[t - half:t + half + 1] += a * click
    out *= amplitude / max(np.max(np.abs(out)), 1e-12)
    return out.astype(np.float32)


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    """RMS over the 10-ms frames whose power is within 30 dB of the loudest frame."""
    L = max(1, int(_FRAME_S * sample_rate))
    m = len(x) // L
    if m == 0:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    p = np.square(x[: m * L], dtype=np.float64).reshape(m, L).mean(axis=1)
    return float(np.sqrt(p[p >= 1e-3 * p.max()].mean()))


def _mix(buf: np.ndarray, call: np.ndarray, offset: int, *, noise_rms: float, snr_db: float,
         sample_rate: int) -> float:
    """Add ``call`` into ``buf`` at ``offset`` at ``snr_db`` (peak-limited); return the effective SNR (dB)."""
    arms = max(_active_rms(call, sample_rate), 1e-12)
    gain = min(noise_rms * 10 ** (snr_db / 20) / arms, _CALL_PEAK / max(float(np.max(np.abs(call))), 1e-12))
    buf[offset:offset + len(call)] += gain * call
    return round(float(20 * np.log10(gain * arms / noise_rms)), 2)


# ----------------------------------------------------------------------------------------- signals
def whistle_contour(u: np.ndarray, *, shape: str, f_low_hz: float, f_high_hz: float,
                    cycles: float = 1.5) -> np.ndarray:
    """Instantaneous frequency (Hz) of a whistle of contour family ``shape`` at normalised times ``u`` in [0, 1].

    The contour spans ``[f_low_hz, f_high_hz]``; ``cycles`` is the number of periods of a ``sinusoidal`` one.
    """
    u = np.asarray(u, dtype=np.float64)
    d = f_high_hz - f_low_hz
    if shape == "upsweep":
        return f_low_hz + d * u
    if shape == "downsweep":
        return f_high_hz - d * u
    if shape == "convex":
        return f_low_hz + d * np.sin(np.pi * u)
    if shape == "concave":
        return f_high_hz - d * np.sin(np.pi * u)
    if shape == "sinusoidal":
        return f_low_hz + 0.5 * d * (1.0 + np.sin(2 * np.pi * cycles * u))
    raise ConfigError(f"unknown whistle shape {shape!r}; expected one of {WHISTLE_SHAPES}")


def whistle(rng: np.random.Generator | int, *, sample_rate: int = DEFAULT_SR, duration_s: float | None = None,
            shape: str | None = None, f_low_hz: float | None = None, f_high_hz: float | None = None,
            cycles: float | None = None, harmonics: int | None = None, amplitude: float = 0.8) -> np.ndarray:
    """Tonal FM whistle (signature-whistle-like), float32 of ``round(duration_s * sample_rate)`` samples.

    Unset parameters are drawn from ``rng``: ``duration_s`` in [0.3, 1.2) s, ``shape`` from
    :data:`WHISTLE_SHAPES`, the band within ~5-20 kHz (capped at 0.45*sample_rate), ``cycles`` in [1, 2.5),
    ``harmonics`` (extra harmonics, 2nd and 3rd, each weaker) 1 or 2. Harmonics reaching Nyquist are dropped.
    The phase is the running integral (cumsum) of :func:`whistle_contour`; 30-ms (at most 15 %) cosine
    ramps at onset/offset; peak = ``amplitude``.
    """
    r = _rng(rng)
    _check_amplitude(amplitude)
    shape = WHISTLE_SHAPES[int(r.integers(len(WHISTLE_SHAPES)))] if shape is None else shape
    dur = _pick(r, duration_s, 0.3, 1.2)
    n = _n_samples(dur, sample_rate)
    top, bottom = min(20000.0, 0.45 * sample_rate), min(5000.0, 0.2 * sample_rate)
    span = min(1500.0, 0.3 * (top - bottom))
    f_lo = _pick(r, f_low_hz, bottom, top - span)
    f_hi = _pick(r, f_high_hz, f_lo + span, max(top, f_lo + span))
    cyc = _pick(r, cycles, 1.0, 2.5)
    n_harm = int(r.integers(1, 3)) if harmonics is None else int(harmonics)
    if not 0 < f_lo <= f_hi < sample_rate / 2 or n_harm < 0:
        raise ConfigError(f"need 0 < f_low_hz <= f_high_hz < Nyquist ({sample_rate / 2} Hz) and harmonics >= 0, "
                          f"got {f_lo}, {f_hi}, {n_harm}")
    rel, phases = r.uniform(0.15, 0.45, size=n_harm), r.uniform(0, 2 * np.pi, size=n_harm + 1)
    f = whistle_contour(np.arange(n) / max(n - 1, 1), shape=shape, f_low_hz=f_lo, f_high_hz=f_hi, cycles=cyc)
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    x = np.sin(phase + phases[0])
    for k in range(2, n_harm + 2):
        if k * f_hi < sample_rate / 2:
            x += rel[k - 2] ** (k - 1) * np.sin(k * phase + phases[k - 1])
    ramp_s = min(0.03, 0.15 * dur)
    x *= tukey(n, alpha=min(1.0, 2 * ramp_s / dur))
    x *= amplitude / max(float(np.max(np.abs(x))), 1e-12)
    return x.astype(np.float32)


def burst_pulse(rng: np.random.Generator | int, *, sample_rate: int = DEFAULT_SR, duration_s: float | None = None,
                ici_ms: float | None = None, ici_end_ms: float | None = None,
                amplitude: float = 0.8) -> np.ndarray:
    """Burst-pulse call: a rapid train of broadband Gabor clicks (centre 0.15-0.35*sample_rate, σ 15-40 µs).

    Drawn when unset: ``duration_s`` in [0.1, 0.6) s, ``ici_ms`` (inter-click interval) in [1, 5) ms sliding to
    ``ici_end_ms`` (0.6-1.4x it, at least 1 ms), 5 % interval jitter, a tapered amplitude envelope.
    Returned length is at most ``duration_s`` (trimmed just after the last click); peak = ``amplitude``.
    """
    r = _rng(rng)
    _check_amplitude(amplitude)
    n = _n_samples(_pick(r, duration_s, 0.1, 0.6), sample_rate)
    ici0 = _pick(r, ici_ms, 1.0, 5.0)
    ici1 = max(1.0, ici0 * r.uniform(0.6, 1.4)) if ici_end_ms is None else float(ici_end_ms)
    click = _gabor(sample_rate, fc_hz=r.uniform(0.15, 0.35) * sample_rate, sigma_s=r.uniform(15e-6, 40e-6))
    half = len(click) // 2
    times = _click_times(n, sample_rate, first=half, last=n - half - 1, ici_ms=ici0, ici_end_ms=ici1,
                         rng=r, jitter=0.05)
    env = 0.3 + 0.7 * np.sin(np.pi * (times + 0.5) / n)
    return _render_clicks(click, times, env * r.uniform(0.8, 1.0, size=len(times)), amplitude)


def click_train(rng: np.random.Generator | int, *, sample_rate: int = DEFAULT_SR, duration_s: float | None = None,
                ici_ms: float | None = None, ici_end_ms: float | None = None, click_us: float | None = None,
                fc_hz: float | None = None, amplitude: float = 0.8) -> np.ndarray:
    """Echolocation click train: short broadband Gabor clicks at a slowly varying inter-click interval.

    Drawn when unset: ``duration_s`` in [0.5, 2) s, ``ici_ms`` in [20, 100) ms sliding linearly to
    ``ici_end_ms`` (0.8-1.25x it), click length ``click_us`` in [50, 100) µs (±3σ of the Gaussian),
    centre ``fc_hz`` in 0.3-0.42*sample_rate, per-click amplitude 0.75-1. No timing jitter: click ``k`` of a
    constant-interval train sits at ``first + k*ici``. Length is at most ``duration_s``; peak = ``amplitude``.
    """
    r = _rng(rng)
    _check_amplitude(amplitude)
    n = _n_samples(_pick(r, duration_s, 0.5, 2.0), sample_rate)
    ici0 = _pick(r, ici_ms, 20.0, 100.0)
    ici1 = ici0 * r.uniform(0.8, 1.25) if ici_end_ms is None else float(ici_end_ms)
    width = _pick(r, click_us, 50.0, 100.0) * 1e-6
    fc = _pick(r, fc_hz, 0.3 * sample_rate, 0.42 * sample_rate)
    if width <= 0 or not 0 < fc < sample_rate / 2:
        raise ConfigError(f"need click_us > 0 and 0 < fc_hz < Nyquist, got {width * 1e6} µs, {fc} Hz")
    click = _gabor(sample_rate, fc_hz=fc, sigma_s=width / 6)
    half = len(click) // 2
    times = _click_times(n, sample_rate, first=half, last=n - half - 1, ici_ms=ici0, ici_end_ms=ici1)
    return _render_clicks(click, times, r.uniform(0.75, 1.0, size=len(times)), amplitude)


def ocean_noise(rng: np.random.Generator | int, *, duration_s: float, sample_rate: int = DEFAULT_SR,
                rms: float = 0.003, colour: float = 1.0, low_hz: float = 50.0, shrimp_per_s: float = 8.0,
                shrimp_db: tuple[float, float] = (12.0, 30.0)) -> np.ndarray:
    """Ocean background: coloured Gaussian noise plus snapping-shrimp transients, float32.

    The coloured part has power spectral density ~ ``1/f**colour`` (0 white, 1 pink, 2 brown; flat below
    ``low_hz``, no DC) and RMS ``rms``. Shrimp snaps arrive as a Poisson process of ``shrimp_per_s`` per second:
    exponentially decaying (τ 0.05-0.3 ms) broadband bursts with peak ``rms`` * 10**(U(shrimp_db)/20).
    """
    r = _rng(rng)
    n = _n_samples(duration_s, sample_rate)
    if rms < 0 or shrimp_per_s < 0:
        raise ConfigError(f"rms and shrimp_per_s must be >= 0, got {rms!r}, {shrimp_per_s!r}")
    spec = sfft.rfft(r.standard_normal(n, dtype=np.float32))
    freqs = sfft.rfftfreq(n, 1.0 / sample_rate).astype(np.float32)
    spec *= np.maximum(freqs, np.float32(low_hz)) ** np.float32(-colour / 2)
    spec[0] = 0
    x = sfft.irfft(spec, n).astype(np.float64)
    x *= rms / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)
    k = int(r.poisson(shrimp_per_s * n / sample_rate))
    for pos, peak, tau in zip(r.integers(0, n, size=k), rms * 10 ** (r.uniform(*shrimp_db, size=k) / 20),
                              r.uniform(0.05e-3, 0.3e-3, size=k) * sample_rate):
        snap = r.standard_normal(int(np.ceil(5 * tau)) + 1) * np.exp(-np.arange(int(np.ceil(5 * tau)) + 1) / tau)
        snap = snap[: n - pos]
        x[pos:pos + len(snap)] += peak * snap / max(float(np.max(np.abs(snap))), 1e-12)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------- corpora
def _whistle_prototypes(rng: np.random.Generator, sample_rate: int, max_s: float) -> dict[str, dict]:
    """One prototype (whistle kwargs) per contour family: the whistle TYPES of a corpus."""
    top, bottom = min(20000.0, 0.45 * sample_rate) / 1.05, min(5000.0, 0.2 * sample_rate)
    span, protos = min(3000.0, 0.3 * (top - bottom)), {}
    for shape in WHISTLE_SHAPES:
        f_lo = rng.uniform(bottom, top - span)
        protos[shape] = dict(shape=shape, duration_s=rng.uniform(0.3, min(1.2, max_s / 1.08)), f_low_hz=f_lo,
                             f_high_hz=rng.uniform(f_lo + span, top), cycles=rng.uniform(1.0, 2.5),
                             harmonics=int(rng.integers(1, 3)))
    return protos


def _make_call(r: np.random.Generator, cls: str, *, sample_rate: int, max_s: float, protos: dict[str, dict],
               shape: str | None = None) -> tuple[np.ndarray, str]:
    """One call of class ``cls`` no longer than ``max_s`` seconds, and its call type."""
    if cls == "whistle":
        p = dict(protos[shape or WHISTLE_SHAPES[int(r.integers(len(WHISTLE_SHAPES)))]])
        s = r.uniform(0.96, 1.04)  # per-instance jitter: band, duration, modulation rate
        p.update(duration_s=min(max_s, p["duration_s"] * r.uniform(0.92, 1.08)), f_low_hz=p["f_low_hz"] * s,
                 f_high_hz=p["f_high_hz"] * s * r.uniform(0.98, 1.02), cycles=p["cycles"] * r.uniform(0.95, 1.05))
        return whistle(r, sample_rate=sample_rate, **p), p["shape"]
    if cls == "burst_pulse":
        return burst_pulse(r, sample_rate=sample_rate, duration_s=r.uniform(0.1, min(0.6, max_s))), cls
    if cls == "click_train":
        return click_train(r, sample_rate=sample_rate, duration_s=r.uniform(min(0.5, max_s), min(2.0, max_s))), cls
    raise ConfigError(f"unknown call class {cls!r}; expected one of {VOCAL_CLASSES}")


def _check_snr(snr_db: tuple[float, float]) -> None:
    if len(snr_db) != 2 or snr_db[0] > snr_db[1]:
        raise ConfigError(f"snr_db must be a (low, high) pair in dB with low <= high, got {snr_db!r}")


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}".rstrip("0").rstrip(".")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def make_clip_corpus(out_dir: str | Path, *, seed: int = 0, sample_rate: int = DEFAULT_SR, per_class: int = 24,
                     clip_seconds: float = 1.0, snr_db: tuple[float, float] = (0.0, 20.0),
                     noise_rms: float = 0.003) -> Corpus:
    """Write ``per_class`` mono PCM_16 WAV clips of ``clip_seconds`` s per class into ``out_dir/<class>/``.

    Files are ``<class>/<class>_NNNN.wav`` (so noise clips are ``noise/noise_NNNN.wav``). A vocal clip is one
    call at a random offset (>= 50 ms from either edge) in :func:`ocean_noise` at an SNR drawn from ``snr_db``;
    whistles cycle through the five contour families, each a seeded prototype plus per-instance jitter.
    ``labels.csv`` has columns ``filename,class,call_type,start,end,snr_db`` (filename relative to
    ``out_dir``, start/end of the call in s, empty for noise clips). Existing files are overwritten, not deleted.
    At the defaults (96 clips of 1 s at 48 kHz) this is ~9.2 MB.
    """
    if per_class < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class!r}")
    if clip_seconds < 0.5:
        raise ConfigError(f"clip_seconds must be >= 0.5 s to hold a call, got {clip_seconds!r}")
    _check_snr(snr_db)
    root = Path(out_dir)
    n = _n_samples(clip_seconds, sample_rate, "clip_seconds")
    margin = int(0.05 * sample_rate)
    max_s = (n - 2 * margin) / sample_rate
    protos = _whistle_prototypes(np.random.default_rng([seed, 1]), sample_rate, max_s)
    clips = []
    for ci, cls in enumerate(CLASSES):
        for i in range(per_class):
            r = np.random.default_rng([seed, 2, ci, i])
            buf = ocean_noise(r, duration_s=n / sample_rate, sample_rate=sample_rate, rms=noise_rms,
                              colour=r.uniform(0.7, 1.5)).astype(np.float64)
            name = f"{cls}/{cls}_{i:04d}.wav"
            if cls == "noise":
                ev = CorpusItem(name, None, None, cls, cls, None)
            else:
                call, ctype = _make_call(r, cls, sample_rate=sample_rate, max_s=max_s, protos=protos,
                                         shape=WHISTLE_SHAPES[i % len(WHISTLE_SHAPES)])
                off = int(r.integers(margin, n - margin - len(call) + 1))
                snr = _mix(buf, call, off, noise_rms=noise_rms, snr_db=r.uniform(*snr_db), sample_rate=sample_rate)
                ev = CorpusItem(name, round(off / sample_rate, 6), round((off + len(call)) / sample_rate, 6), cls,
                                ctype, snr)
            write_audio(root / name, np.clip(buf, -1.0, 1.0).astype(np.float32), sample_rate=sample_rate)
            clips.append(ev)
    labels_path = _write_csv(root / "labels.csv", ["filename", "class", "call_type", "start", "end", "snr_db"],
                             [[c.filename, c.label, c.call_type, _fmt(c.start), _fmt(c.end), _fmt(c.snr_db)]
                              for c in clips])
    return Corpus(root, int(sample_rate), float(clip_seconds), labels_path, tuple(clips))


def make_long_recording(path: str | Path, *, seconds: float = 60.0, seed: int = 0, sample_rate: int = DEFAULT_SR,
                        rate_per_min: float = 12.0, snr_db: tuple[float, float] = (0.0, 20.0),
                        noise_rms: float = 0.003, min_gap_s: float = 0.3) -> LongRecording:
    """Write one long mono PCM_16 recording of ocean noise with calls, and ``<stem>_annotations.csv`` beside it.

    ``round(rate_per_min * seconds / 60)`` calls (classes drawn uniformly from :data:`VOCAL_CLASSES`; whistles
    from the same seeded contour prototypes as :func:`make_clip_corpus`) are placed at random times, at least
    ``min_gap_s`` apart and from either end. The CSV has columns exactly ``filename,start,end,label`` (the WAV's
    base name, seconds, class). The whole file is built in memory, so ``seconds`` is limited to
    :data:`MAX_LONG_SECONDS` (600 s); at the defaults the WAV is ~5.8 MB.
    """
    if not 0 < seconds <= MAX_LONG_SECONDS:
        raise ConfigError(f"seconds must be in (0, {MAX_LONG_SECONDS:g}] (built in memory), got {seconds!r}")
    if rate_per_min < 0 or min_gap_s < 0:
        raise ConfigError(f"rate_per_min and min_gap_s must be >= 0, got {rate_per_min!r}, {min_gap_s!r}")
    _check_snr(snr_db)
    path = Path(path)
    n = _n_samples(seconds, sample_rate, "seconds")
    gap = int(round(min_gap_s * sample_rate))
    r = np.random.default_rng([seed, 3])
    protos = _whistle_prototypes(np.random.default_rng([seed, 1]), sample_rate, 1.2 * 1.08)
    k = int(round(rate_per_min * seconds / 60.0))
    labels = [VOCAL_CLASSES[c] for c in r.integers(len(VOCAL_CLASSES), size=k)]
    calls = [_make_call(np.random.default_rng([seed, 4, j]), cls, sample_rate=sample_rate, max_s=2.0, protos=protos)
             for j, cls in enumerate(labels)]
    free = n - sum(len(c) for c, _ in calls) - (k + 1) * gap
    if free < 0:
        raise ConfigError(f"{k} calls do not fit in {seconds} s with {min_gap_s} s gaps; "
                          f"lower rate_per_min ({rate_per_min}) or raise seconds")
    extra = np.floor(r.dirichlet(np.ones(k + 1)) * free).astype(np.int64)
    buf = ocean_noise(r, duration_s=n / sample_rate, sample_rate=sample_rate, rms=noise_rms,
                      colour=r.uniform(0.8, 1.3)).astype(np.float64)
    events, pos = [], 0
    for (call, ctype), label, ex in zip(calls, labels, extra):
        pos += gap + int(ex)
        snr = _mix(buf, call, pos, noise_rms=noise_rms, snr_db=r.uniform(*snr_db), sample_rate=sample_rate)
        events.append(CorpusItem(path.name, round(pos / sample_rate, 6), round((pos + len(call)) / sample_rate, 6),
                                 label, ctype, snr))
        pos += len(call)
    write_audio(path, np.clip(buf, -1.0, 1.0).astype(np.float32), sample_rate=sample_rate)
    ann = _write_csv(path.with_name(f"{path.stem}_annotations.csv"), ["filename", "start", "end", "label"],
                     [[e.filename, _fmt(e.start), _fmt(e.end), e.label] for e in events])
    return LongRecording(path, ann, int(sample_rate), float(n / sample_rate), tuple(events))
