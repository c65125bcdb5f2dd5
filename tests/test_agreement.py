"""Agreement scores against slow, obvious references (pair counting, entropies by loops)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from sonotype.discovery.agreement import agreement, ari, loo_nn_accuracy, nmi, purity
from sonotype.errors import ConfigError


def slow_ari(a, b):
    pairs = list(combinations(range(len(a)), 2))
    same_a = [a[i] == a[j] for i, j in pairs]
    same_b = [b[i] == b[j] for i, j in pairs]
    both = sum(x and y for x, y in zip(same_a, same_b))
    na, nb, n = sum(same_a), sum(same_b), len(pairs)
    expected = na * nb / n
    top = (na + nb) / 2
    return 1.0 if top == expected else (both - expected) / (top - expected)


def slow_nmi(a, b):
    n = len(a)

    def h(x):
        return -sum((x.count(v) / n) * math.log(x.count(v) / n) for v in set(x))
    mi = 0.0
    for u in set(a):
        for v in set(b):
            nuv = sum(1 for x, y in zip(a, b) if x == u and y == v)
            if nuv:
                mi += nuv / n * math.log(n * nuv / (a.count(u) * b.count(v)))
    ha, hb = h(a), h(b)
    return 1.0 if ha == hb == 0 else mi / ((ha + hb) / 2)


@pytest.mark.parametrize("seed", range(30))
def test_nmi_and_ari_match_slow_references(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    a = rng.integers(0, int(rng.integers(1, 6)), n).tolist()
    b = rng.integers(0, int(rng.integers(1, 6)), n).tolist()
    assert nmi(a, b) == pytest.approx(slow_nmi(a, b), abs=1e-12)
    assert ari(a, b) == pytest.approx(slow_ari(a, b), abs=1e-12)


def test_identical_and_independent_partitions():
    a = ["x", "x", "y", "y", "z", "z"]
    assert nmi(a, [3, 3, 1, 1, 2, 2]) == pytest.approx(1.0)
    assert ari(a, [3, 3, 1, 1, 2, 2]) == pytest.approx(1.0)
    assert purity(a, [0, 0, 0, 0, 0, 0]) == pytest.approx(1 / 3)
    assert ari(a, [0, 1, 0, 1, 0, 1]) < 0.1


def test_unassigned_items_are_singletons():
    assert purity(["a", "a", "b"], [-1, -1, 0]) == 1.0  # two singletons, not one cluster {-1}
    assert agreement(["a", "a", "b"], [-1, -1, 0])["n_clusters"] == 1


def test_loo_nn_accuracy_scores_only_repeated_types():
    d = np.array([[0, 1, 5, 9], [1, 0, 5, 9], [5, 5, 0, 2], [9, 9, 2, 0]], float)
    acc, scored = loo_nn_accuracy(d, ["a", "a", "b", "c"])  # b and c are singletons
    assert (acc, scored) == (1.0, 2)
    acc, scored = loo_nn_accuracy(d, ["a", "b", "a", "b"])
    assert (acc, scored) == (0.0, 4)
    assert math.isnan(loo_nn_accuracy(d, list("abcd"))[0])
    with pytest.raises(ConfigError, match="N, N"):
        loo_nn_accuracy(d[:3], list("abcd"))


def _distinct_unassigned(clusters: np.ndarray) -> np.ndarray:
    """-1 made one singleton cluster each, as sonotype.discovery.agreement counts them (for scikit-learn's input)."""
    c = clusters.copy()
    free = c < 0
    c[free] = c.max(initial=0) + 1 + np.arange(free.sum())
    return c


def slow_purity(a, b):
    """Per cluster, the count of its most common label, summed over clusters, over the item count."""
    total = 0
    for v in set(b):
        members = [x for x, y in zip(a, b) if y == v]
        total += max(members.count(u) for u in set(members))
    return total / len(a)


@pytest.mark.parametrize("seed", range(20))
def test_scores_match_scikit_learn_and_a_slow_purity(seed):
    from sklearn import metrics as sk

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 120))
    labels = rng.choice(["a", "b", "c", "d", "e"][: int(rng.integers(1, 6))], n)
    clusters = rng.integers(-1, int(rng.integers(1, 9)), n)
    c = _distinct_unassigned(clusters)
    assert nmi(labels, clusters) == pytest.approx(
        sk.normalized_mutual_info_score(labels, c, average_method="arithmetic"), abs=1e-10)
    assert ari(labels, clusters) == pytest.approx(sk.adjusted_rand_score(labels, c), abs=1e-10)
    table = sk.cluster.contingency_matrix(labels, c)
    assert purity(labels, clusters) == pytest.approx(table.max(axis=0).sum() / n, abs=1e-12)
    assert purity(labels, clusters) == pytest.approx(slow_purity(list(labels), list(c)), abs=1e-12)
