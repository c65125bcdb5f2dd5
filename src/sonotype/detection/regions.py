"""Per-window detector scores -> non-silent regions (the original's rule, made explicit).

Windows scoring at or above the threshold become spans of samples; spans closer than
``merge_gap`` seconds are merged; regions shorter than ``min_duration`` seconds are dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..audio.span import Span
from ..errors import ConfigError
from ..features.frontend import Framing, WindowGrid


@dataclass(frozen=True)
class Region:
    """A detected non-silent stretch of one recording. Samples at the recording's own rate."""

    start: int  # first sample
    stop: int  # one past the last sample
    sample_rate: float
    peak_score: float
    mean_score: float
    first_window: int
    n_windows: int

    @property
    def start_s(self) -> float:
        return units.samples_to_seconds(self.start, sample_rate=self.sample_rate)

    @property
    def stop_s(self) -> float:
        return units.samples_to_seconds(self.stop, sample_rate=self.sample_rate)

    @property
    def duration_s(self) -> float:
        return self.stop_s - self.start_s

    def to_dict(self) -> dict:
        return {**asdict(self), "start_s": self.start_s, "stop_s": self.stop_s}

    def span(self, path: str | Path, *, channel: int = 0, framing: Framing | WindowGrid | None = None) -> Span:
        """The region's samples in ``path`` (channel ``channel``) as a :class:`~sonotype.audio.span.Span`.

        With the framing the region was detected with, the span is that of its windows exactly (the
        detector's windows are reproduced); else ``[start, stop)``.
        """
        if framing is not None and self.n_windows > 0:
            start = framing.window_span(self.first_window)[0]
            stop = framing.window_span(self.first_window + self.n_windows - 1)[1]
        else:
            start, stop = self.start, self.stop
        return Span(str(path), int(channel), int(start), int(stop))


@dataclass(frozen=True)
class RegionRule:
    """How windows become regions. ``span``: 'full' = every sample a positive window covers;
    'nominal' = the original's one-stride cell per window."""

    threshold: float = 0.5
    merge_gap: float = 0.1  # seconds
    min_duration: float = 0.0  # seconds; regions shorter than this are dropped
    span: str = "full"

    def __post_init__(self):
        if self.span not in ("full", "nominal"):
            raise ConfigError(f"span must be 'full' or 'nominal', got {self.span!r}")
        if self.merge_gap < 0 or self.min_duration < 0:
            raise ConfigError(f"merge_gap and min_duration must be >= 0 s, got {self.merge_gap}, {self.min_duration}")

    def to_dict(self) -> dict:
        return asdict(self)


def find_regions(scores: np.ndarray, framing: Framing | WindowGrid, *, rule: RegionRule, n_samples: int | None = None,
                 first_window: int = 0) -> list[Region]:
    """Regions from the scores ``(N,)`` of consecutive windows starting at window ``first_window``.

    ``n_samples`` (the recording's length) clips the last region. Regions are sorted and disjoint. ``framing``:
    the detector's (a :class:`~sonotype.features.frontend.WindowGrid` for an embedding backend's windows).
    """
    s = np.asarray(scores, np.float64)
    on = np.nonzero(s >= rule.threshold)[0]
    if on.size == 0:
        return []
    step = framing.stride_samples
    length = framing.window_samples if rule.span == "full" else step
    gap = units.seconds_to_samples(rule.merge_gap, sample_rate=framing.sample_rate)
    starts = (on + first_window) * step
    stops = starts + length
    # a new region begins where a window starts more than `gap` after the running stop
    run_stop = np.maximum.accumulate(stops)
    new = np.r_[True, starts[1:] > run_stop[:-1] + gap]
    group = np.cumsum(new) - 1
    out = []
    for g in range(group[-1] + 1):
        idx = np.nonzero(group == g)[0]
        a, b = int(round(starts[idx[0]])), int(round(run_stop[idx[-1]]))  # a backend's grid: float samples
        if n_samples is not None:
            b = min(b, int(n_samples))
        if (b - a) / framing.sample_rate < rule.min_duration:
            continue
        sc = s[on[idx]]
        out.append(Region(a, b, framing.sample_rate, float(sc.max()), float(sc.mean()), int(on[idx[0]] + first_window),
                          int(idx.size)))
    return out
