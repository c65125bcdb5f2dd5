"""Result database: recordings, models, runs, regions (plus sequences, clusters, maps and edits).

``open_store("sqlite:///sonotype.db")`` (the default) or ``open_store("postgresql://user@host/db")``;
both run the same portable SQL (``schema.sql`` for the tables, ``queries.py`` for the statements).
This is the only part of sonotype that imports SQLAlchemy or a database driver.

Modules: ``rows`` (the frozen row types), ``queries`` (every statement), ``db`` (engines and schema
loading), ``base`` (transactions), the three interfaces ``detections``, ``discovery``, ``curation``,
and ``store`` (:class:`Store`, all three, and :func:`open_store`).
"""

from ..errors import NotFound
from .curation import CurationStore
from .db import DEFAULT_URL, SCHEMA_VERSION, load_schema, normalise_url
from .detections import DetectionStore
from .discovery import DiscoveryStore
from .rows import ClusterRow, EditRow, FailureRow, ModelRow, ProcessedRow, RecordingRow, RegionRow, RunRow, StoreError
from .store import Store, open_store

__all__ = ["ClusterRow", "CurationStore", "DEFAULT_URL", "DetectionStore", "DiscoveryStore", "EditRow", "FailureRow",
           "ModelRow", "NotFound", "ProcessedRow", "RecordingRow", "RegionRow", "RunRow", "SCHEMA_VERSION", "Store",
           "StoreError", "load_schema", "normalise_url", "open_store"]
