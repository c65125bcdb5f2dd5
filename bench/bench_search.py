#!/usr/bin/env python
"""Benchmark search by example: query latency with the index cache vs without it.

For each size (default 1,000 and 10,000 regions) a SQLite file is filled with synthetic embedding
sequences (``--dim`` wide, 4-24 windows each, clustered around ``--protos`` prototypes) and
``similar_regions`` (k=10, the default 100 DTW candidates) is timed, median of ``--queries`` queries:

- ``uncached``: ``cache=None``, the baseline (what every query did before the cache): read every
  sequence from the database, scale them, build the faiss index, then search;
- ``cached``: a warm in-process :class:`IndexCache` (what ``sonotype serve`` does from its 2nd query on);
- ``from disk``: a fresh process's first query, the index read from ``DB.search-cache/``.

Prints a markdown table on stdout (progress on stderr).

    .venv/bin/python bench/bench_search.py                 # 1k and 10k regions
    .venv/bin/python bench/bench_search.py --sizes 500     # quick smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load3  # noqa: E402

from sonotype.detection.regions import Region  # noqa: E402
from sonotype.discovery.search import IndexCache, similar_regions  # noqa: E402
from sonotype.store import open_store  # noqa: E402

VERSION = "bench@1/stride4"


def fill(url: str, n: int, *, dim: int, protos: int, seed: int) -> list[int]:
    """``n`` regions of one recording with a synthetic sequence each; returns the region ids."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(protos, dim)).astype(np.float32)
    with open_store(url) as s:
        rec = s.add_recording(path="synthetic.wav", content_hash=f"{n:064d}", sample_rate=1000.0, channels=1,
                              frames=10 ** 9, channel_used=0, format="WAV")
        run = s.get_or_create_run(model_id=s.register_model(version="m", path=None, kind="detector"), settings={})
        s.save_result(rec, run, [Region(i * 100, i * 100 + 50, 1000.0, 0.9, 0.5, i, 3) for i in range(n)],
                      n_windows=100 * n, seconds=1.0)
        ids = [g.id for g in s.regions()]
        for a in range(0, n, 2000):  # in batches: bounded memory per transaction
            s.put_sequences(VERSION, {i: centres[rng.integers(protos)] + 0.5 * rng.normal(size=(rng.integers(4, 25),
                                                                                                      dim))
                                      for i in ids[a:a + 2000]})
    return ids


def median_ms(fn, queries: list[int]) -> float:
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--protos", type=int, default=20)
    ap.add_argument("--queries", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            url = f"sqlite:///{Path(tmp) / f'search{n}.db'}"
            print(f"filling {n} regions ...", file=sys.stderr, flush=True)
            ids = fill(url, n, dim=a.dim, protos=a.protos, seed=a.seed)
            queries = [int(q) for q in np.random.default_rng(a.seed + 1).choice(ids, a.queries, replace=False)]
            with open_store(url, read_only=True) as s:
                similar_regions(s, queries[0], cache=None)  # warm-up: numba's DTW compilation, page cache
                uncached = median_ms(lambda q: similar_regions(s, q, cache=None), queries)
                warm = IndexCache(disk=False)
                similar_regions(s, queries[0], cache=warm)
                cached = median_ms(lambda q: similar_regions(s, q, cache=warm), queries)
                same = all(similar_regions(s, q, cache=warm) == similar_regions(s, q, cache=None) for q in queries[:3])
                similar_regions(s, queries[0], cache=IndexCache())  # writes DB.search-cache/
                disk = median_ms(lambda q: similar_regions(s, q, cache=IndexCache()), queries)
            assert warm.builds == 1, warm.builds
            rows.append((n, uncached, cached, disk, same))
    print(f"\nsearch by example, k=10, dim {a.dim}, 4-24 windows per region; median of {a.queries} queries; "
          f"{os.cpu_count()} CPUs, load {load3()}\n")
    print("| regions | uncached ms (baseline) | cached ms | speed-up | first query from disk ms | same hits |")
    print("|---:|---:|---:|---:|---:|:---:|")
    for n, u, c, d, same in rows:
        print(f"| {n:,} | {u:.1f} | {c:.1f} | {u / c:.1f}x | {d:.1f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
