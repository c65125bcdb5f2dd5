"""The discovery side of the store: embedding sequences per encoder, clusterings (cluster assignments
of a run's regions) and 2-d map points."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import queries as q
from .base import Connected, clustering_key
from .rows import ClusterRow, dumps, loads, now_iso, opt_int


class DiscoveryStore(Connected):
    """Embedding sequences, cluster assignments and map points."""

    # ------------------------------------------------------------------ clusterings
    def add_cluster_assignments(self, run_id: int, algorithm: str, params: dict | None,
                                assignments: dict[int, int]) -> int:
        """Store region id -> cluster for (run, algorithm, params), replacing an earlier set with the same key."""
        key = clustering_key(run_id, algorithm, params)
        rows = [{**key, "region_id": int(rid), "cluster": int(cl), "created_at": now_iso()}
                for rid, cl in assignments.items()]
        with self._tx(write=True) as c:
            c.execute(q.DELETE_CLUSTERS, key)
            if rows:
                c.execute(q.INSERT_CLUSTER, rows)
        return len(rows)

    def cluster_assignments(self, *, run_id: int | None = None, algorithm: str | None = None,
                            region_id: int | None = None) -> list[ClusterRow]:
        where, p = q.match(run_id=opt_int(run_id), algorithm=algorithm, region_id=opt_int(region_id))
        with self._tx() as c:
            rows = c.execute(q.where(q.CLUSTERS_WHERE, where), p).mappings().all()
        return [ClusterRow(int(r["id"]), int(r["region_id"]), int(r["run_id"]), r["algorithm"], loads(r["params"]),
                           int(r["cluster"]), r["created_at"]) for r in rows]

    def clusterings(self, run_id: int | None = None) -> list[dict]:
        """The distinct stored clusterings: run_id, algorithm, params, n_regions, n_clusters, created_at."""
        where, p = q.match(run_id=opt_int(run_id))
        with self._tx() as c:
            rows = c.execute(q.where(q.CLUSTERINGS_WHERE, where), p).mappings().all()
        return [{"run_id": int(r["run_id"]), "algorithm": r["algorithm"], "params": loads(r["params"]),
                 "n_regions": int(r["n_regions"]), "n_clusters": int(r["n_clusters"]),
                 "created_at": r["created_at"]} for r in rows]

    def cluster_members(self, run_id: int, algorithm: str, params: dict | None) -> dict[int, list[int]]:
        """Cluster number -> sorted region ids, for one clustering."""
        with self._tx() as c:
            rows = c.execute(q.SELECT_CLUSTER_MEMBERS, clustering_key(run_id, algorithm, params)).all()
        out: dict[int, list[int]] = {}
        for rid, cl in rows:
            out.setdefault(int(cl), []).append(int(rid))
        return out

    # ------------------------------------------------------------------ embedding sequences
    def put_sequences(self, model_version: str, sequences: dict[int, Any]) -> int:
        """Store region id -> (n_windows, dim) float32 embedding sequence under ``model_version``
        (replacing earlier ones for the same region and model); returns the count."""
        rows = []
        for rid, seq in sequences.items():
            a = _as_float32_2d(seq)
            rows.append({"region_id": int(rid), "model_version": str(model_version), "n_windows": a.shape[0],
                         "dim": a.shape[1], "data": a.astype("<f4").tobytes(), "created_at": now_iso()})
        if rows:
            with self._tx(write=True) as c:
                c.execute(q.DELETE_SEQUENCE, [{k: r[k] for k in ("region_id", "model_version")} for r in rows])
                c.execute(q.INSERT_SEQUENCE, rows)
        return len(rows)

    def sequences(self, model_version: str, region_ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """Region id -> (n_windows, dim) float32 array for the stored sequences of ``model_version``
        (all, or those among ``region_ids``; missing ones are simply absent)."""
        wanted = None if region_ids is None else {int(r) for r in region_ids}
        with self._tx() as c:
            rows = c.execute(q.SELECT_SEQUENCES, {"model_version": str(model_version)}).all()
        out = {}
        for rid, n, dim, data in rows:
            if wanted is None or int(rid) in wanted:
                out[int(rid)] = np.frombuffer(bytes(data), dtype="<f4").reshape(int(n), int(dim)).astype(np.float32)
        return out

    def sequences_fingerprint(self, model_version: str) -> tuple[int, int | None, str | None]:
        """``(count, highest region id, latest write time)`` of the stored sequences of ``model_version``:
        any added, replaced or deleted sequence changes it (a cache of them is stale when it differs)."""
        with self._tx() as c:
            n, top, at = c.execute(q.SEQUENCES_FINGERPRINT, {"model_version": str(model_version)}).one()
        return int(n), opt_int(top), at

    def sequence_versions(self, region_id: int | None = None) -> list[str]:
        """Encoder versions with stored sequences (of one region, or any), most recently stored first."""
        where, p = q.match(region_id=opt_int(region_id))
        with self._tx() as c:
            rows = c.execute(q.where(q.SEQUENCE_VERSIONS_WHERE, where), p).all()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ maps
    def put_map_points(self, run_id: int, method: str, params: dict | None,
                       points: dict[int, tuple[float, float]]) -> int:
        """Store region id -> (x, y) map coordinates for (run, method, params), replacing an earlier set."""
        key = {"run_id": int(run_id), "method": str(method), "params": dumps(params)}
        rows = [{**key, "region_id": int(rid), "x": float(x), "y": float(y), "created_at": now_iso()}
                for rid, (x, y) in points.items()]
        with self._tx(write=True) as c:
            c.execute(q.DELETE_MAP_POINTS, key)
            if rows:
                c.execute(q.INSERT_MAP_POINT, rows)
        return len(rows)

    def map_points(self, *, run_id: int, method: str, params: dict | None = None) -> dict[int, tuple[float, float]]:
        """Region id -> (x, y) for (run, method); with ``params`` None, the most recent parameter set."""
        with self._tx() as c:
            if params is None:
                found = c.execute(q.LATEST_MAP_PARAMS, {"run_id": int(run_id), "method": str(method)}).scalar()
                if found is None:
                    return {}
            else:
                found = dumps(params)
            rows = c.execute(q.SELECT_MAP_POINTS, {"run_id": int(run_id), "method": str(method),
                                                   "params": found}).all()
        return {int(r): (float(x), float(y)) for r, x, y in rows}


def _as_float32_2d(seq: Any) -> np.ndarray:
    a = np.asarray(seq, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"an embedding sequence must be (n_windows, dim) with dim > 0, got shape {a.shape}")
    return a
