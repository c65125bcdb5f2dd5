#!/usr/bin/env python
"""Benchmark the full clustering of N synthetic sequences (what `sonotype cluster` does after embedding).

For each N (default 1,000 and 10,000; lengths 20-60 windows, D=128, ``--protos`` true types):

* ``all pairs``: DTW matrix -> average linkage at the 45th percentile (scipy) -> HDBSCAN;
  run where the matrix is affordable (``--full-limit`` s, extrapolated), else estimated.
* ``kNN graph``: ``sonotype.discovery.discover.graph_clustering``, what `cluster` uses above ``max_full``
  regions (threshold from the DTW of 20,000 random pairs -> k-nearest-neighbour DTW graph, k=10,
  50 mean-embedding candidates -> average linkage on the graph).
* ``k-means`` on all window embeddings (k=24), each sequence by majority vote.

Each row gives the wall time, the clusters found and their ARI against the true types, so the
fast route is also shown to give the same answer. The baseline is the obvious all-pairs route.

    NUMBA_NUM_THREADS=2 .venv/bin/python bench/bench_cluster.py
    .venv/bin/python bench/bench_cluster.py --sizes 500 2000      # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dtw import clustered

from sonotype.discovery.agreement import ari
from sonotype.discovery.cluster import agglomerative, hdbscan, kmeans_sequences, silhouette_cut
from sonotype.discovery.discover import DiscoverConfig, graph_clustering
from sonotype.discovery.dtw import dtw_distance, dtw_matrix


def timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def one_size(n: int, args, rate: float | None) -> float | None:
    """Print the rows for ``n`` sequences; returns the all-pairs DTW rate measured (or the one given)."""
    rng = np.random.default_rng(args.seed)
    seqs = clustered(rng, n, 20, 60, 128, args.protos)
    truth = np.arange(n) % args.protos
    pairs = n * (n - 1) // 2
    est = pairs / rate if rate else None
    if est is None or est < args.full_limit:
        dist, t_mat = timed(lambda: dtw_matrix(seqs))
        rate = pairs / t_mat
        agg, t_agg = timed(lambda: agglomerative(dist, percentile=45))
        hdb, t_hdb = timed(lambda: hdbscan(dist, min_cluster_size=5))
        sil, t_sil = timed(lambda: silhouette_cut(dist))
        print(f"| {n:,} | all pairs: DTW matrix | {t_mat:.1f} | | | {pairs:,} pairs, {rate:,.0f} pairs/s |")
        print(f"| {n:,} | all pairs: + average linkage | {t_mat + t_agg:.1f} | {agg.n_clusters} | "
              f"{ari(truth, agg.labels):.3f} | linkage {t_agg:.1f} s |")
        print(f"| {n:,} | all pairs: + average linkage, silhouette-best k | {t_mat + t_sil:.1f} | {sil.n_clusters} | "
              f"{ari(truth, sil.labels):.3f} | cut search {t_sil:.1f} s |")
        print(f"| {n:,} | all pairs: + HDBSCAN | {t_mat + t_hdb:.1f} | {hdb.n_clusters} | "
              f"{ari(truth, hdb.labels):.3f} | HDBSCAN {t_hdb:.1f} s, {int((hdb.labels < 0).sum())} unassigned |")
    else:
        print(f"| {n:,} | all pairs | not run | | | {pairs:,} pairs: estimated {est:,.0f} s at {rate:,.0f} pairs/s |")
    g, t_g = timed(lambda: graph_clustering(seqs, DiscoverConfig(seed=args.seed)))
    ratio = f"; {est / t_g:,.0f}x faster than the all-pairs DTW alone" if est and est >= args.full_limit else ""
    print(f"| {n:,} | kNN graph + graph linkage | {t_g:.1f} | {g.n_clusters} | {ari(truth, g.labels):.3f} | "
          f"k=10, 50 candidates{ratio} |")
    (km, _), t_km = timed(lambda: kmeans_sequences(seqs, k=24, seed=args.seed))
    print(f"| {n:,} | k-means on windows (k=24) | {t_km:.1f} | {km.n_clusters} | {ari(truth, km.labels):.3f} | "
          f"{sum(len(s) for s in seqs):,} windows |")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--protos", type=int, default=40)
    ap.add_argument("--full-limit", type=float, default=600.0, help="run the all-pairs route only below this, s")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    threads = os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count()))
    print(f"# bench_cluster: {threads} numba threads, {os.cpu_count()} CPUs, {args.protos} true types, "
          f"lengths 20-60, D=128")
    print("| sequences | route | wall s | clusters | ARI vs true types | notes |")
    print("|---|---|---|---|---|---|")
    dtw_distance(np.zeros((3, 128), np.float32), np.ones((4, 128), np.float32))  # compile outside the timings
    rate = None
    for n in args.sizes:
        rate = one_size(n, args, rate)
        print(f"{n} done", file=sys.stderr)
    print(f"\nload average at end {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
