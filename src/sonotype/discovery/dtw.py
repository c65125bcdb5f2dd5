"""Dynamic time warping between regions (sequences of window embeddings), as in the original system.

A region is a float array ``(n, D)``: ``n`` windows of a ``D``-dimensional embedding. The distance
between ``a (n, D)`` and ``b (m, D)`` is

    min over warping paths P from (0, 0) to (n-1, m-1) of  sum_{(i, j) in P} ||a[i] - b[j]||_2  / (n + m)

with steps (1, 0), (0, 1), (1, 1) and the Sakoe-Chiba constraint ``|i - j| <= w``. The half-width
``w`` (see :func:`band_half_width`) is widened to at least ``|n - m|`` so that a path always exists.

Kernels are numba ``@njit(cache=True)``; costs are accumulated in float64 whatever the input dtype
(float32 and float64 are used as they are, anything else is converted to float32). Memory per pair
is two DP rows of ``m + 1`` floats, never an ``(n, m)`` matrix.

No lower bound is offered: the obvious cheap ones (distance of mean embeddings) are not lower bounds
of this normalised DTW, and the valid LB_Keogh-style bound (each ``a[i]`` is matched at least once,
so ``sum_i min_{j in band(i)} ||a[i]-b[j]||`` bounds the path sum) costs as much as the DTW itself
for vector-valued frames. :func:`knn_graph` is an *approximate* shortcut instead.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numba import njit, prange

from ..errors import ConfigError, DataError

__all__ = ["band_half_width", "dtw_distance", "dtw_matrix", "dtw_pairs", "knn_graph"]

_MODE_DEFAULT, _MODE_FRACTION, _MODE_FRAMES = 0, 1, 2


def _band_spec(band) -> tuple[int, float]:
    """Validate ``band`` -> (mode, value) for the kernels; ConfigError says what is allowed."""
    if band is None:
        return _MODE_DEFAULT, 0.0
    is_int = isinstance(band, (int, np.integer)) and not isinstance(band, (bool, np.bool_))
    if is_int and band >= 0:
        return _MODE_FRAMES, float(band)
    if isinstance(band, (float, np.floating)) and 0.0 < band <= 1.0:
        return _MODE_FRACTION, float(band)
    raise ConfigError(f"band={band!r} is not allowed; expected None (half-width (n+m)//4), a float in (0, 1] "
                      "(fraction of max(n, m)) or an int >= 0 (half-width in frames); pass e.g. band=0.25 or band=10")


@njit(cache=True, nogil=True)
def _half_width(n, m, mode, value):
    """Sakoe-Chiba half-width for lengths n, m (widened to |n - m|)."""
    if mode == 0:
        w = (n + m) // 4
    elif mode == 1:
        w = int(math.ceil(value * max(n, m)))
    else:
        w = int(value)
    return max(w, abs(n - m))


def band_half_width(n: int, m: int, band: float | int | None = None) -> int:
    """Half-width ``w`` used for lengths ``n``, ``m``: ``|i - j| <= w`` is allowed.

    ``band=None``: ``floor((n + m) / 4)`` (the original's rule); float in (0, 1]: ``ceil(band * max(n, m))``;
    int: ``band`` frames. Always widened to at least ``|n - m|``.
    """
    mode, value = _band_spec(band)
    return int(_half_width(int(n), int(m), mode, value))


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _euclid(a, i, b, j):
    """||a[i] - b[j]||_2 accumulated in float64 (reassociation lets LLVM vectorise the sum)."""
    s = 0.0
    for k in range(a.shape[1]):
        d = np.float64(a[i, k]) - np.float64(b[j, k])
        s += d * d
    return math.sqrt(s)


@njit(cache=True, nogil=True)
def _dtw_pair(a, b, mode, value):
    """Normalised banded DTW of a (n, D) and b (m, D); two rows of m + 1 floats (index j + 1)."""
    n, m = a.shape[0], b.shape[0]
    w = _half_width(n, m, mode, value)
    inf = np.inf
    prev = np.full(m + 1, inf)
    cur = np.full(m + 1, inf)
    acc = 0.0
    for j in range(min(m - 1, w) + 1):  # row 0: only moves along b
        acc += _euclid(a, 0, b, j)
        prev[j + 1] = acc
    for i in range(1, n):
        lo = max(0, i - w)
        hi = min(m - 1, i + w)
        cur[lo] = inf  # D[i, lo - 1] is outside the band (or j = -1)
        for j in range(lo, hi + 1):
            best = prev[j + 1]  # D[i-1, j]
            if prev[j] < best:  # D[i-1, j-1]
                best = prev[j]
            if cur[j] < best:  # D[i, j-1]
                best = cur[j]
            cur[j + 1] = best + _euclid(a, i, b, j)
        if hi + 2 <= m:
            cur[hi + 2] = inf  # so that the next row reads D[i, hi + 1] as outside the band
        prev, cur = cur, prev
    return prev[m] / (n + m)


@njit(cache=True, parallel=True)
def _pairs_kernel(data, offsets, ii, jj, mode, value, out):
    """out[p] = DTW(seq ii[p], seq jj[p]); sequences are data[offsets[k]:offsets[k+1]]."""
    for p in prange(ii.shape[0]):
        i, j = ii[p], jj[p]
        out[p] = _dtw_pair(data[offsets[i]:offsets[i + 1]], data[offsets[j]:offsets[j + 1]], mode, value)


def _as_seq(x, name: str, dim: int | None = None) -> np.ndarray:
    """Validate one sequence -> C-contiguous (n, D) float32/float64 array; DataError names ``name``."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name} has shape {arr.shape}; expected a 2-D (n, D) array of window embeddings; "
                        "stack the frames with np.stack")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {arr.shape}); expected at least one frame of D >= 1 values; "
                        "drop empty regions before computing DTW")
    if dim is not None and arr.shape[1] != dim:
        raise DataError(f"{name} has D={arr.shape[1]}; expected D={dim} like the first sequence; "
                        "use embeddings from one model only")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(f"{name} has NaN/inf values (first at frame {bad}); expected finite embeddings; "
                        "remove or re-embed that region")
    return np.ascontiguousarray(arr)


