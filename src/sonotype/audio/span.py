"""The one "where in the audio" value of the pipeline: samples ``[start, stop)`` of one channel of one file.

A detected region (:meth:`sonotype.detection.regions.Region.span`), a catalog clip for ``cluster-eval``,
a cluster member joined into a WAV (:func:`sonotype.store.export.join_spans`) and a span embedded into a
sequence (:mod:`sonotype.discovery.sequences`) are all a :class:`Span`.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class Span:
    """Samples ``[start, stop)`` of channel ``channel`` (0-based) of the file at ``path``, at the file's own rate.

    ``stop`` None means "to the end of the file": a whole catalog file, whose exact length some decoders
    (ffmpeg) only know once it is read. ``label`` is an expert's type for the span when known (the
    agreement scores of ``cluster-eval`` compare against it); ``key`` names the span in outputs
    (default: the file name, see :attr:`name`).
    """

    path: str
    channel: int = 0
    start: int = 0
    stop: int | None = None
    label: str | None = None
    key: str | None = None

    def __post_init__(self):
        def sample(v) -> bool:
            return isinstance(v, Integral) and not isinstance(v, bool) and v >= 0

        if not (sample(self.channel) and sample(self.start) and (self.stop is None or sample(self.stop))):
            raise ConfigError(f"{self.path}: span channel/start/stop must be integers >= 0 (stop may be None), got "
                              f"channel={self.channel!r}, start={self.start!r}, stop={self.stop!r}")
        if self.stop is not None and self.stop < self.start:
            raise ConfigError(f"{self.path}: span stop ({self.stop}) must be >= start ({self.start})")

    @property
    def name(self) -> str:
        """``key``, else the file's name."""
        return self.key or Path(self.path).name
