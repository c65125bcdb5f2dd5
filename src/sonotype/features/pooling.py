"""Max-pooling over time: the one rule by which every long spectrogram (or score track) is shrunk to fewer
columns, so that short clicks stay visible in thumbnails, recording overviews, report figures and
web pictures alike.

Shapes: ``T`` frames (time, axis 0), then any trailing axes (band bins ``B``).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError


def max_over_time(frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``(T, ...)`` -> ``(G, ...)``: row ``g`` is the per-bin maximum of ``frames[starts[g]:starts[g+1]]``
    (the last group runs to the end). ``starts`` are strictly increasing frame indices from 0."""
    starts = np.asarray(starts, np.int64)
    t = frames.shape[0]
    if starts.ndim != 1 or starts.size == 0 or starts[0] != 0 or starts[-1] >= max(t, 1) \
            or (starts.size > 1 and not (np.diff(starts) > 0).all()):
        raise ConfigError(f"group starts must rise strictly from 0 and stay below {t} frames, got "
                          f"{starts[:8].tolist()}{'...' if starts.size > 8 else ''}")
    return np.maximum.reduceat(frames, starts, axis=0)


def even_starts(n_frames: int, n_groups: int) -> np.ndarray:
    """Starts of ``n_groups`` groups of (nearly) equal length over ``n_frames`` frames (``n_frames >= n_groups``):
    frame ``i`` falls in group ``i * n_groups // n_frames``."""
    cols = np.arange(n_frames, dtype=np.int64) * n_groups // n_frames
    return np.r_[0, np.flatnonzero(np.diff(cols)) + 1]


def pool_time(frames: np.ndarray, max_rows: int, *, even: bool = False) -> tuple[np.ndarray, int]:
    """Max-pool ``frames`` ``(T, ...)`` in time so that at most ``max_rows`` rows remain.

    ``even`` False: groups of ``factor = ceil(T / max_rows)`` frames (the last may be shorter), so
    row ``k`` covers frames ``[k factor, (k+1) factor)``; True: exactly ``max_rows`` groups of nearly
    equal length. Returns ``(pooled, factor)``; ``frames`` itself and factor 1 when it already fits.
    """
    if int(max_rows) < 1:
        raise ConfigError(f"max_rows must be >= 1, got {max_rows!r}")
    n = frames.shape[0]
    if n <= max_rows:
        return frames, 1
    factor = math.ceil(n / max_rows)
    starts = even_starts(n, int(max_rows)) if even else np.arange(0, n, factor)
    return max_over_time(frames, starts), factor
