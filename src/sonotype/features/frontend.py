"""Spectrogram front end: vectorised STFT -> frequency band of ``n_bins`` -> log -> windows.

Shapes use ``F`` = frames, ``K`` = ``n_fft // 2 + 1`` FFT bins, ``B`` = ``n_bins`` band bins,
``W`` = frames per window (32), ``N`` = windows. Framing follows :mod:`sonotype.units`
(uncentred frames, no padding), so a file streamed block by block gives exactly the frames
and windows of the whole file at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.fft
import scipy.signal

from .. import units
from ..audio.io import DEFAULT_BLOCK, iter_blocks
from ..errors import AudioError, ConfigError

#: amplitude floor for the log scale (dB = 20*log10(max(|X|, AMIN)))
AMIN = 1e-5
#: magnitude scales of the front end
SCALES = ("log", "linear", "pcen")
#: PCEN constants (Lostanlen et al. 2019, "Per-channel energy normalization: why and how", their defaults):
#: gain alpha, bias delta, power r, floor eps. PCEN_SCALE multiplies the result so that a window's spread is
#: of the order of the dB front end's, and the per-window normalisation (x - mean) / (std + 1) treats both alike.
PCEN_GAIN, PCEN_BIAS, PCEN_POWER, PCEN_EPS, PCEN_SCALE = 0.98, 2.0, 0.5, 1e-6, 10.0


@dataclass(frozen=True)
class FrontEnd:
    """Front-end settings. Stored in every checkpoint and every detection run.

    ``n_fft`` and ``hop`` are in samples at the file's own rate unless ``reference_rate`` is
    set, in which case they are given at ``reference_rate`` and scaled to each file's rate so
    that frames last the same time whatever the rate. ``fmin``/``fmax`` are in Hz
    (``fmax=None``: Nyquist). ``scale`` is ``"log"`` (dB), ``"linear"`` magnitude or ``"pcen"``
    (per-channel energy normalisation of the magnitude, smoothed over ``pcen_time`` seconds; see :func:`pcen`).
    """

    n_fft: int = 512
    hop: int = 256
    fmin: float = 2000.0
    fmax: float | None = None
    n_bins: int = 256
    scale: str = "log"
    window: int = 32
    stride: int = 16
    reference_rate: float | None = None
    centre_bins: bool = False  # subtract each bin's mean over the window before normalising
    pcen_time: float = 0.4  # seconds: PCEN's smoothing time constant (scale 'pcen' only)

    def __post_init__(self):
        if self.n_fft < 8 or self.hop < 1 or self.hop > self.n_fft:
            raise ConfigError(f"need n_fft >= 8 and 1 <= hop <= n_fft, got n_fft={self.n_fft}, hop={self.hop}")
        if self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if not self.pcen_time > 0:
            raise ConfigError(f"pcen_time must be > 0 s, got {self.pcen_time}")
        if self.window < 2 or not 1 <= self.stride <= self.window:
            raise ConfigError(f"need window >= 2 and 1 <= stride <= window, got {self.window}/{self.stride}")
        if self.n_bins < 2:
            raise ConfigError(f"n_bins must be >= 2, got {self.n_bins}")
        if self.fmin < 0 or (self.fmax is not None and self.fmax <= self.fmin):
            raise ConfigError(f"need 0 <= fmin < fmax, got fmin={self.fmin}, fmax={self.fmax}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontEnd":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def at_rate(self, sample_rate: float) -> "Framing":
        """Concrete framing for a file at ``sample_rate`` Hz (validates the band against Nyquist)."""
        n_fft, hop = self.n_fft, self.hop
        if self.reference_rate:
            ratio = sample_rate / self.reference_rate
            n_fft, hop = max(8, int(round(n_fft * ratio))), max(1, int(round(hop * ratio)))
        nyq = sample_rate / 2
        fmax = nyq if self.fmax is None else self.fmax
        if self.fmin >= nyq or fmax > nyq + 1e-6:
            raise ConfigError(
                f"band {self.fmin:g}-{fmax:g} Hz does not fit under the Nyquist frequency {nyq:g} Hz of "
                f"{sample_rate:g} Hz audio; choose fmin/fmax below {nyq:g} Hz (e.g. --preset narw for 2 kHz data)")
        return Framing(sample_rate=float(sample_rate), n_fft=n_fft, hop=hop, fmin=float(self.fmin),
                       fmax=float(fmax), n_bins=self.n_bins, scale=self.scale,
                       window=self.window, stride=self.stride, centre_bins=self.centre_bins,
                       pcen_time=self.pcen_time)


#: named front ends. dolphin: the original's band (2 kHz to Nyquist); narw: right-whale upcalls (50-300 Hz)
#: at 2 kHz: hop 64 = 32 ms so that a 32-frame window (~1 s) matches a ~1 s upcall, band 30-400 Hz, and
#: per-bin centring against the steady ship/electrical tones of those recordings; orca: pulsed calls.
PRESETS: dict[str, FrontEnd] = {
    "dolphin": FrontEnd(),
    "narw": FrontEnd(n_fft=512, hop=64, fmin=30.0, fmax=400.0, centre_bins=True),
    "orca": FrontEnd(n_fft=1024, hop=256, fmin=300.0, fmax=12000.0),
}


def framing_for(frontend: FrontEnd, sample_rate: float, path: str | Path) -> "Framing":
    """``frontend.at_rate(sample_rate)`` with the file named in any error."""
    try:
        return frontend.at_rate(sample_rate)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


@dataclass(frozen=True)
class Framing:
    """A :class:`FrontEnd` resolved for one sample rate. Use it for every index <-> time conversion."""

    sample_rate: float
    n_fft: int
    hop: int
    fmin: float
    fmax: float
    n_bins: int
    scale: str
    window: int
    stride: int
    centre_bins: bool = False
    pcen_time: float = 0.4
    band: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "band", band_matrix(self.sample_rate, n_fft=self.n_fft, fmin=self.fmin,
                                                     fmax=self.fmax, n_bins=self.n_bins))

    @property
    def window_samples(self) -> int:
        """Samples covered by one window (its full span)."""
        return (self.window - 1) * self.hop + self.n_fft

    @property
    def stride_samples(self) -> int:
        return self.stride * self.hop

    @property
    def stride_s(self) -> float:
        return self.stride_samples / self.sample_rate

    def n_frames(self, n_samples: int) -> int:
        return units.n_frames(n_samples, n_fft=self.n_fft, hop=self.hop)

    def n_windows(self, n_samples: int) -> int:
        return units.n_windows(self.n_frames(n_samples), window=self.window, stride=self.stride)

    def window_span(self, index: int) -> tuple[int, int]:
        """Full sample span of window ``index``."""
        return units.window_sample_span(index, window=self.window, stride=self.stride, n_fft=self.n_fft, hop=self.hop)

    def window_times(self, count: int) -> np.ndarray:
        """``(count, 2)`` start/stop seconds of the full span of windows ``0..count-1``."""
        starts = np.arange(count) * self.stride_samples
        return np.stack([starts, starts + self.window_samples], axis=1) / self.sample_rate


@dataclass(frozen=True)
class WindowGrid:
    """Windows of one length every fixed step, in samples of a recording at ``sample_rate``: the
    index <-> time conversions of :class:`Framing` for an embedding backend's grid (window ``i`` spans
    ``[i stride, i stride + window)``). Lengths are floats: a backend's hop, played ``speedup`` times
    faster and converted to its own rate, need not fall on the recording's samples."""

    sample_rate: float
    window_samples: float
    stride_samples: float

    def __post_init__(self):
        if not (self.sample_rate > 0 and self.window_samples > 0 and self.stride_samples > 0):
            raise ConfigError(f"a window grid needs a positive rate, window and stride; got {self}")

    @property
    def stride_s(self) -> float:
        return self.stride_samples / self.sample_rate

    def window_span(self, index: int) -> tuple[int, int]:
        """Sample span ``[start, stop)`` of window ``index`` (rounded to samples)."""
        a = index * self.stride_samples
        return int(round(a)), int(round(a + self.window_samples))

    def window_times(self, count: int) -> np.ndarray:
        """``(count, 2)`` start/stop seconds of windows ``0..count-1``."""
        starts = np.arange(count) * self.stride_samples
        return np.stack([starts, starts + self.window_samples], axis=1) / self.sample_rate


