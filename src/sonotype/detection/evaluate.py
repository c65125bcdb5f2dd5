"""Window-level evaluation of a detector on held-out files: confusion matrix, P/R/F1, PR curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from ..models.checkpoint import LoadedModel
from ..models.embed import file_scores
from ..training import metrics
from ..training.dataset import IGNORE, Item
from .backend import BackendDetector
from .detector import DetectorConfig
from .fusion import FusedDetector


def evaluate_detector(model: LoadedModel | BackendDetector | FusedDetector, items: Sequence[Item], *,
                      threshold: float | None = None, min_overlap: float | None = None, progress: bool = True) -> dict:
    """Score every window of ``items`` and compare with their labels at the model's threshold.

    Returns a JSON-able dict: the metrics of :func:`metrics.summary` plus per-file counts. A detector on a
    pretrained backend is scored on the backend's windows, a fused one on its first member's, labelled by the
    same rule (the first member's ``min_overlap``).
    """
    dets = ([m.checkpoint.detector for m in model.members] if isinstance(model, FusedDetector)
            else [model.checkpoint.detector] if model.checkpoint.detector else [])
    thr = model.threshold if threshold is None else float(threshold)
    trained_with = DetectorConfig.from_dict(dets[0].config if dets else {})
    mo = trained_with.min_overlap if min_overlap is None else min_overlap
    trained_on = {f for det in dets for f in (*det.train_files, *det.val_files)}
    leaked = [it.path for it in items if it.path in trained_on]
    scores, labels, per_file = [], [], []
    for it in tqdm(items, desc="evaluating", unit="file", disable=not progress, leave=False):
        if isinstance(model, BackendDetector):
            s, framing = model.file_scores(it.path, channel=it.channel), model.grid(it.sample_rate)
        elif isinstance(model, FusedDetector):
            s = model.file_scores(it.path, channel=it.channel, sample_rate=it.sample_rate)
            framing = model.grid(it.sample_rate)
        else:
            s = file_scores(model, it.path, channel=it.channel, sample_rate=it.sample_rate)
            framing = model.frontend.at_rate(it.sample_rate)
        lab = it.window_labels(len(s), framing, min_overlap=mo)
        keep = lab != IGNORE
        scores.append(s[keep]); labels.append(lab[keep])
        c = metrics.confusion(s[keep], lab[keep], threshold=thr) if keep.any() else None
        per_file.append({"path": it.path, "windows": int(keep.sum()), "vocal": int((lab == 1).sum()),
                         **({"tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn} if c else {})})
    if not scores or sum(len(s) for s in scores) == 0:
        raise DataError("nothing to evaluate: no labelled windows in the given files")
    result = metrics.summary(np.concatenate(scores), np.concatenate(labels), threshold=thr)
    result.update({"model": model.path, "threshold": thr, "min_overlap": mo, "files": per_file,
                   "files_seen_in_training": leaked})
    return result


def format_report(result: dict) -> str:
    """Human-readable table of an evaluation result."""
    c = result["confusion"]
    lines = [
        f"windows: {result['n_windows']} ({result['n_positive']} vocalisation)   threshold: {result['threshold']:.3f}",
        "",
        "                 predicted vocal   predicted noise",
        f"  true vocal     {c['tp']:>15d}   {c['fn']:>15d}",
        f"  true noise     {c['fp']:>15d}   {c['tn']:>15d}",
        "",
        f"  precision {c['precision']:.3f}   recall {c['recall']:.3f}   F1 {c['f1']:.3f}   "
        f"average precision {result['average_precision']:.3f}",
    ]
    if result.get("files_seen_in_training"):
        lines.append(f"  WARNING: {len(result['files_seen_in_training'])} file(s) were used in training: "
                     "these numbers are not held-out")
    return "\n".join(lines)


def save_json(result: dict, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2))
    return p
