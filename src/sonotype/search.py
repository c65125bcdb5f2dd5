"""Search by example: the regions most similar to a given one.

Two stages, so that a query does not run DTW against every stored region: a vector index (faiss) over each
sequence's mean embedding proposes candidates, then the exact DTW distance (the one the
clustering uses) re-ranks them. The index is exact (``IndexFlatL2``) up to ``HNSW_ABOVE``
items and an HNSW graph above that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dtw import dtw_distance
from .errors import ConfigError, DataError
from .sequences import scale_sequences
from .store import Store

HNSW_ABOVE = 20_000


def mean_embeddings(seqs: list[np.ndarray]) -> np.ndarray:
    """``(N, D)`` float32: the mean over windows of each sequence ``(n_i, D)``."""
    if not seqs:
        raise ConfigError("no sequences to index")
    return np.stack([np.asarray(s, np.float32).mean(axis=0) for s in seqs]).astype(np.float32)


@dataclass
class SequenceIndex:
    """Sequences with ids, their mean-embedding vector index, and DTW re-ranking."""

    ids: np.ndarray                       # (N,) int64
    seqs: list[np.ndarray] = field(repr=False)
    band: float | int | None = None

    def __post_init__(self):
        import faiss
        self.ids = np.asarray(self.ids, np.int64)
        if len(self.ids) != len(self.seqs):
            raise ConfigError(f"{len(self.ids)} ids for {len(self.seqs)} sequences")
        means = mean_embeddings(self.seqs)
        d = means.shape[1]
        self._index = faiss.IndexHNSWFlat(d, 32) if len(self.ids) > HNSW_ABOVE else faiss.IndexFlatL2(d)
        self._index.add(np.ascontiguousarray(means))
        self._row = {int(i): r for r, i in enumerate(self.ids)}

    def candidates(self, query: np.ndarray, n: int) -> np.ndarray:
        """Row numbers of the ``n`` sequences whose mean embedding is nearest the query's."""
        q = mean_embeddings([query])
        _, rows = self._index.search(q, min(n, len(self.ids)))
        return rows[0][rows[0] >= 0]

    def similar(self, query: np.ndarray, *, k: int = 10, n_candidates: int | None = None,
                exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` most similar ``(id, DTW distance)``, nearest first, among ``n_candidates``
        (default ``max(10 k, 50)``) proposed by the index; ``exclude`` drops one id (the query's own)."""
        if not 1 <= k <= 1000:
            raise ConfigError(f"k={k}; expected 1..1000")
        n = n_candidates or max(10 * k, 50)
        out = []
        for r in self.candidates(query, n + (exclude is not None)):
            rid = int(self.ids[r])
            if rid != exclude:
                out.append((rid, dtw_distance(query, self.seqs[r], band=self.band)))
        out.sort(key=lambda t: (t[1], t[0]))
        return out[:k]


def similar_regions(store: Store, region_id: int, *, k: int = 10, model_version: str | None = None,
                    n_candidates: int | None = None, scaling: str = "zscore-l2") -> list[tuple[int, float]]:
    """Regions most similar to ``region_id`` among those with stored sequences of the same encoder
    (``model_version``, default: the most recent one the region has), scaled as the clustering does.
    Returns ``(region id, DTW distance)``, nearest first."""
    versions = store.sequence_versions(region_id)
    if not versions:
        raise DataError(f"region {region_id} has no stored embedding sequence; run `sonotype cluster` on its run first")
    version = model_version or versions[0]
    seqs = store.sequences(version)
    if region_id not in seqs:
        raise DataError(f"region {region_id} has no sequence under encoder {version!r}; stored: {versions}")
    ids = np.array(sorted(seqs), np.int64)
    scaled = scale_sequences([seqs[int(i)] for i in ids], mode=scaling)
    index = SequenceIndex(ids, scaled)
    return index.similar(scaled[int(np.searchsorted(ids, region_id))], k=k, n_candidates=n_candidates,
                         exclude=region_id)