@lru_cache(maxsize=64)
def _band_matrix(sample_rate: float, n_fft: int, fmin: float, fmax: float, n_bins: int) -> np.ndarray:
    k = n_fft // 2 + 1
    fft_freqs = np.arange(k) * sample_rate / n_fft  # (K,) Hz
    centres = np.linspace(fmin, fmax, n_bins)  # (B,) Hz
    out_step = (fmax - fmin) / (n_bins - 1)
    in_step = sample_rate / n_fft
    m = np.zeros((k, n_bins), np.float64)
    if out_step < in_step:
        # band bins finer than FFT bins: linear interpolation between the two nearest FFT bins
        pos = centres / in_step
        lo = np.clip(np.floor(pos).astype(int), 0, k - 1)
        hi = np.clip(lo + 1, 0, k - 1)
        frac = pos - lo
        np.add.at(m, (lo, np.arange(n_bins)), 1.0 - frac)
        np.add.at(m, (hi, np.arange(n_bins)), frac)
    else:
        # band bins coarser than FFT bins: mean of the FFT bins whose centre falls in each cell
        edges = np.concatenate([[fmin - out_step / 2], (centres[:-1] + centres[1:]) / 2, [fmax + out_step / 2]])
        cell = np.searchsorted(edges, fft_freqs, side="right") - 1
        for b in range(n_bins):
            members = np.nonzero(cell == b)[0]
            if members.size == 0:
                members = np.array([int(np.clip(round(centres[b] / in_step), 0, k - 1))])
            m[members, b] = 1.0 / members.size
    m = m.astype(np.float32)
    m.setflags(write=False)
    return m


