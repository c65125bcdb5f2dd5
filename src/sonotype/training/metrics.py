"""Binary detection metrics on scores: confusion matrix, precision/recall/F1, PR curve, threshold choice.

Positive class = vocalisation (label 1). Pure NumPy; windows labelled IGNORE (-1) must be
removed by the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DataError


def ratio(num: float, den: float) -> float:
    """num / den, 0 when den is 0 (precision/recall of nothing)."""
    return num / den if den else 0.0


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall (0 when both are 0)."""
    return ratio(2 * precision * recall, precision + recall)


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold. Rows truth, columns prediction, as in the seed report."""

    tp: int
    fn: int
    fp: int
    tn: int
    threshold: float

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return f1_score(self.precision, self.recall)

    @property
    def accuracy(self) -> float:
        n = self.tp + self.fn + self.fp + self.tn
        return (self.tp + self.tn) / n if n else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "accuracy": self.accuracy}

    def table(self) -> str:
        """Markdown confusion matrix (rows truth, columns prediction)."""
        return ("| truth \\ prediction | vocalisation | noise |\n|:---|---:|---:|\n"
                f"| vocalisation | {self.tp} | {self.fn} |\n| noise | {self.fp} | {self.tn} |")


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise DataError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0/1 (drop IGNORE windows first)")
    if not np.isfinite(s).all():
        raise DataError("scores contain NaN or infinity")
    return s, y.astype(bool)


def confusion(scores: np.ndarray, labels: np.ndarray, *, threshold: float) -> Confusion:
    """Counts with prediction ``score >= threshold``."""
    s, y = _check(scores, labels)
    pred = s >= threshold
    return Confusion(int((pred & y).sum()), int((~pred & y).sum()), int((pred & ~y).sum()),
                     int((~pred & ~y).sum()), float(threshold))


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Precision and recall at every distinct score used as threshold (descending thresholds).

    Returns arrays ``threshold``, ``precision``, ``recall``, ``tp``, ``fp`` of equal length.
    """
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.zeros(0, int)  # end of each tie group
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    npos = max(int(y.sum()), 1)
    return {"threshold": s[last], "precision": tp / np.maximum(tp + fp, 1), "recall": tp / npos,
            "tp": tp, "fp": fp}


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the PR curve as the sum of precision x recall increments (step interpolation)."""
    c = pr_curve(scores, labels)
    if c["recall"].size == 0 or c["tp"][-1] == 0:
        return 0.0
    recall = np.r_[0.0, c["recall"]]
    return float(np.sum(np.diff(recall) * c["precision"]))


def choose_threshold(scores: np.ndarray, labels: np.ndarray, *, target_precision: float | None = None) -> float:
    """Decision threshold from validation scores.

    Default: the threshold of maximum F1. With ``target_precision``: the lowest threshold whose
    precision reaches it (the most recall at that precision), or the max-F1 one if none does.
    The threshold returned sits halfway to the next lower score so that small shifts in score
    between data sets do not flip the boundary cases.
    """
    c = pr_curve(scores, labels)
    if c["threshold"].size == 0 or c["tp"][-1] == 0:
        raise DataError("cannot choose a threshold: the validation data has no vocalisation windows")
    p, r = c["precision"], c["recall"]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    i = int(np.argmax(f1))
    if target_precision is not None:
        ok = np.nonzero(p >= target_precision)[0]
        if ok.size:
            i = int(ok[np.argmax(r[ok])])
    t = c["threshold"]
    return float((t[i] + t[i + 1]) / 2) if i + 1 < t.size else float(t[i])


def summary(scores: np.ndarray, labels: np.ndarray, *, threshold: float, curve_points: int = 200) -> dict:
    """Everything the evaluation reports, as plain JSON-able types."""
    cm = confusion(scores, labels, threshold=threshold)
    c = pr_curve(scores, labels)
    keep = np.unique(np.linspace(0, c["threshold"].size - 1, min(curve_points, c["threshold"].size)).astype(int)) \
        if c["threshold"].size else np.zeros(0, int)
    return {"confusion": cm.to_dict(), "average_precision": average_precision(scores, labels),
            "n_windows": int(cm.tp + cm.fn + cm.fp + cm.tn), "n_positive": int(cm.tp + cm.fn),
            "pr_curve": {k: [float(v) for v in c[k][keep]] for k in ("threshold", "precision", "recall")}}