def _pack(seqs) -> tuple[np.ndarray, np.ndarray]:
    """list of (n_k, D) -> (data (sum n_k, D), offsets (N + 1,) int64)."""
    if len(seqs) == 0:
        raise DataError("seqs is empty; expected a list of at least one (n, D) array")
    arrs, dim = [], None
    for k, s in enumerate(seqs):
        arr = _as_seq(s, f"sequence {k}", dim)
        dim = arr.shape[1]
        arrs.append(arr)
    dtype = np.float64 if all(a.dtype == np.float64 for a in arrs) else np.float32
    offsets = np.zeros(len(arrs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([a.shape[0] for a in arrs])
    return np.concatenate(arrs, axis=0).astype(dtype, copy=False), offsets


def _run_pairs(data, offsets, ii, jj, mode, value, bar=None) -> np.ndarray:
    """DTW of the pairs (ii[p], jj[p]) in parallel, in chunks of 200,000 (progress per chunk)."""
    out = np.empty(ii.shape[0], dtype=np.float64)
    for s in range(0, ii.shape[0], 200_000):
        sl = slice(s, s + 200_000)
        _pairs_kernel(data, offsets, ii[sl].astype(np.int64), jj[sl].astype(np.int64), mode, value, out[sl])
        if bar is not None:
            bar.update(out[sl].shape[0])
    return out


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="pair", file=sys.stderr, desc=desc)


def dtw_distance(a: np.ndarray, b: np.ndarray, *, band: float | int | None = None) -> float:
    """Normalised banded DTW distance between ``a (n, D)`` and ``b (m, D)`` (see the module doc).

    ``band``: None -> half-width ``(n + m) // 4``; float in (0, 1] -> fraction of ``max(n, m)``;
    int -> half-width in frames. Widened to ``|n - m|``. Returns a float >= 0 (0 for ``a is b``).
    """
    mode, value = _band_spec(band)
    a = _as_seq(a, "a")
    b = _as_seq(b, "b", a.shape[1])
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    return float(_dtw_pair(a, b, mode, value))


def dtw_pairs(seqs: list[np.ndarray], ii: np.ndarray, jj: np.ndarray, *, band: float | int | None = None
              ) -> np.ndarray:
    """DTW of the listed pairs ``(seqs[ii[p]], seqs[jj[p]])``, in parallel: ``(P,)`` float64."""
    mode, value = _band_spec(band)
    data, offsets = _pack(seqs)
    ii, jj = np.asarray(ii, np.int64), np.asarray(jj, np.int64)
    n_seq = len(offsets) - 1
    if ii.shape != jj.shape or ii.ndim != 1 or (ii.size and (min(ii.min(), jj.min()) < 0
                                                            or max(ii.max(), jj.max()) >= n_seq)):
        raise ConfigError(f"pair indices must be two 1-d arrays of one length with values in [0, {n_seq})")
    return _run_pairs(data, offsets, ii, jj, mode, value)


def dtw_matrix(seqs: list[np.ndarray], *, band: float | int | None = None, progress: bool = False,
               chunk_pairs: int = 200_000) -> np.ndarray:
    """All-pairs DTW: ``seqs`` is a list of N arrays ``(n_k, D)`` (lengths may differ).

    Returns an ``(N, N)`` float64 symmetric matrix with a zero diagonal. The ``N (N - 1) / 2`` pairs
    run in parallel (numba ``prange``, ``NUMBA_NUM_THREADS`` threads) in chunks of ``chunk_pairs``;
    ``progress=True`` shows a tqdm bar on stderr.
    """
    mode, value = _band_spec(band)
    data, offsets = _pack(seqs)
    n_seq = len(offsets) - 1
    out = np.zeros((n_seq, n_seq), dtype=np.float64)
    total = n_seq * (n_seq - 1) // 2
    bar = _bar(progress, total, "dtw_matrix")
    row = 0
    while row < n_seq - 1:
        stop, count = row, 0
        while stop < n_seq - 1 and (count == 0 or count + (n_seq - 1 - stop) <= chunk_pairs):
            count += n_seq - 1 - stop
            stop += 1
        rows = np.arange(row, stop)
        per_row = n_seq - 1 - rows
        ii = np.repeat(rows, per_row)
        starts = np.repeat(np.cumsum(per_row) - per_row, per_row)
        jj = np.arange(ii.shape[0]) - starts + ii + 1
        out[ii, jj] = out[jj, ii] = _run_pairs(data, offsets, ii, jj, mode, value, bar)
        row = stop
    if bar is not None:
        bar.close()
    return out


def knn_graph(seqs: list[np.ndarray], k: int, *, band: float | int | None = None, candidates: int = 50,
              progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k-nearest-neighbour graph under DTW. **Approximate**: recall < 1 is possible.

    For each sequence, the ``candidates`` nearest others by Euclidean distance of the mean embeddings
    (``(N, D)``) are picked; exact DTW is computed only for those pairs (each unordered pair once, and
    a pair found from either end counts for both). Each sequence keeps its ``k`` DTW-nearest among them.
    Mean distance is *not* a DTW lower bound, so a true neighbour outside the candidates is missed;
    recall vs exact grows with ``candidates`` (see ``tests/test_dtw.py`` and ``bench/README.md``).

    Returns ``(indices (N, k) int64, distances (N, k) float64)``, rows sorted by distance; every
    returned distance is the exact DTW. ``k <= candidates <= N - 1`` (``candidates`` is clipped to ``N - 1``).
    """
    mode, value = _band_spec(band)
    data, offsets = _pack(seqs)
    n_seq = len(offsets) - 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_seq - 1:
        raise ConfigError(f"k={k!r} with {n_seq} sequences; expected an int in [1, {n_seq - 1}]; "
                          "pass a smaller k or more sequences")
    if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)) or candidates < k:
        raise ConfigError(f"candidates={candidates!r} with k={k}; expected an int >= k; pass e.g. candidates={4 * k}")
    cand = min(int(candidates), n_seq - 1)
    lengths = np.diff(offsets)
    means = (np.add.reduceat(data.astype(np.float64), offsets[:-1], axis=0) / lengths[:, None])
    sq = (means ** 2).sum(axis=1)
    nbrs = np.empty((n_seq, cand), dtype=np.int64)
    for r0 in range(0, n_seq, 1024):  # blocks of rows: never an (N, N) matrix
        r1 = min(n_seq, r0 + 1024)
        d2 = sq[r0:r1, None] + sq[None, :] - 2.0 * means[r0:r1] @ means.T
        d2[np.arange(r1 - r0), np.arange(r0, r1)] = np.inf
        nbrs[r0:r1] = np.argpartition(d2, cand - 1, axis=1)[:, :cand]
    ii = np.repeat(np.arange(n_seq), cand)
    jj = nbrs.ravel()
    lo, hi = np.minimum(ii, jj), np.maximum(ii, jj)
    pairs = np.unique(lo * n_seq + hi)
    lo, hi = pairs // n_seq, pairs % n_seq
    bar = _bar(progress, pairs.shape[0], "knn_graph")
    dist = _run_pairs(data, offsets, lo, hi, mode, value, bar)
    if bar is not None:
        bar.close()
    src = np.concatenate([lo, hi])
    dst = np.concatenate([hi, lo])
    dd = np.concatenate([dist, dist])
    order = np.lexsort((dst, dd, src))  # by source, then distance (ties: smaller index)
    src, dst, dd = src[order], dst[order], dd[order]
    first = np.searchsorted(src, np.arange(n_seq))  # every source has >= cand >= k entries
    take = first[:, None] + np.arange(k)[None, :]
    return dst[take].astype(np.int64), dd[take]
