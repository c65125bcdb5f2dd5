#!/usr/bin/env python
"""Benchmark sonotype.discovery.dtw: numba kernel vs a naive pure-Python DP, all-pairs matrix, kNN graph.

Prints markdown tables on stdout (progress on stderr):

1. pairs/s at sequence length 50 and 200 (D=128, default band (n+m)/4): the naive pure-Python
   double loop over a full (n+1) x (m+1) matrix (NumPy per-cell Euclidean cost, 1 thread, timed on
   a few pairs), ``dtw_distance`` called pair by pair (1 thread), and ``dtw_matrix`` (all threads).
2. wall time of ``dtw_matrix`` for ``--n-matrix`` sequences (lengths 20-60, D=128), and of
   ``knn_graph`` for ``--n-knn`` sequences; the exact ``n_knn^2`` matrix is run only if its time,
   extrapolated from the exact matrix's rate, is under ``--full-limit`` seconds. kNN recall@k vs exact
   is measured on the ``--n-matrix`` set for ``--candidates`` x 1, 2 and 4.

The synthetic sequences are clustered like real sound types: ``--protos`` prototypes, each copy
time-stretched by 0.7-1.4x (linear interpolation) plus Gaussian noise (sigma 0.5 vs unit prototypes).

    NUMBA_NUM_THREADS=2 .venv/bin/python bench/bench_dtw.py          # default: 2 threads
    .venv/bin/python bench/bench_dtw.py --n-matrix 300 --n-knn 2000  # quick smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def naive_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Obvious pure-Python DP: full matrix, band (n+m)//4 widened to |n-m|, cost / (n+m)."""
    n, m = len(a), len(b)
    w = max((n + m) // 4, abs(n - m))
    acc = [[float("inf")] * (m + 1) for _ in range(n + 1)]
    acc[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if abs(i - j) <= w:
                cost = float(np.sqrt(np.sum((a[i - 1] - b[j - 1]) ** 2)))
                acc[i][j] = cost + min(acc[i - 1][j], acc[i][j - 1], acc[i - 1][j - 1])
    return acc[n][m] / (n + m)


def clustered(rng, count: int, lo: int, hi: int, dim: int, protos: int) -> list[np.ndarray]:
    base = [rng.normal(size=(int(rng.integers(lo, hi + 1)), dim)) for _ in range(protos)]
    out = []
    for k in range(count):
        p = base[k % protos]
        n = int(np.clip(round(len(p) * rng.uniform(0.7, 1.4)), lo, hi))
        x = np.linspace(0, len(p) - 1, n)
        i0 = np.floor(x).astype(int)
        i1 = np.minimum(i0 + 1, len(p) - 1)
        f = (x - i0)[:, None]
        q = (1 - f) * p[i0] + f * p[i1] + rng.normal(scale=0.5, size=(n, dim))
        out.append(q.astype(np.float32))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("NUMBA_NUM_THREADS", 2)))
    ap.add_argument("--n-matrix", type=int, default=1000)
    ap.add_argument("--n-knn", type=int, default=10000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--protos", type=int, default=100)
    ap.add_argument("--full-limit", type=float, default=300.0)
    args = ap.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)  # before numba is imported
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from sonotype.discovery.dtw import dtw_distance, dtw_matrix, knn_graph

    rng = np.random.default_rng(0)
    dim = 128
    warm = [rng.normal(size=(5, dim)).astype(np.float32) for _ in range(3)]
    dtw_matrix(warm), dtw_distance(warm[0], warm[1])  # compile / load the cache outside the timings

    print(f"# bench_dtw: {args.threads} numba threads, {os.cpu_count()} CPUs, "
          f"load average at start {' / '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| length | naive Python pairs/s | dtw_distance pairs/s (1 call each) | dtw_matrix pairs/s "
          f"({args.threads} thr) | speed-up single / matrix |")
    print("|---|---|---|---|---|")
    for length, n_naive, n_mat in ((50, 6, 120), (200, 2, 40)):
        seqs = [rng.normal(size=(length, dim)).astype(np.float32) for _ in range(n_mat)]
        t = time.perf_counter()
        for p in range(n_naive):
            naive_dtw(seqs[2 * p].astype(np.float64), seqs[2 * p + 1].astype(np.float64))
        naive = n_naive / (time.perf_counter() - t)
        pairs = [(i, j) for i in range(n_mat) for j in range(i + 1, n_mat)][:2000]
        t = time.perf_counter()
        for i, j in pairs:
            dtw_distance(seqs[i], seqs[j])
        single = len(pairs) / (time.perf_counter() - t)
        t = time.perf_counter()
        dtw_matrix(seqs)
        mat = n_mat * (n_mat - 1) / 2 / (time.perf_counter() - t)
        print(f"| {length} | {naive:.2f} | {single:,.0f} | {mat:,.0f} | {single / naive:,.0f}x / {mat / naive:,.0f}x |")
        print(f"length {length} done", file=sys.stderr)

    print("\n| task | sequences | pairs computed | wall s | notes |")
    print("|---|---|---|---|---|")
    seqs = clustered(rng, args.n_matrix, 20, 60, dim, max(1, args.protos * args.n_matrix // args.n_knn))
    t = time.perf_counter()
    full = dtw_matrix(seqs, progress=True)
    t_mat = time.perf_counter() - t
    n_pairs = args.n_matrix * (args.n_matrix - 1) // 2
    rate = n_pairs / t_mat
    print(f"| dtw_matrix (exact) | {args.n_matrix:,} | {n_pairs:,} | {t_mat:.1f} | {rate:,.0f} pairs/s |")
    np.fill_diagonal(full, np.inf)
    exact = np.argsort(full, axis=1, kind="stable")[:, :args.k]
    for cand in sorted({args.candidates, 2 * args.candidates, 4 * args.candidates}):
        cand = min(cand, args.n_matrix - 1)
        t = time.perf_counter()
        idx, _ = knn_graph(seqs, args.k, candidates=cand)
        t_small = time.perf_counter() - t
        recall = np.mean([len(set(idx[i]) & set(exact[i])) / args.k for i in range(len(seqs))])
        print(f"| knn_graph k={args.k} candidates={cand} | {args.n_matrix:,} | <= {args.n_matrix * cand:,} "
              f"| {t_small:.1f} | recall@{args.k} vs exact = {recall:.3f} |")

    big = clustered(rng, args.n_knn, 20, 60, dim, args.protos)
    t = time.perf_counter()
    knn_graph(big, args.k, candidates=args.candidates, progress=True)
    t_knn = time.perf_counter() - t
    big_pairs = args.n_knn * (args.n_knn - 1) // 2
    est = big_pairs / rate
    print(f"| knn_graph k={args.k} candidates={args.candidates} | {args.n_knn:,} | <= {args.n_knn * args.candidates:,} "
          f"| {t_knn:.1f} | approximate (mean-embedding candidates) |")
    if est < args.full_limit:
        t = time.perf_counter()
        dtw_matrix(big, progress=True)
        print(f"| dtw_matrix (exact) | {args.n_knn:,} | {big_pairs:,} | {time.perf_counter() - t:.1f} | |")
    else:
        print(f"| dtw_matrix (exact) | {args.n_knn:,} | {big_pairs:,} | not run | estimated {est:,.0f} s "
              f"from the rate above (> {args.full_limit:.0f} s limit) |")
    print(f"\nload average at end {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
