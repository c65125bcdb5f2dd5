"""``sonotype cluster``: sound types among a detection run's regions, stored in the database.

regions (store) -> embedding sequences (computed once per encoder, stored) -> DTW ->
clusterings (agglomerative / k-means / HDBSCAN) and 2-d maps (t-SNE / UMAP) -> store.

Up to ``DiscoverConfig.max_full`` regions the all-pairs DTW matrix is computed; above it a
k-nearest-neighbour DTW graph replaces it (average linkage on the graph, threshold from the
percentile of DTW distances over a seeded sample of random pairs; maps from mean embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from ..models.backends import BACKENDS, load_backend
from ..models.checkpoint import LoadedModel
from ..params import COUNT, SIZE, Number, param
from ..store import Store
from .cluster import (
    Clustering,
    agglomerative,
    graph_agglomerative,
    hdbscan,
    kmeans_sequences,
    percentile_threshold,
    silhouette_cut,
)
from .dtw import dtw_matrix, dtw_pairs, knn_graph
from .maps import METHODS, embedding_map
from .search import mean_embeddings
from .sequences import (
    SCALINGS,
    SEQUENCE_STRIDE,
    region_sequences,
    scale_sequences,
    sequence_key,
)

ALGORITHMS = ("agglomerative", "kmeans", "hdbscan")
CUTS = ("percentile", "silhouette")


@dataclass(frozen=True)
class DiscoverConfig:
    """How regions are clustered and mapped (defaults follow the original: average linkage cut at
    the 45th distance percentile, k-means with 24 clusters). ``cut="silhouette"`` picks the cluster
    count with the best mean silhouette instead (all-pairs route only; the kNN-graph route always cuts
    at the percentile)."""

    algorithms: tuple[str, ...] = param(("agglomerative", "kmeans"), flag="--algorithm", repeat=True,
                                        choices=ALGORITHMS, help="clustering algorithm (repeatable)")
    cut: str = param("percentile", choices=CUTS,
                     help="agglomerative cut: at --percentile of pair distances (as the original), or at the "
                          "cluster count with the best mean silhouette")
    percentile: float = param(45.0, check=Number(lo=0, hi=100, what="a percentile"),
                              help="agglomerative cut: this percentile of all pair distances (the original used 40-50)")
    n_clusters: int | None = param(None, check=COUNT, help="agglomerative: cut at this many clusters")
    k: int = param(24, check=COUNT, help="k-means clusters (on window embeddings; clipped to the number of windows)")
    min_cluster_size: int = param(5, check=Number(int, lo=2), help="HDBSCAN: the smallest cluster")
    band: float | int | None = param(None, check=Number(lo=0, lo_open=True, what="a fraction"),
                                     help="DTW band: a fraction of the longer sequence (default (n+m)/4)")
    scaling: str = param("zscore-l2", choices=SCALINGS, help="embedding scaling before DTW")
    stride: int | None = param(SEQUENCE_STRIDE, check=SIZE, none_as=0, flag="--sequence-stride", aliases=("--stride",),
                               help="frames between the windows of a region's embedding sequence "
                                    "(0: the detector's own windows)")
    backend: str = param("lstm", choices=BACKENDS,
                         help="embeddings of the regions: lstm (the run's or --model's encoder) or birdnet (extra "
                              "sonotype[birdnet], model licence CC BY-NC-SA 4.0)")
    hop: float | None = param(None, check=Number(lo=0, lo_open=True, hi=3, what="seconds"),
                              help="seconds between a pretrained backend's windows (default: the backend's; birdnet 1.0)")
    speedup: float = param(1.0, check=Number(lo=0, lo_open=True, hi=1000),
                           help="play the audio this many times faster before a backend hears it "
                                "(for low-frequency species)")
    max_full: int = param(3000, check=COUNT, help="above this many regions use a kNN DTW graph instead of all pairs")
    knn: int = param(10, check=COUNT, help="kNN graph: DTW neighbours kept per region")
    candidates: int = param(50, check=COUNT, help="kNN graph: candidates per region (nearest by mean embedding) "
                                                  "whose DTW is computed")
    threshold_sample: int = param(20000, check=COUNT, help="kNN graph: random pairs whose DTW sets the cut")
    maps: tuple[str, ...] = param(("tsne", "umap"), flag="--map", repeat=True, choices=METHODS,
                                  help="2-d map (repeatable)")
    seed: int = param(0, help="random seed")

    def __post_init__(self):
        bad = [a for a in self.algorithms if a not in ALGORITHMS]
        if bad or not self.algorithms:
            raise ConfigError(f"unknown clustering algorithm(s) {bad}; expected some of {ALGORITHMS}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; expected one of {BACKENDS}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; expected one of {SCALINGS}")
        if self.cut not in CUTS:
            raise ConfigError(f"unknown cut {self.cut!r}; expected 'silhouette' or 'percentile'")
        bad = [m for m in self.maps if m not in METHODS]
        if bad:
            raise ConfigError(f"unknown map method(s) {bad}; expected some of {METHODS}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Discovery:
    """Everything one ``discover`` call produced, aligned with ``region_ids``."""

    run_id: int
    model_version: str
    region_ids: np.ndarray                        # (N,) int64
    sequences: list[np.ndarray] = field(repr=False)
    clusterings: dict[str, Clustering] = field(repr=False)
    maps: dict[str, np.ndarray] = field(repr=False)   # method -> (N, 2)
    dist: np.ndarray | None = field(default=None, repr=False)  # (N, N) when computed


def store_params(clustering: Clustering, version: str, config: DiscoverConfig) -> dict:
    """The parameters a clustering is stored under: its own plus the encoder and DTW band."""
    return {**clustering.params, "encoder": version, "band": config.band, "scaling": config.scaling}


def discover(store: Store, run_id: int, model: LoadedModel, *, config: DiscoverConfig = DiscoverConfig(),
             progress: bool = False, log: Callable[[str], None] = print) -> Discovery:
    """Cluster and map the regions of detection run ``run_id`` with ``model``'s encoder; store the results."""
    if store.run(run_id) is None:
        raise DataError(f"{store.label}: no detection run {run_id}; `sonotype runs --db URL` lists the runs")
    backend = (None if config.backend == "lstm"
               else load_backend(config.backend, hop_s=config.hop, speedup=config.speedup))
    version = backend.info.key if backend is not None else sequence_key(model, config.stride)
    seqs_by_id = region_sequences(store, run_id, model, stride=config.stride, backend=backend, progress=progress,
                                  log=log)
    ids = np.array(sorted(seqs_by_id), np.int64)
    if ids.size < 2:
        raise DataError(f"run {run_id} has {ids.size} region(s) with sequences; clustering needs at least 2")
    seqs = scale_sequences([seqs_by_id[int(i)] for i in ids], mode=config.scaling)
    n = len(seqs)
    clusterings: dict[str, Clustering] = {}
    dist = None
    if n <= config.max_full:
        dist = dtw_matrix(seqs, band=config.band, progress=progress)
        if "agglomerative" in config.algorithms:
            clusterings["agglomerative"] = (
                silhouette_cut(dist) if config.cut == "silhouette" and config.n_clusters is None
                else agglomerative(dist, n_clusters=config.n_clusters, percentile=config.percentile))
        if "hdbscan" in config.algorithms:
            clusterings["hdbscan"] = hdbscan(dist, min_cluster_size=min(config.min_cluster_size, n))
    else:
        if "hdbscan" in config.algorithms:
            log(f"hdbscan skipped: {n} regions > max_full={config.max_full} (it needs the all-pairs matrix)")
        if "agglomerative" in config.algorithms:
            clusterings["agglomerative"] = graph_clustering(seqs, config, progress=progress)
    if "kmeans" in config.algorithms:
        total = sum(s.shape[0] for s in seqs)
        clusterings["kmeans"] = kmeans_sequences(seqs, k=min(config.k, total), seed=config.seed)[0]
    for c in clusterings.values():
        store.add_cluster_assignments(run_id, c.algorithm, store_params(c, version, config),
                                      dict(zip(ids.tolist(), c.labels.tolist())))
        log(f"{c.algorithm}: {c.n_clusters} clusters over {n} regions")
    maps = {}
    for method in config.maps:
        coords = (embedding_map(dist=dist, method=method, seed=config.seed) if dist is not None
                  else embedding_map(vectors=mean_embeddings(seqs), method=method, seed=config.seed))
        store.put_map_points(run_id, method, {"encoder": version, "seed": config.seed},
                             {int(i): (float(x), float(y)) for i, (x, y) in zip(ids, coords)})
        maps[method] = coords
    return Discovery(run_id, version, ids, seqs, clusterings, maps, dist)


def graph_clustering(seqs: list[np.ndarray], config: DiscoverConfig, *, progress: bool = False) -> Clustering:
    """Average linkage on the kNN DTW graph, cut at ``config.percentile`` of the DTW distances of
    ``config.threshold_sample`` seeded random pairs (the route for more than ``max_full`` regions)."""
    n = len(seqs)
    rng = np.random.default_rng(config.seed)
    m = min(config.threshold_sample, n * (n - 1) // 2)
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = a != b
    threshold = percentile_threshold(dtw_pairs(seqs, a[keep], b[keep], band=config.band), config.percentile)
    nbr, d = knn_graph(seqs, min(config.knn, n - 1), band=config.band, candidates=min(config.candidates, n - 1),
                       progress=progress)
    src = np.repeat(np.arange(n), nbr.shape[1])
    c = graph_agglomerative(n, src, nbr.ravel(), d.ravel(), threshold=threshold)
    return Clustering("agglomerative", {**c.params, "percentile": config.percentile, "graph": "knn",
                                        "knn": config.knn, "candidates": config.candidates}, c.labels)
