"""The result database behind one small class: SQLite by default, PostgreSQL with the same code.

Only this package imports SQLAlchemy and the database driver. Every statement is a fixed
``text()`` with ``:name`` bound parameters; values are never formatted into SQL.
"""

from __future__ import annotations

import datetime as _dt
from contextlib import contextmanager
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..errors import ConfigError
from ..regions import Region
from . import db
from .db import DEFAULT_URL, SCHEMA_VERSION, load_schema, normalise_url
from .rows import (ClusterRow, EditRow, FailureRow, ModelRow, ProcessedRow, RecordingRow, RegionRow, RunRow,
                   StoreError, dumps, like_pattern, loads, meta_text, now_iso, opt_float, opt_int, sha256_json)
from .rows import REGION_LABELS, ClusterNameRow, RegionLabelRow


class Store:
    """Recordings, models, runs, per-recording results and regions, clusters and edits."""

    def __init__(self, engine: Engine, label: str, *, read_only: bool = False):
        self._engine = engine
        self.label = label
        self.read_only = read_only
        self.dialect = engine.dialect.name
        if self.dialect not in db.ID_COLUMN:
            raise ConfigError(f"{label}: unsupported database {self.dialect!r}; use sqlite:/// or postgresql://")

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        if write and self.read_only:
            raise StoreError(f"{self.label}: opened read-only, so this command cannot change it; "
                             "use a command that writes results (detect, cluster)")
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(sonotype_write=True)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as e:
            detail = getattr(e, "orig", None) or e
            raise StoreError(f"{self.label}: {type(detail).__name__}: {detail}".strip()) from e

    def schema_version(self) -> str | None:
        """The sonotype schema version the database carries; None when it is no sonotype database."""
        if "schema_info" not in self.tables():
            return None
        with self._tx() as c:
            return c.execute(text("SELECT value FROM schema_info WHERE key = :key"), {"key": "schema_version"}).scalar()

    def check_schema(self) -> None:
        """Raise :class:`StoreError` unless this is a sonotype database of the expected schema version."""
        found = self.schema_version()
        if found is None:
            raise StoreError(f"{self.label} is not a sonotype database (it has no sonotype schema_info); "
                             "check --db, or run `sonotype detect` into a new database file first")
        if found != SCHEMA_VERSION:
            raise StoreError(f"{self.label}: database schema version {found!r}, this sonotype expects "
                             f"{SCHEMA_VERSION!r}; use a new database file or migrate it")

    def create_schema(self) -> None:
        """Create missing tables and indexes (harmless when they exist)."""
        found = self.schema_version()
        if found is not None and found != SCHEMA_VERSION:  # before anything is created in it
            self.check_schema()
        with self._tx(write=True) as c:
            if self.dialect == "postgresql":
                c.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": db.PG_SCHEMA_LOCK})
            for stmt in load_schema(self.dialect):
                c.execute(text(stmt))
            c.execute(text("INSERT INTO schema_info (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING"),
                      {"key": "schema_version", "value": SCHEMA_VERSION})
            found = c.execute(text("SELECT value FROM schema_info WHERE key = :key"),
                              {"key": "schema_version"}).scalar_one()
        if found != SCHEMA_VERSION:
            raise StoreError(f"{self.label}: database schema version {found!r}, this sonotype expects "
                             f"{SCHEMA_VERSION!r}; use a new database file or migrate it")

    def tables(self) -> set[str]:
        """Names of the tables that exist (for checks and tests)."""
        if self.dialect == "sqlite":
            q = text("SELECT name FROM sqlite_master WHERE type = :kind")
            params = {"kind": "table"}
        else:
            q = text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            params = {}
        with self._tx() as c:
            return {r[0] for r in c.execute(q, params)}

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.label!r})"

    # ------------------------------------------------------------------ recordings
    def add_recording(self, *, path: str, content_hash: str, sample_rate: float, channels: int, frames: int,
                      channel_used: int | None, format: str | None, metadata: dict | None = None) -> int:
        """Id of the recording with these bytes (``content_hash``): inserted if new, else the existing id
        (its metadata unchanged). ``path`` is remembered among the recording's paths either way; callers
        pass a canonical path (:func:`canonical_path`) so that one file read under two spellings is one path."""
        if float(sample_rate) <= 0:
            raise ConfigError(f"{path}: sample_rate must be > 0, got {sample_rate!r}")
        meta = dict(metadata or {})
        p = {"path": str(path), "content_hash": str(content_hash), "sample_rate": float(sample_rate),
             "channels": int(channels), "frames": int(frames), "duration_s": int(frames) / float(sample_rate),
             "channel_used": opt_int(channel_used), "format": None if format is None else str(format),
             "metadata": dumps(meta), "encounter": meta_text(meta.get("encounter")),
             "site": meta_text(meta.get("site")), "rec_date": meta_text(meta.get("date")), "added_at": now_iso()}
        with self._tx(write=True) as c:
            c.execute(db.INSERT_RECORDING, p)
            rid = int(c.execute(db.RECORDING_ID, p).scalar_one())
            c.execute(db.INSERT_RECORDING_PATH, {"recording_id": rid, "path": p["path"], "added_at": p["added_at"]})
            return rid

    def recording(self, recording_id: int) -> RecordingRow | None:
        rows = self._recordings_where("id = :id", {"id": int(recording_id)})
        return rows[0] if rows else None

    def find_recording_by_hash(self, content_hash: str) -> RecordingRow | None:
        rows = self._recordings_where("content_hash = :h", {"h": str(content_hash)}, limit=1)
        return rows[0] if rows else None

    def recordings(self, *, encounter: str | None = None, site: str | None = None, date_from: Any = None,
                   date_to: Any = None, path_contains: str | None = None, limit: int = 1000,
                   offset: int = 0) -> list[RecordingRow]:
        """Recordings by id, filtered on metadata ``encounter``/``site`` (exact), ``date`` (inclusive ISO
        range; a bare date as ``date_to`` includes that whole day) and a case-sensitive path substring."""
        where, p = [], {}
        if encounter is not None:
            where.append("encounter = :encounter")
            p["encounter"] = str(encounter)
        if site is not None:
            where.append("site = :site")
            p["site"] = str(site)
        if date_from is not None:
            where.append("rec_date >= :date_from")
            p["date_from"] = meta_text(date_from)
        if date_to is not None:
            day = _as_day(date_to)
            where.append("rec_date < :date_to" if day else "rec_date <= :date_to")
            p["date_to"] = (day + _dt.timedelta(days=1)).isoformat() if day else meta_text(date_to)
        if path_contains is not None:
            where.append("path LIKE :pattern ESCAPE '!'")
            p["pattern"] = like_pattern(path_contains)
        return self._recordings_where(" AND ".join(where) or "1 = 1", p, limit=limit, offset=offset)

    def _recordings_where(self, where: str, params: dict, *, limit: int = 1000, offset: int = 0) -> list:
        # `where` is always built from the fixed fragments above; the values travel as bound parameters
        q = text(f"SELECT {db.RECORDING_COLS} FROM recordings WHERE {where} ORDER BY id LIMIT :limit OFFSET :offset")
        with self._tx() as c:
            rows = c.execute(q, {**params, "limit": int(limit), "offset": int(offset)}).mappings().all()
            paths: dict[int, list[str]] = {}
            if rows:
                for rid, path in c.execute(db.SELECT_PATHS_OF, {"ids": [int(r["id"]) for r in rows]}):
                    paths.setdefault(int(rid), []).append(path)
        return [RecordingRow(id=int(r["id"]), path=r["path"], content_hash=r["content_hash"],
                             sample_rate=float(r["sample_rate"]), channels=int(r["channels"]),
                             frames=int(r["frames"]), duration_s=float(r["duration_s"]),
                             channel_used=opt_int(r["channel_used"]), format=r["format"],
                             metadata=loads(r["metadata"]), encounter=r["encounter"], site=r["site"],
                             date=r["rec_date"], added_at=r["added_at"],
                             paths=_paths_first(r["path"], paths.get(int(r["id"]), ()))) for r in rows]

    def recording_by_path(self, path: str) -> RecordingRow | None:
        """The recording read from ``path`` (as stored: canonical), or None."""
        with self._tx() as c:
            rid = c.execute(db.RECORDING_OF_PATH, {"path": str(path)}).scalar()
        return None if rid is None else self.recording(int(rid))

    # ------------------------------------------------------------------ models and runs
    def register_model(self, *, version: str, path: str | None, kind: str | None, config: dict | None = None,
                       training_data: dict | None = None, metrics: dict | None = None) -> int:
        """Id of the model ``version``; registered if new (an existing version is left unchanged)."""
        p = {"version": str(version), "path": None if path is None else str(path),
             "kind": None if kind is None else str(kind), "config": dumps(config),
             "training_data": dumps(training_data), "metrics": dumps(metrics), "created_at": now_iso()}
        with self._tx(write=True) as c:
            c.execute(db.INSERT_MODEL, p)
            return int(c.execute(text("SELECT id FROM models WHERE version = :version"), p).scalar_one())

    def model(self, model_id: int | None = None, *, version: str | None = None) -> ModelRow | None:
        if (model_id is None) == (version is None):
            raise ConfigError("give exactly one of model_id or version")
        q = "SELECT * FROM models WHERE " + ("id = :key" if version is None else "version = :key")
        with self._tx() as c:
            r = c.execute(text(q), {"key": int(model_id) if version is None else str(version)}).mappings().first()
        return None if r is None else ModelRow(int(r["id"]), r["version"], r["path"], r["kind"], loads(r["config"]),
                                               loads(r["training_data"]), loads(r["metrics"]), r["created_at"])

    def get_or_create_run(self, *, model_id: int, settings: dict) -> int:
        """Id of the run (model, settings); ``settings_hash`` = SHA-256 of the canonical settings JSON."""
        p = {"model_id": int(model_id), "settings": dumps(settings), "settings_hash": sha256_json(settings),
             "created_at": now_iso()}
        with self._tx(write=True) as c:
            c.execute(db.INSERT_RUN, p)
            return int(c.execute(text("SELECT id FROM runs WHERE model_id = :model_id AND settings_hash = "
                                      ":settings_hash"), p).scalar_one())

    def run(self, run_id: int) -> RunRow | None:
        with self._tx() as c:
            r = c.execute(text("SELECT * FROM runs WHERE id = :id"), {"id": int(run_id)}).mappings().first()
        return None if r is None else RunRow(int(r["id"]), int(r["model_id"]), loads(r["settings"]),
                                             r["settings_hash"], r["created_at"])

    # ------------------------------------------------------------------ results
    def is_processed(self, recording_id: int, run_id: int) -> bool:
        """Whether (recording, run) has a completed result (status 'done')."""
        q = text("SELECT status FROM processed WHERE recording_id = :recording_id AND run_id = :run_id")
        with self._tx() as c:
            return c.execute(q, {"recording_id": int(recording_id), "run_id": int(run_id)}).scalar() == "done"

    def processed(self, *, run_id: int | None = None, status: str | None = None) -> list[ProcessedRow]:
        where, p = _match(run_id=opt_int(run_id), status=status)
        with self._tx() as c:
            rows = c.execute(text(f"SELECT * FROM processed WHERE {where} ORDER BY run_id, recording_id"),
                             p).mappings().all()
        return [ProcessedRow(int(r["recording_id"]), int(r["run_id"]), r["status"], opt_int(r["n_windows"]),
                             opt_int(r["n_regions"]), opt_float(r["seconds"]), r["error"], r["finished_at"])
                for r in rows]

    def save_result(self, recording_id: int, run_id: int, regions: Iterable[Region], *, n_windows: int,
                    seconds: float) -> int:
        """Replace the regions of (recording, run) and mark it done, in ONE transaction: after a crash
        either the whole new result is there or the previous state is. Returns the number of regions."""
        key = {"recording_id": int(recording_id), "run_id": int(run_id)}
        regions = list(regions)
        with self._tx(write=True) as c:
            c.execute(db.DELETE_REGIONS, key)
            if regions:
                c.execute(db.INSERT_REGION, [_region_params(key, r) for r in regions])
            c.execute(db.UPSERT_PROCESSED, {**key, "status": "done", "n_windows": int(n_windows),
                                          "n_regions": len(regions), "seconds": float(seconds), "error": None,
                                          "finished_at": now_iso()})
            c.execute(db.CLEAR_FAILURES, key)  # the file works now: its earlier failures in this run are gone
        return len(regions)

    def record_failure(self, *, run_id: int | None, path: str, error: str, recording_id: int | None = None) -> int:
        """Log the latest failure of a file in a run: one row per (run, recording), or per (run, path)
        while the file is no recording yet; an earlier row of the same file is replaced. With
        ``recording_id`` the pair is also marked 'failed' in ``processed`` (unless already done)."""
        at = now_iso()
        p = {"run_id": opt_int(run_id), "recording_id": opt_int(recording_id), "path": str(path),
             "error": str(error), "at": at}
        with self._tx(write=True) as c:
            c.execute(db.DELETE_FAILURES_OF_FILE if run_id is not None else db.DELETE_FAILURES_OF_PATH_NO_RUN, p)
            fid = int(c.execute(db.INSERT_FAILURE, p).scalar_one())
            if recording_id is not None and run_id is not None:
                c.execute(db.UPSERT_FAILED, {"recording_id": int(recording_id), "run_id": int(run_id),
                                           "status": "failed", "n_windows": None, "n_regions": None,
                                           "seconds": None, "error": str(error), "finished_at": at})
        return fid

    def failures(self, run_id: int | None = None) -> list[FailureRow]:
        where, p = _match(run_id=opt_int(run_id))
        with self._tx() as c:
            rows = c.execute(text(f"SELECT * FROM failures WHERE {where} ORDER BY id"), p).mappings().all()
        return [FailureRow(int(r["id"]), opt_int(r["run_id"]), opt_int(r["recording_id"]), r["path"], r["error"],
                           r["at"]) for r in rows]

    def regions(self, *, recording_id: int | None = None, run_id: int | None = None) -> list[RegionRow]:
        """Stored regions ordered by recording, start sample, run."""
        where, p = _match(recording_id=opt_int(recording_id), run_id=opt_int(run_id))
        q = f"SELECT {db.REGION_COLS} FROM regions WHERE {where} ORDER BY recording_id, start_sample, run_id, id"
        with self._tx() as c:
            rows = c.execute(text(q), p).all()
        return [RegionRow(int(r.id), int(r.recording_id), int(r.run_id),
                          Region(int(r.start_sample), int(r.stop_sample), float(r.sample_rate), float(r.peak_score),
                                 float(r.mean_score), int(r.first_window), int(r.n_windows))) for r in rows]

    def run_summary(self, run_id: int) -> dict:
        """Counts for one run: recordings done/failed, unopenable files, regions, windows, seconds."""
        p = {"run_id": int(run_id)}
        out = {"run_id": int(run_id), "done": 0, "failed": 0, "windows": 0, "regions": 0, "seconds": 0.0}
        with self._tx() as c:
            for status, n, windows, seconds in c.execute(text(
                    "SELECT status, COUNT(*), SUM(n_windows), SUM(seconds) FROM processed WHERE run_id = :run_id "
                    "GROUP BY status"), p):
                out[status] = int(n)
                if status == "done":
                    out["windows"], out["seconds"] = int(windows or 0), float(seconds or 0.0)
            out["regions"] = int(c.execute(text("SELECT COUNT(*) FROM regions WHERE run_id = :run_id"), p).scalar())
            out["failures"] = int(c.execute(text("SELECT COUNT(*) FROM failures WHERE run_id = :run_id"), p).scalar())
            out["unopenable"] = int(c.execute(text(
                "SELECT COUNT(*) FROM failures WHERE run_id = :run_id AND recording_id IS NULL"), p).scalar())
        return out

    # ------------------------------------------------------------------ clusters and edits
    def add_cluster_assignments(self, run_id: int, algorithm: str, params: dict | None,
                                assignments: dict[int, int]) -> int:
        """Store region id -> cluster for (run, algorithm, params), replacing an earlier set with the same key."""
        key = {"run_id": int(run_id), "algorithm": str(algorithm), "params": dumps(params)}
        rows = [{**key, "region_id": int(rid), "cluster": int(cl), "created_at": now_iso()}
                for rid, cl in assignments.items()]
        with self._tx(write=True) as c:
            c.execute(db.DELETE_CLUSTERS, key)
            if rows:
                c.execute(db.INSERT_CLUSTER, rows)
        return len(rows)

    def cluster_assignments(self, *, run_id: int | None = None, algorithm: str | None = None,
                            region_id: int | None = None) -> list[ClusterRow]:
        where, p = _match(run_id=opt_int(run_id), algorithm=algorithm, region_id=opt_int(region_id))
        with self._tx() as c:
            rows = c.execute(text(f"SELECT * FROM clusters WHERE {where} ORDER BY id"), p).mappings().all()
        return [ClusterRow(int(r["id"]), int(r["region_id"]), int(r["run_id"]), r["algorithm"], loads(r["params"]),
                           int(r["cluster"]), r["created_at"]) for r in rows]

    # ------------------------------------------------------------------ embedding sequences and maps
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
                c.execute(db.DELETE_SEQUENCE, [{k: r[k] for k in ("region_id", "model_version")} for r in rows])
                c.execute(db.INSERT_SEQUENCE, rows)
        return len(rows)

    def sequences(self, model_version: str, region_ids: Iterable[int] | None = None) -> dict[int, Any]:
        """Region id -> (n_windows, dim) float32 array for the stored sequences of ``model_version``
        (all, or those among ``region_ids``; missing ones are simply absent)."""
        import numpy as np
        wanted = None if region_ids is None else {int(r) for r in region_ids}
        with self._tx() as c:
            rows = c.execute(db.SELECT_SEQUENCES, {"model_version": str(model_version)}).all()
        out = {}
        for rid, n, dim, data in rows:
            if wanted is None or int(rid) in wanted:
                out[int(rid)] = np.frombuffer(bytes(data), dtype="<f4").reshape(int(n), int(dim)).astype(np.float32)
        return out

    def sequence_versions(self, region_id: int | None = None) -> list[str]:
        """Encoder versions with stored sequences (of one region, or any), most recently stored first."""
        where, p = ("region_id = :region_id", {"region_id": int(region_id)}) if region_id is not None else ("1 = 1", {})
        with self._tx() as c:
            rows = c.execute(text(f"SELECT model_version, MAX(created_at) AS at FROM sequences WHERE {where} "
                                  "GROUP BY model_version ORDER BY MAX(created_at) DESC, model_version"), p).all()
        return [r[0] for r in rows]

    def put_map_points(self, run_id: int, method: str, params: dict | None, points: dict[int, tuple[float, float]]) -> int:
        """Store region id -> (x, y) map coordinates for (run, method, params), replacing an earlier set."""
        key = {"run_id": int(run_id), "method": str(method), "params": dumps(params)}
        rows = [{**key, "region_id": int(rid), "x": float(x), "y": float(y), "created_at": now_iso()}
                for rid, (x, y) in points.items()]
        with self._tx(write=True) as c:
            c.execute(db.DELETE_MAP_POINTS, key)
            if rows:
                c.execute(db.INSERT_MAP_POINT, rows)
        return len(rows)

    def map_points(self, *, run_id: int, method: str, params: dict | None = None) -> dict[int, tuple[float, float]]:
        """Region id -> (x, y) for (run, method); with ``params`` None, the most recent parameter set."""
        with self._tx() as c:
            if params is None:
                found = c.execute(db.LATEST_MAP_PARAMS, {"run_id": int(run_id), "method": str(method)}).scalar()
                if found is None:
                    return {}
            else:
                found = dumps(params)
            rows = c.execute(db.SELECT_MAP_POINTS, {"run_id": int(run_id), "method": str(method),
                                                    "params": found}).all()
        return {int(r): (float(x), float(y)) for r, x, y in rows}

    def clusterings(self, run_id: int | None = None) -> list[dict]:
        """The distinct stored clusterings: run_id, algorithm, params, n_regions, n_clusters, created_at."""
        where, p = _match(run_id=opt_int(run_id))
        with self._tx() as c:
            rows = c.execute(text(
                "SELECT run_id, algorithm, params, COUNT(*) AS n_regions, COUNT(DISTINCT cluster) AS n_clusters, "
                f"MAX(created_at) AS created_at FROM clusters WHERE {where} GROUP BY run_id, algorithm, params "
                "ORDER BY MAX(created_at), algorithm"), p).mappings().all()
        return [{"run_id": int(r["run_id"]), "algorithm": r["algorithm"], "params": loads(r["params"]),
                 "n_regions": int(r["n_regions"]), "n_clusters": int(r["n_clusters"]),
                 "created_at": r["created_at"]} for r in rows]

    def add_edit(self, *, target: str, target_id: int | None, field: str, old_value: Any = None,
                 new_value: Any = None, author: str | None = None, note: str | None = None) -> int:
        """Log one manual change (values kept as JSON); returns the edit's id."""
        p = {"target": str(target), "target_id": opt_int(target_id), "field": str(field),
             "old_value": None if old_value is None else dumps(old_value),
             "new_value": None if new_value is None else dumps(new_value),
             "author": author, "at": now_iso(), "note": note}
        with self._tx(write=True) as c:
            return int(c.execute(db.INSERT_EDIT, p).scalar_one())

    def edits(self, *, target: str | None = None, target_id: int | None = None) -> list[EditRow]:
        where, p = _match(target=target, target_id=opt_int(target_id))
        with self._tx() as c:
            rows = c.execute(text(f"SELECT * FROM edits WHERE {where} ORDER BY id"), p).mappings().all()
        return [EditRow(int(r["id"]), r["target"], opt_int(r["target_id"]), r["field"], loads(r["old_value"]),
                        loads(r["new_value"]), r["author"], r["at"], r["note"]) for r in rows]


    # ------------------------------------------------------------------ curation (the web application)
    def region(self, region_id: int) -> RegionRow | None:
        """One stored region by id, or None."""
        with self._tx() as c:
            r = c.execute(db.SELECT_REGION, {"id": int(region_id)}).first()
        return None if r is None else RegionRow(
            int(r.id), int(r.recording_id), int(r.run_id),
            Region(int(r.start_sample), int(r.stop_sample), float(r.sample_rate), float(r.peak_score),
                   float(r.mean_score), int(r.first_window), int(r.n_windows)))

    def runs(self) -> list[RunRow]:
        """Every detection run, oldest first."""
        with self._tx() as c:
            rows = c.execute(db.SELECT_RUNS).mappings().all()
        return [RunRow(int(r["id"]), int(r["model_id"]), loads(r["settings"]), r["settings_hash"], r["created_at"])
                for r in rows]

    def latest_run_id(self, recording_id: int | None = None) -> int | None:
        """Highest run id with a finished result (for one recording, or any); None if there is none."""
        with self._tx() as c:
            if recording_id is None:
                v = c.execute(db.LATEST_RUN).scalar()
            else:
                v = c.execute(db.LATEST_RUN_OF_RECORDING, {"recording_id": int(recording_id)}).scalar()
        return opt_int(v)

    def count_regions(self, recording_id: int, run_id: int) -> int:
        with self._tx() as c:
            return int(c.execute(db.COUNT_REGIONS_OF, {"recording_id": int(recording_id),
                                                       "run_id": int(run_id)}).scalar())

    def region_label(self, region_id: int) -> RegionLabelRow | None:
        with self._tx() as c:
            r = c.execute(db.SELECT_REGION_LABEL, {"region_id": int(region_id)}).first()
        return None if r is None else RegionLabelRow(int(r[0]), r[1], r[2], r[3], r[4])

    def region_labels(self, *, run_id: int, recording_id: int | None = None) -> dict[int, RegionLabelRow]:
        """Region id -> label row for the labelled regions of a run (or of one recording in it)."""
        p = {"run_id": int(run_id)}
        q = db.SELECT_LABELS_OF_RUN
        if recording_id is not None:
            p["recording_id"], q = int(recording_id), db.SELECT_LABELS_OF_RECORDING
        with self._tx() as c:
            rows = c.execute(q, p).all()
        return {int(r[0]): RegionLabelRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows}

    def set_region_label(self, region_id: int, label: str | None, *, author: str | None = None,
                         note: str | None = None) -> RegionLabelRow:
        """Label a region 'vocalisation' or 'noise' (None withdraws the label) and log the change."""
        if label is not None and label not in REGION_LABELS:
            raise ConfigError(f"region label must be one of {list(REGION_LABELS)} or None, got {label!r}")
        return self._set_region_field(region_id, "label", label, author=author, note=note)

    def set_region_note(self, region_id: int, text_: str | None, *, author: str | None = None) -> RegionLabelRow:
        """Attach (or with None clear) a free-text note to a region and log the change."""
        return self._set_region_field(region_id, "note", None if text_ is None else str(text_), author=author)

    def _set_region_field(self, region_id: int, field: str, value: str | None, *, author: str | None,
                          note: str | None = None) -> RegionLabelRow:
        rid, at = int(region_id), now_iso()
        stmt = db.UPSERT_REGION_LABEL if field == "label" else db.UPSERT_REGION_NOTE
        with self._tx(write=True) as c:
            if c.execute(db.SELECT_REGION, {"id": rid}).first() is None:
                raise StoreError(f"{self.label}: region {rid} does not exist; list regions with Store.regions()")
            old = c.execute(db.SELECT_REGION_LABEL, {"region_id": rid}).first()
            c.execute(stmt, {"region_id": rid, "value": value, "author": author, "at": at})
            c.execute(db.INSERT_EDIT, _edit_row("region", rid, field, None if old is None else old._mapping[field],
                                                value, author, note, at))
            r = c.execute(db.SELECT_REGION_LABEL, {"region_id": rid}).first()
        return RegionLabelRow(int(r[0]), r[1], r[2], r[3], r[4])

    def cluster_names(self, run_id: int, algorithm: str, params: dict | None) -> dict[int, ClusterNameRow]:
        """Cluster number -> name/note row for one clustering."""
        key = _clustering_key(run_id, algorithm, params)
        with self._tx() as c:
            rows = c.execute(db.SELECT_CLUSTER_NAMES, key).all()
        return {int(r[0]): ClusterNameRow(key["run_id"], key["algorithm"], loads(key["params"]), int(r[0]), r[1],
                                          r[2], r[3], r[4]) for r in rows}

    def set_cluster_name(self, run_id: int, algorithm: str, params: dict | None, cluster: int, name: str | None,
                         *, author: str | None = None) -> ClusterNameRow:
        """Name one cluster of a clustering (None clears the name); the change is logged."""
        return self._set_cluster_field(run_id, algorithm, params, cluster, "name", name, author=author)

    def set_cluster_note(self, run_id: int, algorithm: str, params: dict | None, cluster: int, note: str | None,
                         *, author: str | None = None) -> ClusterNameRow:
        """Attach (None: clear) a free-text note to one cluster of a clustering; the change is logged."""
        return self._set_cluster_field(run_id, algorithm, params, cluster, "note", note, author=author)

    def _set_cluster_field(self, run_id, algorithm, params, cluster, field, value, *, author) -> ClusterNameRow:
        key, at = {**_clustering_key(run_id, algorithm, params), "cluster": int(cluster)}, now_iso()
        stmt = db.UPSERT_CLUSTER_NAME if field == "name" else db.UPSERT_CLUSTER_NOTE
        with self._tx(write=True) as c:
            members = [r for r in c.execute(db.SELECT_CLUSTER_MEMBERS, key).all() if int(r[1]) == key["cluster"]]
            if not members:
                raise StoreError(f"{self.label}: clustering {key['algorithm']} {key['params']} of run "
                                 f"{key['run_id']} has no cluster {key['cluster']}; see Store.clusterings()")
            old = {int(r[0]): r for r in c.execute(db.SELECT_CLUSTER_NAMES, key).all()}.get(key["cluster"])
            c.execute(stmt, {**key, "value": value, "author": author, "at": at})
            c.execute(db.INSERT_EDIT, _edit_row("cluster", key["run_id"], field,
                                                {**_key_doc(key), "value": None if old is None else old._mapping[field]},
                                                {**_key_doc(key), "value": value}, author, None, at))
        return self.cluster_names(run_id, algorithm, params)[int(cluster)]

    def cluster_members(self, run_id: int, algorithm: str, params: dict | None) -> dict[int, list[int]]:
        """Cluster number -> sorted region ids, for one clustering."""
        with self._tx() as c:
            rows = c.execute(db.SELECT_CLUSTER_MEMBERS, _clustering_key(run_id, algorithm, params)).all()
        out: dict[int, list[int]] = {}
        for rid, cl in rows:
            out.setdefault(int(cl), []).append(int(rid))
        return out

    def merge_clusters(self, run_id: int, algorithm: str, params: dict | None, *, into: int, other: int,
                       author: str | None = None, note: str | None = None) -> int:
        """Move every region of cluster ``other`` into cluster ``into`` (same clustering); logs the change
        with the moved region ids. Returns the number of regions moved."""
        key, into, other = _clustering_key(run_id, algorithm, params), int(into), int(other)
        if into == other:
            raise ConfigError(f"cannot merge cluster {into} into itself; choose two different clusters")
        with self._tx(write=True) as c:
            members = self._members_in(c, key, (into, other))
            moved = members[other]
            c.execute(db.MOVE_CLUSTER, {**key, "into": into, "cluster": other})
            c.execute(db.INSERT_EDIT, _edit_row("cluster", key["run_id"], "merge",
                                                {**_key_doc(key), "cluster": other, "region_ids": moved},
                                                {**_key_doc(key), "cluster": into}, author, note, now_iso()))
        return len(moved)

    def split_cluster(self, run_id: int, algorithm: str, params: dict | None, cluster: int,
                      region_ids: Iterable[int], *, author: str | None = None, note: str | None = None) -> int:
        """Move ``region_ids`` (members of ``cluster``) to a new cluster numbered one above the highest of the
        clustering; logs the change. Returns the new cluster's number."""
        key, cluster = _clustering_key(run_id, algorithm, params), int(cluster)
        ids = sorted({int(r) for r in region_ids})
        if not ids:
            raise ConfigError("split needs at least one region id to move to the new cluster; got none")
        with self._tx(write=True) as c:
            members = set(self._members_in(c, key, (cluster,))[cluster])
            strangers = [r for r in ids if r not in members]
            if strangers:
                raise ConfigError(f"region(s) {strangers[:10]} are not in cluster {cluster}; choose members of it")
            new = max(int(c.execute(db.MAX_CLUSTER, key).scalar()) + 1, 0)
            c.execute(db.MOVE_CLUSTER_MEMBER, [{**key, "into": new, "cluster": cluster, "region_id": r} for r in ids])
            c.execute(db.INSERT_EDIT, _edit_row("cluster", key["run_id"], "split",
                                                {**_key_doc(key), "cluster": cluster, "region_ids": ids},
                                                {**_key_doc(key), "cluster": new}, author, note, now_iso()))
        return new

    def _members_in(self, c: Connection, key: dict, clusters: tuple[int, ...]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {cl: [] for cl in clusters}
        for rid, cl in c.execute(db.SELECT_CLUSTER_MEMBERS, key).all():
            if int(cl) in found:
                found[int(cl)].append(int(rid))
        empty = [cl for cl, m in found.items() if not m]
        if empty:
            raise StoreError(f"{self.label}: clustering {key['algorithm']} {key['params']} of run {key['run_id']} "
                             f"has no cluster {empty[0]}; see Store.cluster_members()")
        return found

_FILTER_COLUMNS = frozenset({"recording_id", "run_id", "status", "algorithm", "region_id", "target", "target_id"})


def _match(**values: Any) -> tuple[str, dict]:
    """``col = :col AND ...`` for the non-None values; the column names come from this module only."""
    params = {k: v for k, v in values.items() if v is not None}
    if not set(params) <= _FILTER_COLUMNS:
        raise ValueError(f"not a filter column: {sorted(set(params) - _FILTER_COLUMNS)}")
    return " AND ".join(f"{k} = :{k}" for k in params) or "1 = 1", params

def _paths_first(path: str, paths: Iterable[str]) -> tuple[str, ...]:
    """``path`` followed by the recording's other paths, each once."""
    return tuple(dict.fromkeys([path, *paths]))


def _clustering_key(run_id: int, algorithm: str, params: dict | None) -> dict:
    """Bound values naming one clustering (as in the clusters table)."""
    return {"run_id": int(run_id), "algorithm": str(algorithm), "params": dumps(params)}


def _key_doc(key: dict) -> dict:
    """A clustering key as a JSON document for the edit log."""
    return {"run_id": key["run_id"], "algorithm": key["algorithm"], "params": loads(key["params"])}


def _edit_row(target: str, target_id: int | None, field: str, old: Any, new: Any, author: str | None,
              note: str | None, at: str) -> dict:
    """Bound values of one edits row (values kept as JSON, as :meth:`Store.add_edit` does)."""
    return {"target": target, "target_id": opt_int(target_id), "field": field,
            "old_value": None if old is None else dumps(old), "new_value": None if new is None else dumps(new),
            "author": author, "at": at, "note": note}


def _region_params(key: dict, r: Region) -> dict:
    """Bound values of one region row; ``None`` stays ``None`` so the database's constraints judge it."""
    start, stop, sr = opt_int(r.start), opt_int(r.stop), opt_float(r.sample_rate)
    ok = sr is not None and sr > 0
    return {**key, "start_sample": start, "stop_sample": stop, "sample_rate": sr,
            "start_s": start / sr if ok and start is not None else None,
            "stop_s": stop / sr if ok and stop is not None else None,
            "peak_score": opt_float(r.peak_score), "mean_score": opt_float(r.mean_score),
            "first_window": opt_int(r.first_window), "n_windows": opt_int(r.n_windows)}


def _as_float32_2d(seq: Any):
    import numpy as np
    a = np.asarray(seq, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"an embedding sequence must be (n_windows, dim) with dim > 0, got shape {a.shape}")
    return a


def _as_day(value: Any) -> _dt.date | None:
    """``value`` as a calendar day when it is a bare date (``date`` or 'YYYY-MM-DD'), else None."""
    if isinstance(value, _dt.datetime):
        return None
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def open_store(url: str = DEFAULT_URL, *, read_only: bool = False, must_exist: bool = False) -> Store:
    """Open (and create the schema of) ``sqlite:///file.db``, ``sqlite://`` (memory) or ``postgresql://...``.

    ``read_only`` (export, search, evaluation): the database must exist and be a sonotype database;
    it is opened so that nothing can change it (SQLite ``mode=ro``, PostgreSQL read-only transactions)
    and nothing is created. ``must_exist`` (commands that add to earlier results, like cluster): the
    same checks, then opened for writing.
    """
    try:
        u = make_url(normalise_url(str(url)))
    except ArgumentError as e:
        raise ConfigError(f"bad database url {url!r} ({e}); expected sqlite:///path.db or "
                          "postgresql://user@host/db") from None
    label = u.render_as_string(hide_password=True)
    backend = u.get_backend_name()
    existing = read_only or must_exist
    if must_exist and not read_only:  # check through a read-only connection: nothing may touch a foreign file
        open_store(url, read_only=True).close()
    if backend == "sqlite" and existing and db.sqlite_file(u) is not None and not db.sqlite_file(u).is_file():
        raise StoreError(f"{label}: no such database file {str(db.sqlite_file(u))!r}; check --db (nothing was "
                         "created), or run `sonotype detect` into it first")
    try:
        if backend == "sqlite":
            engine = db.sqlite_engine(u, read_only=read_only)
        elif backend == "postgresql":
            engine = db.postgresql_engine(u, read_only=read_only)
        else:
            raise ConfigError(f"unsupported database url {label!r}; expected sqlite:///path.db or "
                              "postgresql://user@host/db")
    except (ArgumentError, ImportError) as e:
        raise ConfigError(f"cannot open {label}: {e}") from None
    store = Store(engine, label, read_only=read_only)
    try:
        if existing:
            store.check_schema()
        if not read_only:
            store.create_schema()
    except BaseException:
        store.close()
        raise
    return store
