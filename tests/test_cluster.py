"""Clustering: average linkage (matrix and sparse graph), k-means on windows, HDBSCAN, label order."""

from __future__ import annotations

import numpy as np
import pytest

from sonotype.discovery.cluster import (
    agglomerative,
    canonical_labels,
    graph_agglomerative,
    hdbscan,
    kmeans_sequences,
    percentile_threshold,
)
from sonotype.errors import ConfigError


def blobs(n_per=8, centres=((0, 0), (10, 0), (0, 10)), seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n_per, 2)) + c for c in centres])
    return x, np.repeat(np.arange(len(centres)), n_per)


def euclid(x):
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


def slow_average_linkage(d, threshold):
    """Reference: repeatedly merge the two clusters with the smallest mean member distance."""
    groups = [[i] for i in range(d.shape[0])]
    while len(groups) > 1:
        best = min(((np.mean([d[a, b] for a in g for b in h]), i, j) for i, g in enumerate(groups)
                    for j, h in enumerate(groups) if i < j))
        if best[0] > threshold:
            break
        _, i, j = best
        groups[i] = groups[i] + groups[j]
        del groups[j]
    lab = np.empty(d.shape[0], int)
    for k, g in enumerate(groups):
        lab[g] = k
    return canonical_labels(lab)


def test_agglomerative_finds_separated_groups_and_matches_a_slow_reference():
    x, truth = blobs()
    d = euclid(x)
    c = agglomerative(d, n_clusters=3)
    assert c.n_clusters == 3 and np.array_equal(c.labels, canonical_labels(truth))
    for pct in (10, 40, 45, 60):
        c = agglomerative(d, percentile=pct)
        assert c.params["threshold"] == pytest.approx(np.percentile(d[np.triu_indices(len(d), 1)], pct))
        assert np.array_equal(c.labels, slow_average_linkage(d, c.params["threshold"]))


@pytest.mark.parametrize("seed", range(8))
def test_graph_linkage_on_a_complete_graph_equals_the_matrix_version(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(int(rng.integers(4, 40)), 3))
    d = euclid(x)
    i, j = np.triu_indices(len(d), 1)
    t = percentile_threshold(d[i, j], 40)
    both_ways = np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([d[i, j], d[i, j]])
    for edges in ((i, j, d[i, j]), both_ways):
        g = graph_agglomerative(len(d), *edges, threshold=t)
        assert np.array_equal(g.labels, agglomerative(d, threshold=t).labels)


def test_graph_linkage_never_joins_unconnected_items():
    g = graph_agglomerative(5, np.array([0, 2]), np.array([1, 3]), np.array([0.1, 0.2]), threshold=10.0)
    assert g.labels.tolist() == [0, 0, 1, 1, 2]


def test_kmeans_sequences_votes_by_windows():
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(rng.integers(1, 7)), 4)) + 8 * (i % 3) for i in range(15)]
    c, win = kmeans_sequences(seqs, k=3)
    assert win.shape == (sum(len(s) for s in seqs),)
    assert np.array_equal(c.labels, canonical_labels(np.arange(15) % 3))
    with pytest.raises(ConfigError, match="k=99"):
        kmeans_sequences(seqs[:2], k=99)


def test_hdbscan_marks_outliers_unassigned():
    x, _ = blobs(n_per=10, centres=((0, 0), (20, 0)))
    x = np.vstack([x, [[200.0, 200.0]]])
    c = hdbscan(euclid(x), min_cluster_size=4)
    assert c.n_clusters == 2 and c.labels[-1] == -1


def test_canonical_labels_order_by_size_then_first_member():
    assert canonical_labels(np.array([5, 7, 7, -1, 5, 7, 9])).tolist() == [1, 0, 0, -1, 1, 0, 2]


def test_bad_matrices_are_refused():
    with pytest.raises(ConfigError, match="square"):
        agglomerative(np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="non-finite"):
        agglomerative(np.array([[0, np.nan], [np.nan, 0]]))
    with pytest.raises(ConfigError, match="percentile"):
        percentile_threshold(np.ones(3), 140)


def test_silhouette_cut_finds_the_number_of_groups():
    from sonotype.discovery.cluster import silhouette_cut
    for centres in (((0, 0), (10, 0), (0, 10)), ((0, 0), (10, 0), (0, 10), (10, 10), (20, 20))):
        x, truth = blobs(n_per=6, centres=centres)
        c = silhouette_cut(euclid(x))
        assert c.n_clusters == len(centres) and c.params["cut"] == "silhouette"
        assert np.array_equal(c.labels, canonical_labels(truth))
