"""Spectrogram pictures: band spectrograms of any span of a recording as PNG bytes (numpy + Pillow).

The colour table and the level rule (:func:`levels`) are defined here, for the web pictures and the
report's figures alike (:mod:`sonotype.report._plot` builds its colour map from this table): a ramp
in the Oklab perceptual colour space whose lightness rises linearly from dark violet through red and
orange to pale yellow, so equal steps in dB look like equal steps in brightness (and the picture still
reads in grey scale).

Shapes: ``F`` frames (time), ``B`` band bins (frequency, low to high), ``W`` x ``H`` pixels.
Pictures put time on x (left to right) and frequency on y (low at the bottom).
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .frontend import FrontEnd, framing_for, iter_frames
from .pooling import max_over_time

#: largest picture this module makes, pixels per side (a guard against runaway requests)
MAX_PIXELS_SIDE = 8192
#: entries of the colour table pictures and report figures use
N_COLOURS = 256


# ---------------------------------------------------------------------------- colour table


def _oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """``(n, 3)`` Oklab (L, a, b) -> ``(n, 3)`` sRGB in [0, 1] (not clipped: out-of-gamut values exceed it)."""
    lab = np.asarray(lab, np.float64)
    to_lms = np.array([[1.0, 0.3963377774, 0.2158037573],
                       [1.0, -0.1055613458, -0.0638541728],
                       [1.0, -0.0894841775, -1.2914855480]])
    to_rgb = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                       [-1.2684380046, 2.6097574011, -0.3413193965],
                       [-0.0041960863, -0.7034186147, 1.7076147010]])
    linear = ((lab @ to_lms.T) ** 3) @ to_rgb.T
    a = np.abs(linear)
    enc = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1 / 2.4) - 0.055)
    return np.sign(linear) * enc


@lru_cache(maxsize=4)
def colour_table(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 sRGB colours, dark to bright; entry 0 is for the quietest level.

    Lightness L goes linearly from 0.16 to 0.96 (Oklab), hue turns from violet (285 deg) through
    magenta, red and orange to yellow (95 deg), chroma rises and falls smoothly; where a colour
    would leave the sRGB gamut its chroma is reduced until it fits.
    """
    if not 2 <= int(n) <= 4096:
        raise ConfigError(f"colour table size must be 2..4096, got {n!r}")
    t = np.linspace(0.0, 1.0, int(n))
    lightness = 0.16 + 0.80 * t
    hue = np.deg2rad(285.0 + 170.0 * t)
    chroma = 0.03 + 0.16 * np.sin(np.pi * np.clip(t * 1.1, 0, 1)) ** 0.7
    def lab(c: np.ndarray) -> np.ndarray:
        return np.stack([lightness, c * np.cos(hue), c * np.sin(hue)], axis=1)

    def inside(c: np.ndarray) -> np.ndarray:
        rgb = _oklab_to_srgb(lab(c))
        return np.all((rgb >= -1e-9) & (rgb <= 1 + 1e-9), axis=1)

    ok, bad = np.zeros_like(chroma), chroma.copy()  # grey (chroma 0) is always inside the gamut
    fits = inside(chroma)
    for _ in range(40):  # bisection for the largest chroma <= the wanted one that stays inside sRGB
        mid = (ok + bad) / 2
        good = inside(mid)
        ok, bad = np.where(good, mid, ok), np.where(good, bad, mid)
    out = np.clip(_oklab_to_srgb(lab(np.where(fits, chroma, ok))), 0, 1)
    table = np.round(out * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


# ---------------------------------------------------------------------------- pixels from frames


class ColumnPooler:
    """Reduce a stream of spectrogram frames to ``width`` picture columns.

    ``total`` frames are expected in order (chunks of ``(f, B)``). With more frames than columns each
    column keeps the per-bin maximum of its frames (short clicks stay visible); with fewer, frames are
    repeated (nearest frame). Columns no frame reached (a file shorter than its header said) are NaN.
    """

    def __init__(self, total: int, *, width: int, bins: int):
        if total < 0 or width < 1 or bins < 1:
            raise ConfigError(f"need total >= 0 frames, width >= 1, bins >= 1; got {total}, {width}, {bins}")
        self.total, self.width, self.bins = int(total), int(width), int(bins)
        self._stretch = self.total <= self.width
        rows = max(self.total, 1) if self._stretch else self.width
        self._out = np.full((rows, self.bins), -np.inf, np.float32)

    def add(self, first: int, frames: np.ndarray) -> None:
        """Frames ``first .. first + len(frames) - 1`` (indices counted from the span's start)."""
        frames = np.asarray(frames, np.float32)
        n = min(frames.shape[0], self.total - first)
        if n <= 0:
            return
        frames = frames[:n]
        if self._stretch:
            self._out[first:first + n] = frames
            return
        cols = (np.arange(first, first + n, dtype=np.int64) * self.width) // self.total
        starts = np.r_[0, np.flatnonzero(np.diff(cols)) + 1]
        pooled = max_over_time(frames, starts)  # (columns touched, B)
        where = cols[starts]
        self._out[where] = np.maximum(self._out[where], pooled)

    def result(self) -> np.ndarray:
        """``(width, B)`` float32 columns (NaN where no frame arrived)."""
        out = self._out
        if self._stretch:
            idx = ((np.arange(self.width) + 0.5) * max(self.total, 1) / self.width).astype(np.int64)
            out = out[np.minimum(idx, out.shape[0] - 1)]
        return np.where(np.isfinite(out), out, np.nan).astype(np.float32)


def levels(values: np.ndarray, *, low_pct: float = 20.0, high_pct: float = 99.9, min_range: float = 30.0
           ) -> tuple[float, float]:
    """(floor, ceiling) in dB for colouring: the ``low_pct`` and ``high_pct`` percentiles of the finite
    values, at least ``min_range`` dB apart (quiet recordings then do not show their noise as colour)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return -100.0, -100.0 + min_range
    lo, hi = np.percentile(v, [low_pct, high_pct])
    return float(lo), float(max(hi, lo + min_range))


def to_rgb(columns: np.ndarray, *, floor: float, ceiling: float, height: int) -> np.ndarray:
    """Colour ``(W, B)`` dB columns as an ``(height, W, 3)`` uint8 picture, low frequencies at the bottom.

    Values are scaled linearly from ``floor`` (first colour) to ``ceiling`` dB (last colour), see
    :func:`colour_indices`; NaN (no data) is drawn as the first colour. The B bins are linearly
    interpolated to ``height`` rows.
    """
    c = np.asarray(columns, np.float32)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ConfigError(f"columns must be a non-empty (width, bins) array, got shape {c.shape}")
    _check_size(c.shape[0], height)
    if not (np.isfinite(floor) and np.isfinite(ceiling) and ceiling > floor):
        raise ConfigError(f"need finite floor < ceiling (dB), got floor={floor!r}, ceiling={ceiling!r}")
    b = c.shape[1]
    pos = (np.arange(height)[::-1] + 0.5) * b / height - 0.5  # row 0 = top = highest bin
    lo = np.clip(np.floor(pos).astype(np.int64), 0, b - 1)
    hi = np.minimum(lo + 1, b - 1)
    frac = np.clip(pos - lo, 0, 1)[:, None]
    with np.errstate(invalid="ignore"):  # a NaN/-inf neighbour must not spill into a row that lies on a bin
        rows = np.where(frac == 0, c.T[lo], c.T[lo] * (1 - frac) + c.T[hi] * frac)  # (H, W)
    return colour_table(N_COLOURS)[colour_indices(rows, floor=floor, ceiling=ceiling)]


def colour_indices(values: np.ndarray, *, floor: float, ceiling: float, n: int = N_COLOURS) -> np.ndarray:
    """Entries of the ``n``-colour table for dB ``values`` (any shape): ``floor`` .. ``ceiling`` split into
    ``n`` equal steps, below the floor the first colour, from the ceiling on the last, NaN the first.
    This is matplotlib's rule for a ``ListedColormap`` with ``vmin=floor, vmax=ceiling``, so the report's
    figures (:func:`sonotype.report._plot.spectrogram_style`) colour a level as these pictures do."""
    t = (np.asarray(values, np.float64) - floor) / (ceiling - floor) * n
    return np.clip(np.nan_to_num(np.floor(t), nan=0.0, posinf=n - 1, neginf=0.0), 0, n - 1).astype(np.int64)


def png_bytes(rgb: np.ndarray, *, compress_level: int = 3) -> bytes:
    """An ``(H, W, 3)`` uint8 picture as PNG bytes."""
    buf = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8), "RGB").save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


# ---------------------------------------------------------------------------- from a recording


@dataclass(frozen=True)
class SpanPicture:
    """The pooled dB columns of one span of one recording and the frequency band they show (Hz)."""

    columns: np.ndarray  # (W, B) float32 dB, NaN where there was no audio
    fmin: float
    fmax: float
    start: int  # first sample of the span
    stop: int  # one past the last sample


def display_frontend(frontend: FrontEnd | None) -> FrontEnd:
    """The front end a picture is drawn with: the run's band, always in dB."""
    return replace(frontend or FrontEnd(fmin=0.0), scale="log")


def span_columns(path: str | Path, *, frontend: FrontEnd | None, channel: int, sample_rate: float, start: int,
                 stop: int, width: int) -> SpanPicture:
    """Stream samples ``[start, stop)`` of ``path`` (one channel) through the band spectrogram of
    ``frontend`` (None: the default STFT over 0 Hz..Nyquist) and pool it into ``width`` columns.

    Memory stays bounded by the decoder's block and the picture, whatever the span. A band that
    does not fit under the file's Nyquist frequency falls back to 0 Hz..Nyquist.
    """
    fe = display_frontend(frontend)
    try:
        framing = framing_for(fe, sample_rate, path)
    except ConfigError:
        fe = replace(fe, fmin=0.0, fmax=None)
        framing = framing_for(fe, sample_rate, path)
    _check_size(width, 1)
    if not 0 <= int(start) < int(stop):
        raise ConfigError(f"{path}: need 0 <= start < stop (samples), got start={start}, stop={stop}")
    pool = ColumnPooler(framing.n_frames(int(stop) - int(start)), width=width, bins=framing.n_bins)
    for first, frames in iter_frames(path, fe, channel=channel, sample_rate=sample_rate, start=int(start),
                                     stop=int(stop)):
        pool.add(first, frames)
    return SpanPicture(pool.result(), framing.fmin, framing.fmax, int(start), int(stop))


def _check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not 1 <= int(v) <= MAX_PIXELS_SIDE:
            raise ConfigError(f"picture {name} must be 1..{MAX_PIXELS_SIDE} pixels, got {v!r}")


def render_span(path: str | Path, *, frontend: FrontEnd | None, channel: int, sample_rate: float, start: int,
                stop: int, width: int, height: int, floor: float, ceiling: float) -> tuple[bytes, SpanPicture]:
    """PNG bytes (``width`` x ``height`` pixels, ``floor``..``ceiling`` dB) of samples ``[start, stop)``."""
    pic = span_columns(path, frontend=frontend, channel=channel, sample_rate=sample_rate, start=start, stop=stop,
                       width=width)
    return png_bytes(to_rgb(pic.columns, floor=floor, ceiling=ceiling, height=height)), pic
