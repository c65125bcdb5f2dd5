"""Agreement of clusters (or of a distance) with expert labels.

* :func:`nmi` — normalised mutual information, arithmetic-mean normalisation, in [0, 1].
* :func:`ari` — adjusted Rand index (Hubert and Arabie), 1 = identical partitions, ~0 = chance.
* :func:`purity` — share of items whose cluster's majority label is their own label.
* :func:`loo_nn_accuracy` — leave-one-out 1-nearest-neighbour accuracy of a distance matrix:
  for each item whose label occurs at least twice, is its nearest other item of the same label?
  This judges the distance itself, independently of any clustering choice.

Clusters labelled -1 (unassigned) each count as their own singleton cluster.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def _codes(values) -> np.ndarray:
    return np.unique(np.asarray(values).astype(str), return_inverse=True)[1].ravel()


def _singletons(clusters) -> np.ndarray:
    """Cluster labels with every -1 made a distinct singleton id."""
    c = np.asarray(clusters).astype(np.int64).copy()
    free = c < 0
    c[free] = c.max(initial=0) + 1 + np.arange(free.sum())
    return c


def contingency(labels, clusters) -> np.ndarray:
    """``(n_labels, n_clusters)`` counts of items per (label, cluster)."""
    lab, cl = np.asarray(labels), np.asarray(clusters)
    if lab.shape != cl.shape or lab.ndim != 1 or lab.size == 0:
        raise ConfigError(f"labels and clusters must be 1-d of one non-zero length, got {lab.shape} and {cl.shape}")
    a, b = _codes(lab), _codes(_singletons(cl))
    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels, clusters) -> float:
    """Normalised mutual information ``I(L; C) / ((H(L) + H(C)) / 2)``; 1.0 when both are one group."""
    t = contingency(labels, clusters).astype(np.float64)
    n = t.sum()
    hl, hc = _entropy(t.sum(1)), _entropy(t.sum(0))
    if hl == 0 and hc == 0:
        return 1.0
    pij = t / n
    outer = np.outer(t.sum(1), t.sum(0)) / n ** 2
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / outer[nz])).sum())
    return max(0.0, min(1.0, mi / ((hl + hc) / 2)))


def _pairs(x: np.ndarray) -> np.ndarray:
    return x * (x - 1) / 2.0


def ari(labels, clusters) -> float:
    """Adjusted Rand index; 1.0 for identical partitions (also when both are trivial)."""
    t = contingency(labels, clusters).astype(np.float64)
    n = t.sum()
    index = _pairs(t).sum()
    a, b = _pairs(t.sum(1)).sum(), _pairs(t.sum(0)).sum()
    expected = a * b / _pairs(n) if n > 1 else 0.0
    top = (a + b) / 2.0
    if top == expected:
        return 1.0
    return float((index - expected) / (top - expected))


def purity(labels, clusters) -> float:
    """Share of items that carry their cluster's most common label."""
    t = contingency(labels, clusters)
    return float(t.max(axis=0).sum() / t.sum())


def nn_correct(dist: np.ndarray, labels) -> np.ndarray:
    """Leave-one-out nearest neighbours of a ``(N, N)`` distance matrix: for each item whose label occurs
    at least twice (a singleton type cannot have a correct neighbour), whether its nearest other item
    shares its label, ``(n_scored,)`` bool. Ties for nearest are broken towards the lower index."""
    d = np.asarray(dist, np.float64)
    lab = np.asarray(labels).astype(str)
    if d.ndim != 2 or d.shape != (lab.size, lab.size):
        raise ConfigError(f"dist must be (N, N) with N = len(labels) = {lab.size}, got {d.shape}")
    _, inv, counts = np.unique(lab, return_inverse=True, return_counts=True)
    scored = np.flatnonzero(counts[inv.ravel()] >= 2)
    masked = d.copy()
    np.fill_diagonal(masked, np.inf)
    return lab[np.argmin(masked[scored], axis=1)] == lab[scored] if scored.size else np.zeros(0, bool)


def loo_nn_accuracy(dist: np.ndarray, labels) -> tuple[float, int]:
    """Leave-one-out 1-NN accuracy (the mean of :func:`nn_correct`) and the number of items scored;
    accuracy is NaN when no item can be scored."""
    hits = nn_correct(dist, labels)
    return (float(hits.mean()) if hits.size else float("nan")), int(hits.size)


def agreement(labels, clusters, dist: np.ndarray | None = None) -> dict:
    """NMI, ARI, purity and cluster count (plus LOO 1-NN accuracy when ``dist`` is given)."""
    out = {"nmi": nmi(labels, clusters), "ari": ari(labels, clusters), "purity": purity(labels, clusters),
           "n_clusters": len(set(np.asarray(clusters).tolist()) - {-1}),
           "n_types": len(set(np.asarray(labels).astype(str).tolist()))}
    if dist is not None:
        out["nn_accuracy"], out["nn_scored"] = loo_nn_accuracy(dist, labels)
    return out
