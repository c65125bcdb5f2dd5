"""Sound-type discovery: clustering of embedding sequences (DTW) and of window embeddings.

* :func:`agglomerative` — average linkage on a precomputed all-pairs DTW matrix, cut at a
  distance threshold given as a percentile of all pair distances (the original's 40-50th) or
  at a number of clusters.
* :func:`graph_agglomerative` — the same average linkage restricted to a sparse k-nearest-
  neighbour DTW graph, for large runs where the all-pairs matrix is too slow (``sonotype cluster``
  switches above ``--max-full``, 3,000 regions by default; bench/README.md has the timings). On a
  complete graph it equals :func:`agglomerative` (tested).
* :func:`kmeans_sequences` — k-means on window embeddings; a sequence takes the cluster most of
  its windows fall in.
* :func:`hdbscan` — density clustering on the DTW matrix; items in no dense group get -1.

Each returns a :class:`Clustering`: ``labels (N,)`` int, ``-1`` = unassigned, clusters numbered
0.. by decreasing size (ties by first member), so results are comparable across runs.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Clustering:
    """Cluster labels of N items from one algorithm with its parameters."""

    algorithm: str
    params: dict
    labels: np.ndarray = field(repr=False)  # (N,) int64, -1 = unassigned

    @property
    def n_clusters(self) -> int:
        return len(set(self.labels.tolist()) - {-1})

    def members(self) -> dict[int, np.ndarray]:
        """Cluster id -> indices of its members (unassigned items left out)."""
        return {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels) if c >= 0}


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0.. by decreasing size (ties: earliest first member); -1 stays -1."""
    lab = np.asarray(labels).astype(np.int64)
    ids = [c for c in np.unique(lab) if c >= 0]
    order = sorted(ids, key=lambda c: (-int((lab == c).sum()), int(np.argmax(lab == c))))
    out = np.full(lab.shape, -1, np.int64)
    for new, old in enumerate(order):
        out[lab == old] = new
    return out


