"""Result database: recordings, models, runs, regions (plus clusters and edits).

``open_store("sqlite:///sonotype.db")`` (the default) or ``open_store("postgresql://user@host/db")``;
both run the same portable SQL (``schema.sql``). This is the only part of sonotype that imports
SQLAlchemy or a database driver.
"""

from .rows import (ClusterRow, EditRow, FailureRow, ModelRow, ProcessedRow, RecordingRow, RegionRow, RunRow,
                   StoreError)
from .db import DEFAULT_URL, SCHEMA_VERSION, load_schema, normalise_url
from .store import Store, open_store

__all__ = ["ClusterRow", "DEFAULT_URL", "EditRow", "FailureRow", "ModelRow", "ProcessedRow", "RecordingRow",
           "RegionRow", "RunRow", "SCHEMA_VERSION", "Store", "StoreError", "load_schema", "normalise_url",
           "open_store"]
