"""sonotype.discovery.dtw against a slow, obvious full-matrix reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonotype.discovery.dtw import band_half_width, dtw_distance, dtw_matrix, knn_graph
from sonotype.errors import ConfigError, DataError


def ref_half_width(n: int, m: int, band) -> int:
    """The documented rule, written out independently."""
    if band is None:
        w = (n + m) // 4
    elif isinstance(band, float):
        w = math.ceil(band * max(n, m))
    else:
        w = band
    return max(w, abs(n - m))


def ref_dtw(a: np.ndarray, b: np.ndarray, w: int) -> float:
    """Full (n+1) x (m+1) DP, Euclidean local cost, |i - j| <= w, accumulated cost / (n + m)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n, m = len(a), len(b)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if abs(i - j) > w:
                continue
            cost = float(np.sqrt(np.sum((a[i - 1] - b[j - 1]) ** 2)))
            acc[i, j] = cost + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return acc[n, m] / (n + m)


def _seqs(rng, count, lo, hi, dim=8, dtype=np.float32):
    return [rng.normal(size=(int(rng.integers(lo, hi + 1)), dim)).astype(dtype) for _ in range(count)]


@pytest.mark.parametrize("seed, band", list(enumerate([None, 0.1, 0.3, 1.0, 0, 2, 7])))
def test_matches_reference(seed, band):
    rng = np.random.default_rng(100 + seed)
    for _ in range(12):
        a, b = _seqs(rng, 2, 1, 30)
        w = ref_half_width(len(a), len(b), band)
        assert band_half_width(len(a), len(b), band) == w
        assert dtw_distance(a, b, band=band) == pytest.approx(ref_dtw(a, b, w), rel=1e-9, abs=1e-12)


def test_float64_and_mixed_dtypes():
    rng = np.random.default_rng(1)
    a, b = _seqs(rng, 2, 5, 20, dtype=np.float64)
    w = ref_half_width(len(a), len(b), None)
    assert dtw_distance(a, b) == pytest.approx(ref_dtw(a, b, w), rel=1e-12)
    assert dtw_distance(a.astype(np.float32), b) == pytest.approx(ref_dtw(a.astype(np.float32), b, w), rel=1e-9)


def test_identity_and_symmetry():
    rng = np.random.default_rng(2)
    a, b = _seqs(rng, 2, 3, 40, dim=128)
    assert dtw_distance(a, a) == 0.0
    assert dtw_distance(a, b) == pytest.approx(dtw_distance(b, a), rel=1e-12)
    assert dtw_distance(a, b) > 0


def test_band_widened_for_very_different_lengths():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 8)).astype(np.float32)
    b = rng.normal(size=(40, 8)).astype(np.float32)
    assert band_half_width(3, 40, 0) == 37
    d = dtw_distance(a, b, band=0)  # a 0-frame band alone would leave no path
    assert math.isfinite(d)
    assert d == pytest.approx(ref_dtw(a, b, 37), rel=1e-9)
    assert dtw_distance(rng.normal(size=(1, 8)), rng.normal(size=(25, 8)), band=0.01) < np.inf


def test_warped_copy_is_closer_than_unrelated():
    rng = np.random.default_rng(4)
    t = np.linspace(0, 1, 40)
    base = np.stack([np.sin(2 * np.pi * (f * t + p)) for f, p in rng.uniform(0.5, 3, size=(16, 2))], axis=1)
    warp = np.linspace(0, 1, 55) ** 1.3  # slower start, faster end, 55 frames
    warped = np.stack([np.interp(warp, t, base[:, d]) for d in range(16)], axis=1)
    warped += rng.normal(scale=0.02, size=warped.shape)
    other = np.stack([np.sin(2 * np.pi * (f * t + p)) for f, p in rng.uniform(0.5, 3, size=(16, 2))], axis=1)
    assert dtw_distance(base, warped) < 0.5 * dtw_distance(base, other)
    assert dtw_distance(base, warped) < 0.5 * dtw_distance(warped, other)


def test_matrix_equals_pairwise():
    rng = np.random.default_rng(5)
    seqs = _seqs(rng, 17, 1, 25, dim=12)
    for band in (None, 0.2, 3):
        m = dtw_matrix(seqs, band=band, chunk_pairs=20)  # several chunks
        assert m.shape == (17, 17) and m.dtype == np.float64
        assert np.array_equal(m, m.T)
        assert np.all(np.diag(m) == 0)
        for i in range(17):
            for j in range(i + 1, 17):
                assert m[i, j] == dtw_distance(seqs[i], seqs[j], band=band)
    assert dtw_matrix(seqs[:1]).shape == (1, 1)


