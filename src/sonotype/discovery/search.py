"""Search by example: the regions most similar to a given one.

Two stages, so that a query does not run DTW against every stored region: a vector index (faiss) over each
sequence's mean embedding proposes candidates, then the exact DTW distance (the one the
clustering uses) re-ranks them. The index is exact (``IndexFlatL2``) up to ``HNSW_ABOVE``
items and an HNSW graph above that.

The index of one encoder's sequences is built once and kept (:class:`IndexCache`): in the process
(``sonotype serve`` answers every query from it), and, for a SQLite database file, on disk beside it
(``DB.search-cache/``), so a later process loads it instead of reading and scaling every sequence.
A cached index is used only while the store's :meth:`~sonotype.store.DiscoveryStore.sequences_fingerprint`
(count, highest region id, latest write) is the one it was built from; any change rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import ConfigError, DataError
from ..store import DiscoveryStore
from .dtw import dtw_distance
from .sequences import scale_sequences

HNSW_ABOVE = 20_000
CACHE_FORMAT = 1  # of the files under DB.search-cache/


def mean_embeddings(seqs: list[np.ndarray]) -> np.ndarray:
    """``(N, D)`` float32: the mean over windows of each sequence ``(n_i, D)``."""
    if not seqs:
        raise ConfigError("no sequences to index")
    return np.stack([np.asarray(s, np.float32).mean(axis=0) for s in seqs]).astype(np.float32)


@dataclass
class SequenceIndex:
    """Sequences with ids, their mean-embedding vector index, and DTW re-ranking.

    ``index``: a faiss index of the sequences' mean embeddings already built (one loaded from a
    cache); None builds it.
    """

    ids: np.ndarray                       # (N,) int64
    seqs: list[np.ndarray] = field(repr=False)
    band: float | int | None = None
    index: Any = field(default=None, repr=False)

    def __post_init__(self):
        self.ids = np.asarray(self.ids, np.int64)
        if len(self.ids) != len(self.seqs):
            raise ConfigError(f"{len(self.ids)} ids for {len(self.seqs)} sequences")
        if self.index is None:
            means = mean_embeddings(self.seqs)  # (N, D)
            d = means.shape[1]
            self.index = faiss.IndexHNSWFlat(d, 32) if len(self.ids) > HNSW_ABOVE else faiss.IndexFlatL2(d)
            self.index.add(np.ascontiguousarray(means))
        self._row = {int(i): r for r, i in enumerate(self.ids)}

    def row(self, region_id: int) -> int | None:
        """The row of ``region_id`` in :attr:`seqs`, or None when it is not indexed."""
        return self._row.get(int(region_id))

    def candidates(self, query: np.ndarray, n: int) -> np.ndarray:
        """Row numbers of the ``n`` sequences whose mean embedding is nearest the query's."""
        q = mean_embeddings([query])
        _, rows = self.index.search(q, min(n, len(self.ids)))
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


def build_index(store: DiscoveryStore, model_version: str, *, scaling: str = "zscore-l2") -> SequenceIndex:
    """The index of every stored sequence of ``model_version``, scaled as the clustering does (read
    and built now: the uncached path)."""
    seqs = store.sequences(model_version)
    if not seqs:
        raise DataError(f"{store.label}: no stored embedding sequences under encoder {model_version!r}; "
                        "run `sonotype cluster` first")
    ids = np.array(sorted(seqs), np.int64)
    return SequenceIndex(ids, scale_sequences([seqs[int(i)] for i in ids], mode=scaling))


