"""All sample / frame / window / second conversions, in one place.

Conventions (used everywhere in sonotype):

* STFT frames are *not* centred: frame ``f`` covers samples ``[f*hop, f*hop + n_fft)``.
  A signal of ``n`` samples has ``1 + (n - n_fft) // hop`` frames (0 if ``n < n_fft``).
* Window ``w`` (``window`` frames, ``stride`` frames apart) covers frames
  ``[w*stride, w*stride + window)`` and so samples
  ``[w*stride*hop, (w*stride + window - 1)*hop + n_fft)``.
* The *nominal span* of window ``w`` is its stride-cell ``[w*stride*hop, (w+1)*stride*hop)``
  (the original's region rule); its *full span* is the sample range above.
* Seconds are ``samples / sample_rate`` (float); sample indices are ints.
"""

from __future__ import annotations

from .errors import ConfigError


def seconds_to_samples(seconds: float, *, sample_rate: float) -> int:
    """Round a time in seconds to the nearest sample index."""
    return int(round(float(seconds) * float(sample_rate)))


def samples_to_seconds(samples: int, *, sample_rate: float) -> float:
    """Sample count or index -> seconds."""
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be > 0, got {sample_rate!r}")
    return float(samples) / float(sample_rate)


def n_frames(n_samples: int, *, n_fft: int, hop: int) -> int:
    """Number of whole (uncentred) STFT frames in ``n_samples`` samples."""
    if n_samples < n_fft:
        return 0
    return 1 + (n_samples - n_fft) // hop


def frame_start(frame: int, *, hop: int) -> int:
    """First sample of STFT frame ``frame``."""
    return frame * hop


def n_windows(num_frames: int, *, window: int, stride: int) -> int:
    """Number of whole windows of ``window`` frames, ``stride`` apart, in ``num_frames`` frames."""
    if num_frames < window:
        return 0
    return 1 + (num_frames - window) // stride


def window_first_frame(index: int, *, stride: int) -> int:
    """Index of the first frame of window ``index``."""
    return index * stride


def window_sample_span(index: int, *, window: int, stride: int, n_fft: int, hop: int) -> tuple[int, int]:
    """Full sample span ``[start, stop)`` of window ``index`` (every sample its frames touch)."""
    start = index * stride * hop
    return start, (index * stride + window - 1) * hop + n_fft


def window_nominal_span(index: int, *, stride: int, hop: int) -> tuple[int, int]:
    """Nominal sample span ``[start, stop)`` of window ``index``: one stride of frames."""
    start = index * stride * hop
    return start, start + stride * hop


def samples_for_windows(count: int, *, window: int, stride: int, n_fft: int, hop: int) -> int:
    """Fewest samples that hold ``count`` whole windows."""
    if count <= 0:
        return 0
    return window_sample_span(count - 1, window=window, stride=stride, n_fft=n_fft, hop=hop)[1]


def windows_overlapping(start_s: float, stop_s: float, *, sample_rate: float, window: int, stride: int,
                        n_fft: int, hop: int, total_windows: int) -> range:
    """Indices of windows whose full span overlaps the time interval ``[start_s, stop_s)`` (seconds)."""
    a = seconds_to_samples(start_s, sample_rate=sample_rate)
    b = seconds_to_samples(stop_s, sample_rate=sample_rate)
    length = (window - 1) * hop + n_fft
    step = stride * hop
    # window w overlaps iff w*step < b and w*step + length > a
    first = max(0, -(-(a - length + 1) // step)) if a - length + 1 > 0 else 0
    last = min(total_windows - 1, (b - 1) // step) if b > 0 else -1
    return range(first, last + 1)
