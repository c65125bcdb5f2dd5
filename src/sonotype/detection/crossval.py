"""The event-level threshold chosen by K-fold cross-validation over the training recordings.

A detector chooses its threshold on its own validation split: the held-out tail or files of its
training set, which on a small set holds few events (9 upcalls in the right-whale tails), so the
operating point is the noisiest part of the result. Here the annotated recordings are split into
``K`` folds by file; each fold is scored by a detector trained on the other folds, the scored folds
are pooled (every annotated recording scored once, by a detector that never saw it) and one
event-level threshold is chosen on them. The final detector is then trained on every recording and
takes that threshold (:func:`sonotype.detection.detector.train_detector`'s ``event_spans``).

``K + 1`` trainings: the price of a threshold chosen on all the events instead of a tail of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..models.checkpoint import Checkpoint, load_model
from ..training.dataset import Item
from .detector import DetectorConfig, train_detector, validation_spans
from .events import ScoredSpan


def fold_of_files(items: Sequence[Item], *, folds: int, seed: int) -> dict[str, int]:
    """Fold index ``0 .. folds - 1`` of each annotated recording: the recordings with events, then those
    without, each group shuffled (seeded) and dealt out in turn, so that fold sizes differ by at most one and
    every fold holds calls when at least ``folds`` recordings do. Items without annotations (file-level
    labels) get no fold: they are always trained on."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"threshold folds must be an int >= 2, got {folds!r}")
    calls = sorted({it.path for it in items if it.events})
    quiet = sorted({it.path for it in items if it.events is not None and not it.events} - set(calls))
    if len(calls) + len(quiet) < folds:
        raise ConfigError(f"{folds} threshold folds need at least {folds} annotated recordings, got "
                          f"{len(calls) + len(quiet)}; give fewer folds or more annotated files")
    rng = np.random.default_rng(seed)
    dealt = [calls[j] for j in rng.permutation(len(calls))] + [quiet[j] for j in rng.permutation(len(quiet))]
    return {path: k % folds for k, path in enumerate(dealt)}


def cross_validated_spans(encoder_path: str | Path, items: Sequence[Item], *, folds: int,
                          config: DetectorConfig = DetectorConfig(), cache_dir: str | Path | None = None,
                          work_dir: str | Path | None = None, progress: bool = False,
                          log: Callable[[str], None] = print) -> dict[str, ScoredSpan]:
    """Every annotated recording scored by the detector trained without its fold: ``{path: ScoredSpan}``."""
    fold = fold_of_files(items, folds=folds, seed=config.seed)
    spans: dict[str, ScoredSpan] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for k in range(folds):
            held = [it for it in items if fold.get(it.path) == k]
            rest = [it for it in items if fold.get(it.path) != k]
            path = Path(tmp) / f"fold{k}.pt"
            try:
                train_detector(encoder_path, rest, out=path, config=config, cache_dir=cache_dir, progress=progress,
                               log=lambda s: None)
            except DataError as e:
                raise DataError(f"threshold fold {k + 1}/{folds} (trained without {len(held)} file(s)): {e}") from e
            m = load_model(path, kind="detector")
            members = [(m.encoder, m.head), *m.members]
            scored = validation_spans(members, m.frontend, held, mode="file", val_files=[it.path for it in held],
                                      fraction=0.0)
            spans.update(scored)
            log(f"threshold fold {k + 1}/{folds}: {len(held)} recording(s) with "
                f"{sum(len(sp.events) for sp in scored.values())} event(s) scored by a detector trained on the others")
    return spans


def train_detector_cv(encoder_path: str | Path, items: Sequence[Item], *, out: str | Path, folds: int,
                      config: DetectorConfig = DetectorConfig(), data_note: dict | None = None,
                      cache_dir: str | Path | None = None, progress: bool = True,
                      log: Callable[[str], None] = print) -> Checkpoint:
    """:func:`~sonotype.detection.detector.train_detector` on every recording, with the event-level threshold
    chosen on the ``folds``-fold cross-validated scores of the annotated recordings (see the module docstring)."""
    if config.threshold_level == "window":
        raise ConfigError("threshold folds choose an event-level threshold; leave --threshold-level at auto/event")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    spans = cross_validated_spans(encoder_path, items, folds=folds, config=config, cache_dir=cache_dir,
                                  work_dir=Path(out).parent, log=log)
    note = {**(data_note or {}), "threshold_folds": folds}
    return train_detector(encoder_path, items, out=out, config=config, data_note=note, cache_dir=cache_dir,
                          event_spans=spans, progress=progress, log=log)