def test_knn_graph_recall_and_exact_distances():
    rng = np.random.default_rng(6)
    # 8 prototypes, each seen 10 times with a random stretch and noise: a realistic clustered set
    protos = [rng.normal(size=(int(rng.integers(15, 35)), 16)) for _ in range(8)]
    seqs = []
    for _ in range(10):
        for p in protos:
            n = max(5, int(len(p) * rng.uniform(0.7, 1.4)))
            x = np.linspace(0, len(p) - 1, n)
            q = np.stack([np.interp(x, np.arange(len(p)), p[:, d]) for d in range(16)], axis=1)
            seqs.append((q + rng.normal(scale=0.3, size=q.shape)).astype(np.float32))
    k = 5
    full = dtw_matrix(seqs)
    np.fill_diagonal(full, np.inf)
    exact = np.argsort(full, axis=1, kind="stable")[:, :k]
    idx, dist = knn_graph(seqs, k, candidates=30)
    assert idx.shape == dist.shape == (len(seqs), k)
    assert np.all(idx != np.arange(len(seqs))[:, None])
    assert np.all(np.diff(dist, axis=1) >= 0)
    np.testing.assert_array_equal(dist, full[np.arange(len(seqs))[:, None], idx])  # exact DTW values
    recall = np.mean([len(set(idx[i]) & set(exact[i])) / k for i in range(len(seqs))])
    assert recall >= 0.9
    idx_all, dist_all = knn_graph(seqs, k, candidates=len(seqs) + 5)  # all pairs: exact
    np.testing.assert_allclose(dist_all, np.sort(full, axis=1)[:, :k])


@pytest.mark.parametrize(
    "bad, where",
    [
        (np.zeros((0, 8), np.float32), "sequence 2"),
        (np.full((4, 8), np.nan, np.float32), "sequence 2"),
        (np.zeros((4, 7), np.float32), "sequence 2"),
        (np.zeros(8, np.float32), "sequence 2"),
    ],
)
def test_bad_sequences_name_the_index(bad, where):
    seqs = [np.zeros((3, 8), np.float32), np.ones((5, 8), np.float32), bad, np.ones((2, 8), np.float32)]
    with pytest.raises(DataError, match=where):
        dtw_matrix(seqs)
    with pytest.raises(DataError, match=where):
        knn_graph(seqs, 1, candidates=2)


def test_bad_pairs_and_config():
    a = np.zeros((3, 8), np.float32)
    with pytest.raises(DataError, match="b has D=4"):
        dtw_distance(a, np.zeros((3, 4)))
    with pytest.raises(DataError, match="a is empty"):
        dtw_distance(np.zeros((0, 8)), a)
    b = a.copy()
    b[1, 2] = np.inf
    with pytest.raises(DataError, match="frame 1"):
        dtw_distance(a, b)
    for band in (0.0, 1.5, -1, True, "wide"):
        with pytest.raises(ConfigError, match="band="):
            dtw_distance(a, a, band=band)
    with pytest.raises(DataError, match="empty"):
        dtw_matrix([])
    seqs = [a, a + 1, a + 2]
    with pytest.raises(ConfigError, match="k=3"):
        knn_graph(seqs, 3)
    with pytest.raises(ConfigError, match="candidates=1"):
        knn_graph(seqs, 2, candidates=1)


def test_dtw_pairs_equals_pair_by_pair_distances():
    from sonotype.discovery.dtw import dtw_pairs
    rng = np.random.default_rng(7)
    seqs = [rng.normal(size=(int(rng.integers(1, 30)), 5)) for _ in range(9)]
    ii, jj = rng.integers(0, 9, 40), rng.integers(0, 9, 40)
    got = dtw_pairs(seqs, ii, jj, band=0.5)
    assert np.allclose(got, [dtw_distance(seqs[i], seqs[j], band=0.5) for i, j in zip(ii, jj)])
    with pytest.raises(ConfigError, match="pair indices"):
        dtw_pairs(seqs, [0, 9], [1, 2])