def _check_square(dist: np.ndarray) -> np.ndarray:
    d = np.asarray(dist, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 2:
        raise ConfigError(f"a distance matrix must be square (N, N) with N >= 2, got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ConfigError("the distance matrix has negative or non-finite entries; DTW distances are finite and >= 0")
    return d


def _condensed(d: np.ndarray) -> np.ndarray:
    return d[np.triu_indices(d.shape[0], 1)]


def percentile_threshold(distances: np.ndarray, percentile: float) -> float:
    """The ``percentile`` (0-100) of a set of pair distances."""
    if not 0 <= percentile <= 100:
        raise ConfigError(f"percentile must be in [0, 100], got {percentile}; the original used 40-50")
    return float(np.percentile(np.asarray(distances, np.float64), percentile))


def agglomerative(dist: np.ndarray, *, n_clusters: int | None = None, percentile: float = 45.0,
                  threshold: float | None = None) -> Clustering:
    """Average-linkage clustering of a precomputed ``(N, N)`` distance matrix.

    Cut: ``n_clusters`` if given, else at ``threshold`` (a distance), else at the ``percentile``
    of all pair distances. Clusters are the groups whose average-linkage merge distance is <= the cut.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    d = _check_square(dist)
    cond = _condensed(d)
    z = linkage(cond, method="average")
    if n_clusters is not None:
        if not 1 <= n_clusters <= d.shape[0]:
            raise ConfigError(f"n_clusters={n_clusters} with {d.shape[0]} items; expected 1..{d.shape[0]}")
        raw = fcluster(z, t=n_clusters, criterion="maxclust")
        params = {"linkage": "average", "n_clusters": int(n_clusters)}
    else:
        t = float(threshold) if threshold is not None else percentile_threshold(cond, percentile)
        raw = fcluster(z, t=t, criterion="distance")
        params = {"linkage": "average", "threshold": t}
        if threshold is None:
            params["percentile"] = float(percentile)
    return Clustering("agglomerative", params, canonical_labels(raw))


def silhouette_cut(dist: np.ndarray, *, k_min: int = 2, k_max: int = 60) -> Clustering:
    """Average linkage cut at the cluster count (``k_min..k_max``) with the best mean silhouette
    on the precomputed distances: a data-driven cut for when the number of types is unknown."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import silhouette_score
    d = _check_square(dist)
    n = d.shape[0]
    if n < 3:
        return agglomerative(d, n_clusters=1)
    z = linkage(_condensed(d), method="average")
    best = None
    for k in range(max(2, k_min), min(k_max, n - 1) + 1):
        raw = fcluster(z, t=k, criterion="maxclust")
        if len(np.unique(raw)) < 2:
            continue
        s = float(silhouette_score(d, raw, metric="precomputed"))
        if best is None or s > best[0]:
            best = (s, k, raw)
    if best is None:
        return agglomerative(d, n_clusters=1)
    s, k, raw = best
    return Clustering("agglomerative", {"linkage": "average", "n_clusters": int(k), "cut": "silhouette",
                                        "silhouette": round(s, 6)}, canonical_labels(raw))


def graph_agglomerative(n: int, edges_i: np.ndarray, edges_j: np.ndarray, dists: np.ndarray, *,
                        threshold: float) -> Clustering:
    """Average linkage on a sparse graph of known distances (e.g. a DTW kNN graph).

    The distance of two clusters is the mean of the known distances between their members; pairs
    with no edge are not counted. Merges the closest pair while that mean is <= ``threshold``.
    Items joined by no edge below the threshold stay singletons. ``O(E log E)`` time.
    """
    ii, jj = np.asarray(edges_i, np.int64), np.asarray(edges_j, np.int64)
    dd = np.asarray(dists, np.float64)
    if not (ii.shape == jj.shape == dd.shape) or ii.ndim != 1:
        raise ConfigError(f"edges must be three 1-d arrays of one length, got {ii.shape}, {jj.shape}, {dd.shape}")
    if ii.size and (min(ii.min(), jj.min()) < 0 or max(ii.max(), jj.max()) >= n):
        raise ConfigError(f"edge endpoints must be in [0, {n})")
    lo, hi = np.minimum(ii, jj), np.maximum(ii, jj)
    keep = lo != hi
    key, first = np.unique(lo[keep] * n + hi[keep], return_index=True)  # each unordered pair once
    lo, hi, dd = key // n, key % n, dd[keep][first]
    # adj[a][b] is adj[b][a]: one shared [sum of distances, count] per pair of clusters
    adj: list[dict[int, list[float]]] = [{} for _ in range(n)]
    for a, b, w in zip(lo.tolist(), hi.tolist(), dd.tolist()):
        adj[a][b] = adj[b][a] = [w, 1]
    parent = list(range(n))
    alive = [True] * n
    heap = [(w, a, b) for a, b, w in zip(lo.tolist(), hi.tolist(), dd.tolist())]
    heapq.heapify(heap)
    while heap:
        mean, a, b = heapq.heappop(heap)
        if mean > threshold:
            break
        e = adj[a].get(b) if alive[a] and alive[b] else None
        if e is None or e[0] / e[1] != mean:
            continue  # stale: one side was merged or the pair's mean changed since this entry
        if len(adj[a]) < len(adj[b]):
            a, b = b, a  # merge the smaller neighbour table into the larger
        alive[b], parent[b] = False, a
        del adj[a][b]
        for c, (s, k) in adj[b].items():
            if c == a:
                continue
            del adj[c][b]
            e = adj[a].get(c)
            if e is None:
                e = adj[a][c] = adj[c][a] = [0.0, 0]
            e[0] += s
            e[1] += k
            heapq.heappush(heap, (e[0] / e[1], min(a, c), max(a, c)))
        adj[b] = {}
    root = np.arange(n)
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        root[i] = r
    return Clustering("graph-agglomerative", {"linkage": "average", "threshold": float(threshold),
                                              "edges": int(ii.size)}, canonical_labels(root))


def kmeans_sequences(seqs: list[np.ndarray], *, k: int, seed: int = 0) -> tuple[Clustering, np.ndarray]:
    """k-means on all window embeddings of the sequences (each ``(n_i, D)``).

    Returns the per-sequence clustering (each sequence takes the cluster most of its windows fall
    in; ties: the lowest cluster id) and the per-window labels ``(sum n_i,)`` in sequence order.
    """
    from sklearn.cluster import KMeans
    lengths = [int(np.asarray(s).shape[0]) for s in seqs]
    if not seqs or min(lengths) < 1:
        raise ConfigError("k-means needs at least one sequence and every sequence at least one window")
    x = np.concatenate([np.asarray(s, np.float32) for s in seqs])
    if not 1 <= k <= x.shape[0]:
        raise ConfigError(f"k={k} with {x.shape[0]} windows; expected 1 <= k <= number of windows")
    win = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x).astype(np.int64)
    bounds = np.cumsum([0] + lengths)
    per_seq = np.array([np.bincount(win[a:b], minlength=k).argmax() for a, b in pairwise(bounds)])
    return Clustering("kmeans", {"k": int(k), "seed": int(seed), "on": "windows"},
                      canonical_labels(per_seq)), win


def hdbscan(dist: np.ndarray, *, min_cluster_size: int = 5, min_samples: int | None = None) -> Clustering:
    """HDBSCAN on a precomputed ``(N, N)`` distance matrix; items in no dense group are -1."""
    from sklearn.cluster import HDBSCAN
    d = _check_square(dist)
    if not 2 <= min_cluster_size <= d.shape[0]:
        raise ConfigError(f"min_cluster_size={min_cluster_size} with {d.shape[0]} items; expected 2..{d.shape[0]}")
    raw = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, metric="precomputed",
                  copy=True).fit_predict(d)
    return Clustering("hdbscan", {"min_cluster_size": int(min_cluster_size), "min_samples": min_samples},
                      canonical_labels(raw))
