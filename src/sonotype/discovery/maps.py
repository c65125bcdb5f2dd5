"""2-d maps of sequences for looking at sound types: t-SNE and UMAP.

From a precomputed DTW matrix (the same distances the clustering uses) when there is one, else
from the sequences' mean embeddings. Seeded: the same input gives the same map.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError

METHODS = ("tsne", "umap")


def embedding_map(*, dist: np.ndarray | None = None, vectors: np.ndarray | None = None, method: str = "tsne",
                  seed: int = 0, perplexity: float = 30.0, n_neighbors: int = 15) -> np.ndarray:
    """``(N, 2)`` float64 coordinates from ``dist (N, N)`` or ``vectors (N, D)`` (exactly one).

    t-SNE's perplexity and UMAP's neighbour count are clipped for small N.
    """
    if (dist is None) == (vectors is None):
        raise ConfigError("give exactly one of dist= (N, N) or vectors= (N, D)")
    if method not in METHODS:
        raise ConfigError(f"unknown map method {method!r}; expected one of {METHODS}")
    x = np.asarray(dist if dist is not None else vectors, np.float64)
    n = x.shape[0]
    if n < 3:
        return np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n)])
    metric = "precomputed" if dist is not None else "euclidean"
    if method == "tsne":
        from sklearn.manifold import TSNE
        p = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
        return TSNE(n_components=2, perplexity=p, metric=metric, init="random" if dist is not None else "pca",
                    random_state=seed).fit_transform(x)
    import umap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap warns that a fixed seed disables parallelism
        reducer = umap.UMAP(n_components=2, n_neighbors=int(min(n_neighbors, n - 1)), metric=metric,
                            random_state=seed, init="random" if n < 10 else "spectral")
        return np.asarray(reducer.fit_transform(x), np.float64)