def band_matrix(sample_rate: float, *, n_fft: int, fmin: float, fmax: float, n_bins: int) -> np.ndarray:
    """``(K, B)`` matrix mapping FFT magnitudes to ``B`` bins evenly spaced from ``fmin`` to ``fmax`` Hz.

    Band bins finer than FFT bins are linearly interpolated; coarser ones average the FFT bins
    they cover. Each column sums to 1, so a flat spectrum stays flat.
    """
    return _band_matrix(float(sample_rate), int(n_fft), float(fmin), float(fmax), int(n_bins))


@lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    # periodic Hann, the usual STFT window
    w = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    w.setflags(write=False)
    return w


def stft_magnitude(x: np.ndarray, *, n_fft: int, hop: int) -> np.ndarray:
    """Magnitude STFT of a mono signal, uncentred Hann frames.

    x: ``(n,)`` samples. Returns ``(F, K)`` float32 with ``F = units.n_frames(n)`` and ``K = n_fft//2+1``.
    """
    x = np.asarray(x, dtype=np.float32)
    f = units.n_frames(x.shape[0], n_fft=n_fft, hop=hop)
    if f == 0:
        return np.zeros((0, n_fft // 2 + 1), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:f]  # (F, n_fft) view
    spec = scipy.fft.rfft(frames * _hann(n_fft), axis=1)  # (F, K) complex64 (scipy keeps float32)
    return np.abs(spec).astype(np.float32, copy=False)


def pcen_smoothing(time_constant: float, *, sample_rate: float, hop: int) -> float:
    """PCEN's one-pole smoothing coefficient ``s`` for a time constant in seconds (frames ``hop`` samples apart)."""
    t = time_constant * sample_rate / hop  # frames
    return float((np.sqrt(1.0 + 4.0 * t * t) - 1.0) / (2.0 * t * t))


def pcen(mag: np.ndarray, *, smoothing: float, state: np.ndarray | None = None, gain: float = PCEN_GAIN,
         bias: float = PCEN_BIAS, power: float = PCEN_POWER, eps: float = PCEN_EPS
         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel energy normalisation (Lostanlen et al. 2019) of magnitudes ``mag`` ``(F, B)``.

    ``M[t] = (1 - s) M[t-1] + s E[t]`` smooths each bin over time (``s`` = ``smoothing``); the output is
    ``PCEN_SCALE * ((E / (eps + M)**gain + bias)**power - bias**power)`` ``(F, B)`` float32. ``state`` is the
    ``(B,)`` smoother value before the first frame (None: the first frame's own, a steady start); the
    returned state continues the stream, so blocks processed one after the other give the whole file's frames.
    """
    e = np.asarray(mag, np.float64)  # (F, B)
    if e.shape[0] == 0:
        return np.zeros(e.shape, np.float32), (np.zeros(e.shape[1]) if state is None else state)
    prev = e[0] if state is None else np.asarray(state, np.float64)  # (B,)
    zi = ((1.0 - smoothing) * prev)[None, :]  # (1, B) lfilter state of y[n] = s x[n] + (1 - s) y[n-1]
    m, _ = scipy.signal.lfilter([smoothing], [1.0, smoothing - 1.0], e, axis=0, zi=zi)  # (F, B)
    out = (e / (eps + m) ** gain + bias) ** power - bias ** power
    return (PCEN_SCALE * out).astype(np.float32), m[-1]


def band_magnitude(x: np.ndarray, framing: Framing) -> np.ndarray:
    """Band magnitudes ``(F, B)`` float32 of mono samples ``x`` ``(n,)``."""
    return stft_magnitude(x, n_fft=framing.n_fft, hop=framing.hop) @ framing.band  # (F, B)


def scale_frames(mag: np.ndarray, framing: Framing, *, state: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Band magnitudes ``(F, B)`` -> the front end's scale; returns the frames and the PCEN state (else None)."""
    if framing.scale == "log":
        return 20.0 * np.log10(np.maximum(mag, AMIN)), None
    if framing.scale == "pcen":
        return pcen(mag, smoothing=pcen_smoothing(framing.pcen_time, sample_rate=framing.sample_rate,
                                                   hop=framing.hop), state=state)
    return mag, None


def spectrogram(x: np.ndarray, framing: Framing) -> np.ndarray:
    """Band spectrogram ``(F, B)`` float32 of mono samples ``x`` ``(n,)``: dB if ``framing.scale == 'log'``,
    PCEN (from a steady start at the first frame) if 'pcen', else magnitude."""
    return scale_frames(band_magnitude(x, framing), framing)[0]


def normalise(windows: np.ndarray, *, centre_bins: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-window normalisation ``(x - mean) / (std + 1)``.

    windows: ``(N, W, B)``. Returns the normalised windows ``(N, W, B)`` float32, the ``offset``
    subtracted (``(N, 1, 1)``, or ``(N, 1, B)`` with ``centre_bins``) and the ``scale`` ``(N, 1, 1)``,
    so that a target frame can be normalised alike. With ``centre_bins`` each frequency bin's mean
    over the window is subtracted first (removes steady tones and coloured background inside the
    window). All-constant windows (digital silence) become zeros, never NaN.
    """
    w = np.asarray(windows, dtype=np.float32)
    offset = w.mean(axis=1, keepdims=True) if centre_bins else w.mean(axis=(1, 2), keepdims=True)
    centred = w - offset
    scale = centred.std(axis=(1, 2), keepdims=True) + 1.0
    return centred / scale, offset, scale


def frames_to_windows(frames: np.ndarray, *, window: int, stride: int, centre_bins: bool = False) -> np.ndarray:
    """All whole windows of a frame sequence, normalised. frames ``(F, B)`` -> ``(N, W, B)`` float32."""
    n = units.n_windows(frames.shape[0], window=window, stride=stride)
    if n == 0:
        return np.zeros((0, window, frames.shape[1]), np.float32)
    view = np.lib.stride_tricks.sliding_window_view(frames, window, axis=0)[::stride][:n]  # (N, B, W)
    return normalise(view.transpose(0, 2, 1), centre_bins=centre_bins)[0]


def span_windows(frames: np.ndarray, framing: Framing) -> np.ndarray:
    """Normalised windows ``(N, W, B)`` of a span's frames ``(F, B)``; a span shorter than one window
    is padded by repeating its edge frames so that every clip yields at least one window."""
    f = frames.shape[0]
    if f < framing.window:
        lead = (framing.window - f) // 2
        frames = np.pad(frames, ((lead, framing.window - f - lead), (0, 0)), mode="edge")
    return frames_to_windows(frames, window=framing.window, stride=framing.stride, centre_bins=framing.centre_bins)


def iter_frames(path: str | Path, frontend: FrontEnd, *, channel: int = 0, sample_rate: float,
                block_frames: int = DEFAULT_BLOCK, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a file's band spectrogram: yields ``(first_frame_index, frames (f, B))`` chunks.

    Frames are counted from sample ``start``. Blocks are read ``block_frames`` samples at a time
    and the samples of a frame that straddles two blocks are carried over, so the frames are
    identical to ``spectrogram`` of the whole file.
    """
    framing = framing_for(frontend, sample_rate, path)
    carry = np.zeros(0, np.float32)
    next_frame = 0
    state = None  # PCEN's smoother, carried from block to block
    for block in iter_blocks(path, channel=channel, block_frames=block_frames, start=start, stop=stop):
        buf = np.concatenate([carry, block.samples]) if carry.size else block.samples
        f = framing.n_frames(buf.shape[0])
        if f:
            frames, state = scale_frames(band_magnitude(buf[: (f - 1) * framing.hop + framing.n_fft], framing), framing,
                                         state=state)
            yield next_frame, frames
            next_frame += f
            buf = buf[f * framing.hop:]
        carry = buf


@dataclass(frozen=True)
class WindowBatch:
    """Consecutive normalised windows ``first .. first+len-1`` of one file."""

    first: int
    windows: np.ndarray  # (N, W, B) float32, normalised

    def __len__(self) -> int:
        return self.windows.shape[0]


def iter_windows(path: str | Path, frontend: FrontEnd, *, channel: int = 0, sample_rate: float,
                 batch: int = 64, block_frames: int = DEFAULT_BLOCK) -> Iterator[WindowBatch]:
    """Stream a file as batches of at most ``batch`` normalised windows, in order, bounded memory."""
    framing = framing_for(frontend, sample_rate, path)
    for first, chunk in iter_frame_chunks(path, frontend, channel=channel, sample_rate=sample_rate, batch=batch,
                                           block_frames=block_frames):
        yield WindowBatch(first, frames_to_windows(chunk, window=framing.window, stride=framing.stride,
                                                   centre_bins=framing.centre_bins))


def iter_frame_chunks(path: str | Path, frontend: FrontEnd, *, channel: int = 0, sample_rate: float,
                       batch: int = 64, block_frames: int = DEFAULT_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a file as ``(first window index, frames (f, n_bins))``: the raw frames that hold the next at
    most ``batch`` whole windows (``f = (n - 1) * stride + window``), in order, bounded memory."""
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    framing = framing_for(frontend, sample_rate, path)
    w, s = framing.window, framing.stride
    pending = np.zeros((0, framing.n_bins), np.float32)  # frames not yet used by a whole window
    next_window = 0
    for _, frames in iter_frames(path, frontend, channel=channel, sample_rate=sample_rate, block_frames=block_frames):
        pending = np.concatenate([pending, frames]) if pending.size else frames
        n = units.n_windows(pending.shape[0], window=w, stride=s)
        for i in range(0, n, batch):
            j = min(n, i + batch)
            yield next_window + i, pending[i * s:(j - 1) * s + w]
        next_window += n
        pending = pending[n * s:]


def file_windows(path: str | Path, frontend: FrontEnd, *, channel: int = 0, sample_rate: float) -> np.ndarray:
    """All normalised windows of a (short) file, ``(N, W, B)``. Raises if the file is shorter than one window."""
    batches = [b.windows for b in iter_windows(path, frontend, channel=channel, sample_rate=sample_rate, batch=1 << 16)]
    if not batches:
        framing = frontend.at_rate(sample_rate)
        raise AudioError(path, f"too short for one window: needs at least {framing.window_samples} samples "
                               f"({framing.window_samples / sample_rate:.3f} s) at this front end")
    return np.concatenate(batches)


def with_overrides(frontend: FrontEnd, **overrides) -> FrontEnd:
    """Copy of ``frontend`` with the given non-None fields replaced."""
    return replace(frontend, **{k: v for k, v in overrides.items() if v is not None})
