"""sonotype.features.pooling: the one max-pool over time, against an obvious loop, and its users agree with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonotype.errors import ConfigError
from sonotype.features.pooling import even_starts, max_over_time, pool_time
from sonotype.features.render import ColumnPooler


def slow_pool(a: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """Row g = the maximum of rows groups[g], one element at a time."""
    out = np.empty((len(groups), *a.shape[1:]), a.dtype)
    for g, rows in enumerate(groups):
        for b in range(a.shape[1]):
            best = -math.inf
            for r in rows:
                best = max(best, a[r, b])
            out[g, b] = best
    return out


@pytest.mark.parametrize("n,m", [(10, 3), (101, 7), (64, 64), (1000, 999), (7, 1)])
def test_pool_time_equals_the_loop(n, m):
    a = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    f = math.ceil(n / m)
    pooled, factor = pool_time(a, m)
    want = [list(range(k, min(k + f, n))) for k in range(0, n, f)] if n > m else [[i] for i in range(n)]
    assert factor == (f if n > m else 1) and np.array_equal(pooled, slow_pool(a, want)) and len(pooled) <= m
    even, _ = pool_time(a, m, even=True)
    groups = [[i for i in range(n) if i * m // n == g] for g in range(m)] if n > m else [[i] for i in range(n)]
    assert np.array_equal(even, slow_pool(a, groups)) and len(even) == min(n, m)


def test_even_starts_cover_every_frame_once():
    for n, m in [(10, 3), (1000, 7), (5, 5)]:
        s = even_starts(n, m)
        assert s[0] == 0 and len(s) == m and (np.diff(np.r_[s, n]) > 0).all()


def test_bad_groups_are_refused():
    a = np.zeros((5, 2))
    for starts in ([1, 3], [0, 3, 3], [0, 5], []):
        with pytest.raises(ConfigError, match="group starts"):
            max_over_time(a, starts)
    with pytest.raises(ConfigError, match="max_rows"):
        pool_time(a, 0)


def test_the_web_columns_are_the_even_pool_of_the_whole_span():
    frames = np.random.default_rng(1).normal(size=(997, 4)).astype(np.float32)
    cp = ColumnPooler(997, width=100, bins=4)
    for a in range(0, 997, 130):  # streamed in uneven chunks
        cp.add(a, frames[a:a + 130])
    assert np.array_equal(cp.result(), pool_time(frames, 100, even=True)[0])