class IndexCache:
    """Built :class:`SequenceIndex` objects by (database, encoder version, scaling), each kept while the
    store's fingerprint of that encoder's sequences is unchanged; at most ``size`` in memory.

    ``disk``: also keep them as files beside a SQLite database file (``DB.search-cache/``); a file
    that cannot be written (read-only folder) is skipped silently, one that is stale or unreadable is
    rebuilt. ``builds`` / ``loads`` count indexes built from the store / read from disk.
    """

    def __init__(self, *, size: int = 4, disk: bool = True):
        self.size, self.disk = int(size), bool(disk)
        self.builds = self.loads = 0
        self._mem: OrderedDict[tuple, tuple[tuple, SequenceIndex]] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, store: DiscoveryStore, model_version: str, *, scaling: str = "zscore-l2") -> SequenceIndex:
        """The current index of ``model_version``'s sequences in ``store``."""
        key = (store.label, str(model_version), str(scaling))
        fingerprint = _jsonable(store.sequences_fingerprint(model_version))
        with self._lock:
            hit = self._mem.get(key)
            if hit is not None and hit[0] == fingerprint:
                self._mem.move_to_end(key)
                return hit[1]
        file = _cache_file(store, key) if self.disk else None
        index = _load(file, fingerprint) if file is not None else None
        if index is not None:
            self.loads += 1
        else:
            index = build_index(store, model_version, scaling=scaling)
            self.builds += 1
            if file is not None:
                _save(file, fingerprint, index)
        with self._lock:
            self._mem[key] = (fingerprint, index)
            self._mem.move_to_end(key)
            while len(self._mem) > self.size:
                self._mem.popitem(last=False)
        return index

    def clear(self) -> None:
        with self._lock:
            self._mem.clear()


#: the process's cache (``sonotype serve`` and every call of :func:`similar_regions` share it)
INDEX_CACHE = IndexCache()


def similar_regions(store: DiscoveryStore, region_id: int, *, k: int = 10, model_version: str | None = None,
                    n_candidates: int | None = None, scaling: str = "zscore-l2",
                    cache: IndexCache | None = INDEX_CACHE) -> list[tuple[int, float]]:
    """Regions most similar to ``region_id`` among those with stored sequences of the same encoder
    (``model_version``, default: the most recent one the region has), scaled as the clustering does.
    ``cache`` None reads and indexes every sequence for this query alone.
    Returns ``(region id, DTW distance)``, nearest first."""
    versions = store.sequence_versions(region_id)
    if not versions:
        raise DataError(f"region {region_id} has no stored embedding sequence; run `sonotype cluster` on its run first")
    version = model_version or versions[0]
    index = (build_index(store, version, scaling=scaling) if cache is None
             else cache.index(store, version, scaling=scaling))
    row = index.row(region_id)
    if row is None:
        raise DataError(f"region {region_id} has no sequence under encoder {version!r}; stored: {versions}")
    return index.similar(index.seqs[row], k=k, n_candidates=n_candidates, exclude=region_id)


# ---------------------------------------------------------------------------- the files beside the database

def _jsonable(fingerprint: tuple) -> list:
    return [None if v is None else v if isinstance(v, (int, str)) else str(v) for v in fingerprint]


def _cache_file(store: DiscoveryStore, key: tuple) -> Path | None:
    db_file = getattr(store, "database_file", None)
    if db_file is None:
        return None
    name = hashlib.sha256(json.dumps(key[1:]).encode("utf-8")).hexdigest()[:24]
    return Path(str(db_file) + ".search-cache") / f"{name}.npz"


def _save(file: Path, fingerprint: list, index: SequenceIndex) -> None:
    """Write ``index`` to ``file`` (atomically: a reader sees the old file or the new one)."""
    lengths = np.array([len(s) for s in index.seqs], np.int64)
    try:
        file.parent.mkdir(exist_ok=True)
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, format=np.array(CACHE_FORMAT), fingerprint=np.array(json.dumps(fingerprint)),
                 ids=index.ids, lengths=lengths, windows=np.concatenate(index.seqs),
                 faiss=faiss.serialize_index(index.index))
        os.replace(tmp, file)
    except OSError:  # a cache only: a folder we may not write to costs a rebuild next time, nothing else
        return


def _load(file: Path, fingerprint: list) -> SequenceIndex | None:
    """The index in ``file`` when it is there, readable and built from ``fingerprint``; else None."""
    try:
        with np.load(file, allow_pickle=False) as z:
            if int(z["format"]) != CACHE_FORMAT or json.loads(str(z["fingerprint"])) != fingerprint:
                return None
            ids, lengths, windows = z["ids"], z["lengths"], z["windows"]
            index = faiss.deserialize_index(z["faiss"])
    except (OSError, KeyError, ValueError, RuntimeError):  # missing, torn or foreign: rebuild
        return None
    seqs = np.split(windows, np.cumsum(lengths)[:-1])  # (N,) of (n_i, D)
    return SequenceIndex(ids, seqs, index=index)
