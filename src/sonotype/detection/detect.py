"""Detection over one recording: stream it, score every window, turn scores into regions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import DEFAULT_BLOCK, Recording, open_recording
from ..features.frontend import framing_for
from ..models.checkpoint import LoadedModel
from ..models.embed import file_scores
from ..models.infer import Scorer
from .backend import BackendDetector
from .fusion import FusedDetector
from .regions import Region, RegionRule, find_regions


@dataclass(frozen=True)
class FileDetection:
    recording: Recording
    scores: np.ndarray  # (N,) P(vocalisation) per window
    regions: tuple[Region, ...]
    seconds: float  # wall time spent

    @property
    def n_windows(self) -> int:
        return int(self.scores.shape[0])


def default_rule(model: LoadedModel | BackendDetector, **overrides) -> RegionRule:
    """The region rule with the model's validated threshold unless ``threshold`` is given."""
    kw = {k: v for k, v in overrides.items() if v is not None}
    kw.setdefault("threshold", model.threshold)
    return RegionRule(**kw)


def detect_file(model: LoadedModel | BackendDetector, path: str | Path, *, rule: RegionRule, channel=None,
                batch: int = 64, block_frames: int = DEFAULT_BLOCK, recording: Recording | None = None,
                scorer: Scorer | None = None) -> FileDetection:
    """Stream ``path`` block by block through the detector; memory does not grow with file length.

    ``channel``: an index, or None/'auto' for the louder channel (resolved once, kept in the result).
    ``scorer``: the run's :class:`~sonotype.models.infer.Scorer` (device, bf16, batch); None: the plain CPU path.
    A detector on a pretrained backend (:class:`~sonotype.detection.backend.BackendDetector`) scores the
    backend's windows (``batch`` of them at a time; ``scorer`` and ``block_frames`` do not apply).
    """
    t0 = time.perf_counter()
    rec = recording or open_recording(path, channel=channel)
    if isinstance(model, (BackendDetector, FusedDetector)):
        if isinstance(model, BackendDetector):
            scores = model.file_scores(path, channel=rec.channel, batch=batch)
        else:  # the threshold makes it a cascade: the same regions, less work
            scores = model.file_scores(path, channel=rec.channel, sample_rate=rec.sample_rate, threshold=rule.threshold)
        regions = find_regions(scores, model.grid(rec.sample_rate), rule=rule, n_samples=rec.frames)
        return FileDetection(rec, scores, tuple(regions), time.perf_counter() - t0)
    framing = framing_for(model.frontend, rec.sample_rate, path)
    if scorer is not None:
        scores = scorer.file_scores(path, channel=rec.channel, sample_rate=rec.sample_rate)
    else:
        scores = file_scores(model, path, channel=rec.channel, sample_rate=rec.sample_rate, batch=batch,
                             block_frames=block_frames)
    regions = find_regions(scores, framing, rule=rule, n_samples=rec.frames)
    return FileDetection(rec, scores, tuple(regions), time.perf_counter() - t0)
