"""The detection side of the store: recordings (one per content hash), models, runs, per-recording
results, regions and failures."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from ..detection.regions import Region
from ..errors import ConfigError, NotFound
from ..features.frontend import FrontEnd
from . import queries as q
from .base import Connected
from .rows import (
    FailureRow,
    ModelRow,
    ProcessedRow,
    RecordingRow,
    RegionRow,
    RunRow,
    dumps,
    like_pattern,
    loads,
    meta_text,
    now_iso,
    opt_float,
    opt_int,
    sha256_json,
)


class DetectionStore(Connected):
    """Recordings, models, runs, per-recording results, regions and failures."""

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
            c.execute(q.INSERT_RECORDING, p)
            rid = int(c.execute(q.RECORDING_ID, p).scalar_one())
            c.execute(q.INSERT_RECORDING_PATH, {"recording_id": rid, "path": p["path"], "added_at": p["added_at"]})
            return rid

    def recording(self, recording_id: int) -> RecordingRow | None:
        rows = self._recordings_where(q.RECORDING_FILTERS["id"], {"id": int(recording_id)})
        return rows[0] if rows else None

    def find_recording_by_hash(self, content_hash: str) -> RecordingRow | None:
        rows = self._recordings_where(q.RECORDING_FILTERS["content_hash"], {"content_hash": str(content_hash)}, limit=1)
        return rows[0] if rows else None

    def recordings(self, *, encounter: str | None = None, site: str | None = None, date_from: Any = None,
                   date_to: Any = None, path_contains: str | None = None, limit: int = 1000,
                   offset: int = 0) -> list[RecordingRow]:
        """Recordings by id, filtered on metadata ``encounter``/``site`` (exact), ``date`` (inclusive ISO
        range; a bare date as ``date_to`` includes that whole day) and a case-sensitive path substring."""
        p: dict[str, Any] = {}
        if encounter is not None:
            p["encounter"] = str(encounter)
        if site is not None:
            p["site"] = str(site)
        if date_from is not None:
            p["date_from"] = meta_text(date_from)
        filters = list(p)
        if date_to is not None:
            day = _as_day(date_to)
            filters.append("day_to" if day else "date_to")
            p["date_to"] = (day + _dt.timedelta(days=1)).isoformat() if day else meta_text(date_to)
        if path_contains is not None:
            filters.append("path_contains")
            p["pattern"] = like_pattern(path_contains)
        where = " AND ".join(q.RECORDING_FILTERS[f] for f in filters) or "1 = 1"
        return self._recordings_where(where, p, limit=limit, offset=offset)

    def _recordings_where(self, where: str, params: dict, *, limit: int = 1000, offset: int = 0) -> list:
        # `where` is always built from the fixed fragments of queries.py; the values travel as bound parameters
        with self._tx() as c:
            rows = c.execute(q.where(q.RECORDINGS_WHERE, where),
                             {**params, "limit": int(limit), "offset": int(offset)}).mappings().all()
            paths: dict[int, list[str]] = {}
            if rows:
                for rid, path in c.execute(q.SELECT_PATHS_OF, {"ids": [int(r["id"]) for r in rows]}):
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
            rid = c.execute(q.RECORDING_OF_PATH, {"path": str(path)}).scalar()
        return None if rid is None else self.recording(int(rid))

    # ------------------------------------------------------------------ models and runs
    def register_model(self, *, version: str, path: str | None, kind: str | None, config: dict | None = None,
                       training_data: dict | None = None, metrics: dict | None = None) -> int:
        """Id of the model ``version``; registered if new (an existing version is left unchanged)."""
        p = {"version": str(version), "path": None if path is None else str(path),
             "kind": None if kind is None else str(kind), "config": dumps(config),
             "training_data": dumps(training_data), "metrics": dumps(metrics), "created_at": now_iso()}
        with self._tx(write=True) as c:
            c.execute(q.INSERT_MODEL, p)
            return int(c.execute(q.MODEL_ID, p).scalar_one())

    def model(self, model_id: int | None = None, *, version: str | None = None) -> ModelRow | None:
        if (model_id is None) == (version is None):
            raise ConfigError("give exactly one of model_id or version")
        stmt = q.MODEL_BY_ID if version is None else q.MODEL_BY_VERSION
        with self._tx() as c:
            r = c.execute(stmt, {"key": int(model_id) if version is None else str(version)}).mappings().first()
        return None if r is None else ModelRow(int(r["id"]), r["version"], r["path"], r["kind"], loads(r["config"]),
                                               loads(r["training_data"]), loads(r["metrics"]), r["created_at"])

    def get_or_create_run(self, *, model_id: int, settings: dict) -> int:
        """Id of the run (model, settings); ``settings_hash`` = SHA-256 of the canonical settings JSON."""
        p = {"model_id": int(model_id), "settings": dumps(settings), "settings_hash": sha256_json(settings),
             "created_at": now_iso()}
        with self._tx(write=True) as c:
            c.execute(q.INSERT_RUN, p)
            return int(c.execute(q.RUN_ID, p).scalar_one())

    def run(self, run_id: int) -> RunRow | None:
        with self._tx() as c:
            r = c.execute(q.SELECT_RUN, {"id": int(run_id)}).mappings().first()
        return None if r is None else _run_row(r)

    def runs(self) -> list[RunRow]:
        """Every detection run, oldest first."""
        with self._tx() as c:
            rows = c.execute(q.SELECT_RUNS).mappings().all()
        return [_run_row(r) for r in rows]

    def latest_run_id(self, recording_id: int | None = None) -> int | None:
        """Highest run id with a finished result (for one recording, or any); None if there is none."""
        with self._tx() as c:
            if recording_id is None:
                v = c.execute(q.LATEST_RUN).scalar()
            else:
                v = c.execute(q.LATEST_RUN_OF_RECORDING, {"recording_id": int(recording_id)}).scalar()
        return opt_int(v)

    def run_or_latest(self, run_id: int | None = None, *, recording_id: int | None = None,
                      required: bool = True) -> int | None:
        """The run a command or page works on: ``run_id`` checked to exist, or (None) the latest run with a
        finished result (:meth:`latest_run_id`, of ``recording_id`` or of any recording).

        Raises :class:`~sonotype.errors.NotFound` for a ``run_id`` that does not exist, and when there is no
        finished run unless ``required`` is False (then None)."""
        if run_id is not None:
            if self.run(int(run_id)) is None:
                raise NotFound(f"run {run_id} does not exist in {self.label}; `sonotype runs --db URL` lists the runs")
            return int(run_id)
        latest = self.latest_run_id(recording_id)
        if latest is None and required:
            of = "" if recording_id is None else f" for recording {recording_id}"
            raise NotFound(f"{self.label}: no finished detection run{of}; run `sonotype detect` first")
        return latest

    def run_frontend(self, run_id: int) -> FrontEnd | None:
        """The front end detection run ``run_id`` computed its spectrograms with (its settings' ``frontend``,
        written by the batch runner), or None when the run stored none. Raises :class:`NotFound` for an unknown
        run and :class:`~sonotype.errors.ConfigError` when the stored front end cannot be read."""
        run = self.run(int(run_id))
        if run is None:
            raise NotFound(f"run {run_id} does not exist in {self.label}; `sonotype runs --db URL` lists the runs")
        d = (run.settings or {}).get("frontend")
        if not d:
            return None
        try:
            return FrontEnd.from_dict(d)
        except (ConfigError, TypeError, AttributeError) as e:
            raise ConfigError(f"{self.label}: run {run_id} stored a front end that cannot be read ({e}): {d!r}; "
                             "the run was written by another sonotype version: detect again into a new run") from None

    # ------------------------------------------------------------------ results
    def is_processed(self, recording_id: int, run_id: int) -> bool:
        """Whether (recording, run) has a completed result (status 'done')."""
        with self._tx() as c:
            return c.execute(q.PROCESSED_STATUS, {"recording_id": int(recording_id),
                                                  "run_id": int(run_id)}).scalar() == "done"

    def processed(self, *, run_id: int | None = None, status: str | None = None) -> list[ProcessedRow]:
        where, p = q.match(run_id=opt_int(run_id), status=status)
        with self._tx() as c:
            rows = c.execute(q.where(q.PROCESSED_WHERE, where), p).mappings().all()
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
            c.execute(q.DELETE_REGIONS, key)
            if regions:
                c.execute(q.INSERT_REGION, [_region_params(key, r) for r in regions])
            c.execute(q.UPSERT_PROCESSED, {**key, "status": "done", "n_windows": int(n_windows),
                                         "n_regions": len(regions), "seconds": float(seconds), "error": None,
                                         "finished_at": now_iso()})
            c.execute(q.CLEAR_FAILURES, key)  # the file works now: its earlier failures in this run are gone
        return len(regions)

    def record_failure(self, *, run_id: int | None, path: str, error: str, recording_id: int | None = None) -> int:
        """Log the latest failure of a file in a run: one row per (run, recording), or per (run, path)
        while the file is no recording yet; an earlier row of the same file is replaced. With
        ``recording_id`` the pair is also marked 'failed' in ``processed`` (unless already done)."""
        at = now_iso()
        p = {"run_id": opt_int(run_id), "recording_id": opt_int(recording_id), "path": str(path),
             "error": str(error), "at": at}
        with self._tx(write=True) as c:
            c.execute(q.DELETE_FAILURES_OF_FILE if run_id is not None else q.DELETE_FAILURES_OF_PATH_NO_RUN, p)
            fid = int(c.execute(q.INSERT_FAILURE, p).scalar_one())
            if recording_id is not None and run_id is not None:
                c.execute(q.UPSERT_FAILED, {"recording_id": int(recording_id), "run_id": int(run_id),
                                          "status": "failed", "n_windows": None, "n_regions": None,
                                          "seconds": None, "error": str(error), "finished_at": at})
        return fid

    def failures(self, run_id: int | None = None) -> list[FailureRow]:
        where, p = q.match(run_id=opt_int(run_id))
        with self._tx() as c:
            rows = c.execute(q.where(q.FAILURES_WHERE, where), p).mappings().all()
        return [FailureRow(int(r["id"]), opt_int(r["run_id"]), opt_int(r["recording_id"]), r["path"], r["error"],
                           r["at"]) for r in rows]

    def regions(self, *, recording_id: int | None = None, run_id: int | None = None) -> list[RegionRow]:
        """Stored regions ordered by recording, start sample, run."""
        where, p = q.match(recording_id=opt_int(recording_id), run_id=opt_int(run_id))
        with self._tx() as c:
            rows = c.execute(q.where(q.REGIONS_WHERE, where), p).all()
        return [_region_row(r) for r in rows]

    def region(self, region_id: int) -> RegionRow | None:
        """One stored region by id, or None."""
        with self._tx() as c:
            r = c.execute(q.SELECT_REGION, {"id": int(region_id)}).first()
        return None if r is None else _region_row(r)

    def count_regions(self, recording_id: int, run_id: int) -> int:
        with self._tx() as c:
            return int(c.execute(q.COUNT_REGIONS_OF, {"recording_id": int(recording_id),
                                                      "run_id": int(run_id)}).scalar())

    def run_summary(self, run_id: int) -> dict:
        """Counts for one run: recordings done/failed, unopenable files, regions, windows, seconds."""
        p = {"run_id": int(run_id)}
        out = {"run_id": int(run_id), "done": 0, "failed": 0, "windows": 0, "regions": 0, "seconds": 0.0}
        with self._tx() as c:
            for status, n, windows, seconds in c.execute(q.RUN_STATUS_COUNTS, p):
                out[status] = int(n)
                if status == "done":
                    out["windows"], out["seconds"] = int(windows or 0), float(seconds or 0.0)
            out["regions"], out["failures"], out["unopenable"] = (int(v) for v in c.execute(q.RUN_COUNTS, p).one())
        return out


def _run_row(r) -> RunRow:
    return RunRow(int(r["id"]), int(r["model_id"]), loads(r["settings"]), r["settings_hash"], r["created_at"])


def _region_row(r) -> RegionRow:
    return RegionRow(int(r.id), int(r.recording_id), int(r.run_id),
                     Region(int(r.start_sample), int(r.stop_sample), float(r.sample_rate), float(r.peak_score),
                            float(r.mean_score), int(r.first_window), int(r.n_windows)))


def _paths_first(path: str, paths: Iterable[str]) -> tuple[str, ...]:
    """``path`` followed by the recording's other paths, each once."""
    return tuple(dict.fromkeys([path, *paths]))


def _region_params(key: dict, r: Region) -> dict:
    """Bound values of one region row; ``None`` stays ``None`` so the database's constraints judge it."""
    start, stop, sr = opt_int(r.start), opt_int(r.stop), opt_float(r.sample_rate)
    ok = sr is not None and sr > 0
    return {**key, "start_sample": start, "stop_sample": stop, "sample_rate": sr,
            "start_s": start / sr if ok and start is not None else None,
            "stop_s": stop / sr if ok and stop is not None else None,
            "peak_score": opt_float(r.peak_score), "mean_score": opt_float(r.mean_score),
            "first_window": opt_int(r.first_window), "n_windows": opt_int(r.n_windows)}


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
