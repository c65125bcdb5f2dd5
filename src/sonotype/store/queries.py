"""Every SQL statement of the store, in one place (the tables themselves are in ``schema.sql``).

Fixed text with ``:name`` bound parameters only; values are never formatted into SQL. The few
statements with a variable ``WHERE`` (filters on optional columns) are built by :func:`where` /
:func:`match` from the fixed fragments and column names of this module, never from caller text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import TextClause, bindparam, text

# ---------------------------------------------------------------------------- connection and schema
#: SQLite: writers take the write lock up front
BEGIN = {False: "BEGIN", True: "BEGIN IMMEDIATE"}
SQLITE_PRAGMAS = ("PRAGMA busy_timeout = 30000", "PRAGMA foreign_keys = ON", "PRAGMA case_sensitive_like = ON")
SQLITE_READ_ONLY = ("PRAGMA query_only = ON",)
SQLITE_WRITABLE = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")
PG_READ_ONLY = "SET TRANSACTION READ ONLY"
PG_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
SCHEMA_VERSION_OF = text("SELECT value FROM schema_info WHERE key = :key")
INSERT_SCHEMA_VERSION = text("INSERT INTO schema_info (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING")
TABLES = {"sqlite": text("SELECT name FROM sqlite_master WHERE type = 'table'"),
          "postgresql": text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}

# ---------------------------------------------------------------------------- variable WHERE clauses
#: columns a caller may filter on with :func:`match`
FILTER_COLUMNS = frozenset({"recording_id", "run_id", "status", "algorithm", "region_id", "target", "target_id",
                            "model_version"})


def match(**values: Any) -> tuple[str, dict]:
    """``col = :col AND ...`` for the non-None values, and their bound parameters (``1 = 1``: no filter)."""
    params = {k: v for k, v in values.items() if v is not None}
    if not set(params) <= FILTER_COLUMNS:
        raise ValueError(f"not a filter column: {sorted(set(params) - FILTER_COLUMNS)}")
    return " AND ".join(f"{k} = :{k}" for k in params) or "1 = 1", params


def where(template: str, clause: str) -> TextClause:
    """``template`` (one of the ``*_WHERE`` strings below) with its ``{where}`` filled by :func:`match` or
    the fixed :data:`RECORDING_FILTERS`."""
    return text(template.format(where=clause))


#: the recording filters of :meth:`DetectionStore.recordings`, by parameter
RECORDING_FILTERS = {"encounter": "encounter = :encounter", "site": "site = :site",
                     "date_from": "rec_date >= :date_from", "date_to": "rec_date <= :date_to",
                     "day_to": "rec_date < :date_to", "path_contains": "path LIKE :pattern ESCAPE '!'",
                     "id": "id = :id", "content_hash": "content_hash = :content_hash"}

# ---------------------------------------------------------------------------- detections
RECORDING_COLS = ("id, path, content_hash, sample_rate, channels, frames, duration_s, channel_used, format, "
                  "metadata, encounter, site, rec_date, added_at")
REGION_COLS = ("id, recording_id, run_id, start_sample, stop_sample, sample_rate, peak_score, mean_score, "
               "first_window, n_windows")

INSERT_RECORDING = text(
    "INSERT INTO recordings (path, content_hash, sample_rate, channels, frames, duration_s, channel_used, format, "
    "metadata, encounter, site, rec_date, added_at) VALUES (:path, :content_hash, :sample_rate, :channels, "
    ":frames, :duration_s, :channel_used, :format, :metadata, :encounter, :site, :rec_date, :added_at) "
    "ON CONFLICT (content_hash) DO NOTHING")
RECORDING_ID = text("SELECT id FROM recordings WHERE content_hash = :content_hash")
INSERT_RECORDING_PATH = text(
    "INSERT INTO recording_paths (recording_id, path, added_at) VALUES (:recording_id, :path, :added_at) "
    "ON CONFLICT (recording_id, path) DO NOTHING")
SELECT_RECORDING_PATHS = text("SELECT path FROM recording_paths WHERE recording_id = :recording_id "
                              "ORDER BY added_at, path")
SELECT_PATHS_OF = text("SELECT recording_id, path FROM recording_paths WHERE recording_id IN :ids "
                       "ORDER BY recording_id, added_at, path").bindparams(bindparam("ids", expanding=True))
RECORDING_OF_PATH = text("SELECT recording_id FROM recording_paths WHERE path = :path ORDER BY recording_id")

# models and runs
MODEL_ID = text("SELECT id FROM models WHERE version = :version")
MODEL_BY_ID = text("SELECT * FROM models WHERE id = :key")
MODEL_BY_VERSION = text("SELECT * FROM models WHERE version = :key")
INSERT_MODEL = text(
    "INSERT INTO models (version, path, kind, config, training_data, metrics, created_at) "
    "VALUES (:version, :path, :kind, :config, :training_data, :metrics, :created_at) "
    "ON CONFLICT (version) DO NOTHING")
INSERT_RUN = text(
    "INSERT INTO runs (model_id, settings, settings_hash, created_at) "
    "VALUES (:model_id, :settings, :settings_hash, :created_at) ON CONFLICT (model_id, settings_hash) DO NOTHING")
RUN_ID = text("SELECT id FROM runs WHERE model_id = :model_id AND settings_hash = :settings_hash")
SELECT_RUN = text("SELECT * FROM runs WHERE id = :id")

# results, regions and failures
PROCESSED_STATUS = text("SELECT status FROM processed WHERE recording_id = :recording_id AND run_id = :run_id")
RECORDINGS_WHERE = f"SELECT {RECORDING_COLS} FROM recordings WHERE {{where}} ORDER BY id LIMIT :limit OFFSET :offset"
PROCESSED_WHERE = "SELECT * FROM processed WHERE {where} ORDER BY run_id, recording_id"
FAILURES_WHERE = "SELECT * FROM failures WHERE {where} ORDER BY id"
REGIONS_WHERE = f"SELECT {REGION_COLS} FROM regions WHERE {{where}} ORDER BY recording_id, start_sample, run_id, id"
#: the counts of one run's summary
RUN_STATUS_COUNTS = text("SELECT status, COUNT(*), SUM(n_windows), SUM(seconds) FROM processed "
                         "WHERE run_id = :run_id GROUP BY status")
#: regions, failures, and failures of files that never became a recording (unopenable), of one run
RUN_COUNTS = text("SELECT (SELECT COUNT(*) FROM regions WHERE run_id = :run_id), "
                  "(SELECT COUNT(*) FROM failures WHERE run_id = :run_id), "
                  "(SELECT COUNT(*) FROM failures WHERE run_id = :run_id AND recording_id IS NULL)")

DELETE_REGIONS = text("DELETE FROM regions WHERE recording_id = :recording_id AND run_id = :run_id")
INSERT_REGION = text(
    "INSERT INTO regions (recording_id, run_id, start_sample, stop_sample, sample_rate, start_s, stop_s, "
    "peak_score, mean_score, first_window, n_windows) VALUES (:recording_id, :run_id, :start_sample, "
    ":stop_sample, :sample_rate, :start_s, :stop_s, :peak_score, :mean_score, :first_window, :n_windows)")
UPSERT_PROCESSED = text(
    "INSERT INTO processed (recording_id, run_id, status, n_windows, n_regions, seconds, error, finished_at) "
    "VALUES (:recording_id, :run_id, :status, :n_windows, :n_regions, :seconds, :error, :finished_at) "
    "ON CONFLICT (recording_id, run_id) DO UPDATE SET status = excluded.status, n_windows = excluded.n_windows, "
    "n_regions = excluded.n_regions, seconds = excluded.seconds, error = excluded.error, "
    "finished_at = excluded.finished_at")
# a failed retry never overwrites a completed result
UPSERT_FAILED = text(UPSERT_PROCESSED.text + " WHERE processed.status <> 'done'")
INSERT_FAILURE = text("INSERT INTO failures (run_id, recording_id, path, error, at) "
                      "VALUES (:run_id, :recording_id, :path, :error, :at) RETURNING id")
# one failure row per file and run: an earlier row of the same recording or path goes first
DELETE_FAILURES_OF_FILE = text(
    "DELETE FROM failures WHERE run_id = :run_id AND (path = :path OR recording_id = :recording_id)")
DELETE_FAILURES_OF_PATH_NO_RUN = text("DELETE FROM failures WHERE run_id IS NULL AND path = :path")
# a success clears the run's failure rows of the recording, under any of its paths
CLEAR_FAILURES = text(
    "DELETE FROM failures WHERE run_id = :run_id AND (recording_id = :recording_id OR path IN "
    "(SELECT path FROM recording_paths WHERE recording_id = :recording_id))")

# single rows, runs, the latest run
SELECT_REGION = text(f"SELECT {REGION_COLS} FROM regions WHERE id = :id")
SELECT_RUNS = text("SELECT * FROM runs ORDER BY id")
LATEST_RUN = text("SELECT MAX(run_id) FROM processed WHERE status = 'done'")
LATEST_RUN_OF_RECORDING = text(
    "SELECT MAX(run_id) FROM processed WHERE status = 'done' AND recording_id = :recording_id")
COUNT_REGIONS_OF = text("SELECT COUNT(*) FROM regions WHERE recording_id = :recording_id AND run_id = :run_id")

# ---------------------------------------------------------------------------- discovery
#: the columns naming one clustering (as in the clusters and cluster_names tables)
CLUSTERING_KEY = "run_id = :run_id AND algorithm = :algorithm AND params = :params"
SELECT_CLUSTER_MEMBERS = text(
    f"SELECT region_id, cluster FROM clusters WHERE {CLUSTERING_KEY} ORDER BY cluster, region_id")
CLUSTERS_WHERE = "SELECT * FROM clusters WHERE {where} ORDER BY id"
SEQUENCE_VERSIONS_WHERE = ("SELECT model_version, MAX(created_at) AS at FROM sequences WHERE {where} "
                           "GROUP BY model_version ORDER BY MAX(created_at) DESC, model_version")
#: a cheap fingerprint of the stored sequences of one encoder: count, highest region id, latest write
SEQUENCES_FINGERPRINT = text("SELECT COUNT(*), MAX(region_id), MAX(created_at) FROM sequences "
                             "WHERE model_version = :model_version")
CLUSTERINGS_WHERE = ("SELECT run_id, algorithm, params, COUNT(*) AS n_regions, COUNT(DISTINCT cluster) AS n_clusters, "
                     "MAX(created_at) AS created_at FROM clusters WHERE {where} GROUP BY run_id, algorithm, params "
                     "ORDER BY MAX(created_at), algorithm")
DELETE_CLUSTERS = text(f"DELETE FROM clusters WHERE {CLUSTERING_KEY}")
INSERT_CLUSTER = text("INSERT INTO clusters (region_id, run_id, algorithm, params, cluster, created_at) "
                      "VALUES (:region_id, :run_id, :algorithm, :params, :cluster, :created_at)")
DELETE_SEQUENCE = text("DELETE FROM sequences WHERE region_id = :region_id AND model_version = :model_version")
INSERT_SEQUENCE = text("INSERT INTO sequences (region_id, model_version, n_windows, dim, data, created_at) "
                       "VALUES (:region_id, :model_version, :n_windows, :dim, :data, :created_at)")
SELECT_SEQUENCES = text("SELECT region_id, n_windows, dim, data FROM sequences WHERE model_version = :model_version "
                        "ORDER BY region_id")
DELETE_MAP_POINTS = text("DELETE FROM map_points WHERE run_id = :run_id AND method = :method AND params = :params")
INSERT_MAP_POINT = text("INSERT INTO map_points (region_id, run_id, method, params, x, y, created_at) "
                        "VALUES (:region_id, :run_id, :method, :params, :x, :y, :created_at)")
LATEST_MAP_PARAMS = text("SELECT params FROM map_points WHERE run_id = :run_id AND method = :method "
                         "ORDER BY created_at DESC LIMIT 1")
SELECT_MAP_POINTS = text("SELECT region_id, x, y FROM map_points WHERE run_id = :run_id AND method = :method "
                         "AND params = :params ORDER BY region_id")

# ---------------------------------------------------------------------------- curation and the edit log
EDITS_WHERE = "SELECT * FROM edits WHERE {where} ORDER BY id"
INSERT_EDIT = text(
    "INSERT INTO edits (target, target_id, field, old_value, new_value, author, at, note) "
    "VALUES (:target, :target_id, :field, :old_value, :new_value, :author, :at, :note) RETURNING id")
LABEL_COLS = "region_id, label, note, author, at"
SELECT_REGION_LABEL = text(f"SELECT {LABEL_COLS} FROM region_labels WHERE region_id = :region_id")
SELECT_LABELS_OF_RUN = text(
    "SELECT l.region_id, l.label, l.note, l.author, l.at FROM region_labels l JOIN regions g ON g.id = l.region_id "
    "WHERE g.run_id = :run_id ORDER BY l.region_id")
SELECT_LABELS_OF_RECORDING = text(
    "SELECT l.region_id, l.label, l.note, l.author, l.at FROM region_labels l JOIN regions g ON g.id = l.region_id "
    "WHERE g.run_id = :run_id AND g.recording_id = :recording_id ORDER BY l.region_id")
UPSERT_REGION_LABEL = text(
    "INSERT INTO region_labels (region_id, label, note, author, at) VALUES (:region_id, :value, NULL, :author, :at) "
    "ON CONFLICT (region_id) DO UPDATE SET label = excluded.label, author = excluded.author, at = excluded.at")
UPSERT_REGION_NOTE = text(
    "INSERT INTO region_labels (region_id, label, note, author, at) VALUES (:region_id, NULL, :value, :author, :at) "
    "ON CONFLICT (region_id) DO UPDATE SET note = excluded.note, author = excluded.author, at = excluded.at")
SELECT_CLUSTER_NAMES = text(
    f"SELECT cluster, name, note, author, at FROM cluster_names WHERE {CLUSTERING_KEY} ORDER BY cluster")
UPSERT_CLUSTER_NAME = text(
    "INSERT INTO cluster_names (run_id, algorithm, params, cluster, name, note, author, at) VALUES (:run_id, "
    ":algorithm, :params, :cluster, :value, NULL, :author, :at) ON CONFLICT (run_id, algorithm, params, cluster) "
    "DO UPDATE SET name = excluded.name, author = excluded.author, at = excluded.at")
UPSERT_CLUSTER_NOTE = text(
    "INSERT INTO cluster_names (run_id, algorithm, params, cluster, name, note, author, at) VALUES (:run_id, "
    ":algorithm, :params, :cluster, NULL, :value, :author, :at) ON CONFLICT (run_id, algorithm, params, cluster) "
    "DO UPDATE SET note = excluded.note, author = excluded.author, at = excluded.at")
MAX_CLUSTER = text(f"SELECT MAX(cluster) FROM clusters WHERE {CLUSTERING_KEY}")
MOVE_CLUSTER = text(f"UPDATE clusters SET cluster = :into WHERE {CLUSTERING_KEY} AND cluster = :cluster")
MOVE_CLUSTER_MEMBER = text(
    f"UPDATE clusters SET cluster = :into WHERE {CLUSTERING_KEY} AND cluster = :cluster AND region_id = :region_id")

