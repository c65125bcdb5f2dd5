"""What every part of the store shares: the engine, one-transaction blocks, the schema checks, and
the small helpers that turn Python values into bound parameters.

:class:`Connected` is the base of the three interfaces (:class:`~.detections.DetectionStore`,
:class:`~.discovery.DiscoveryStore`, :class:`~.curation.CurationStore`); :class:`~.store.Store` is all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ConfigError
from . import db
from . import queries as q
from .db import SCHEMA_VERSION, load_schema
from .rows import StoreError, dumps, loads, opt_int


class Connected:
    """An open database: ``label`` names it in messages (its URL without the password)."""

    def __init__(self, engine: Engine, label: str, *, read_only: bool = False):
        self._engine = engine
        self.label = label
        self.read_only = read_only
        self.dialect = engine.dialect.name
        #: the SQLite database file (None: in memory, or a server database); caches may live beside it
        self.database_file = db.sqlite_file(engine.url) if self.dialect == "sqlite" else None
        if self.dialect not in db.ID_COLUMN:
            raise ConfigError(f"{label}: unsupported database {self.dialect!r}; use sqlite:/// or postgresql://")

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
            return c.execute(q.SCHEMA_VERSION_OF, {"key": "schema_version"}).scalar()

    def check_schema(self) -> None:
        """Raise :class:`StoreError` unless this is a sonotype database of the expected schema version."""
        found = self.schema_version()
        if found is None:
            raise StoreError(f"{self.label} is not a sonotype database (it has no sonotype schema_info); "
                             "check --db, or run `sonotype detect` into a new database file first")
        self._check_version(found)

    def _check_version(self, found: str | None) -> None:
        if found != SCHEMA_VERSION:
            raise StoreError(f"{self.label}: database schema version {found!r}, this sonotype expects "
                             f"{SCHEMA_VERSION!r}; use a new database file or migrate it")

    def create_schema(self) -> None:
        """Create missing tables and indexes (harmless when they exist)."""
        found = self.schema_version()
        if found is not None:  # before anything is created in it
            self._check_version(found)
        with self._tx(write=True) as c:
            if self.dialect == "postgresql":
                c.execute(q.PG_LOCK, {"key": db.PG_SCHEMA_LOCK})
            for stmt in load_schema(self.dialect):
                c.execute(text(stmt))
            c.execute(q.INSERT_SCHEMA_VERSION, {"key": "schema_version", "value": SCHEMA_VERSION})
            found = c.execute(q.SCHEMA_VERSION_OF, {"key": "schema_version"}).scalar_one()
        self._check_version(found)

    def tables(self) -> set[str]:
        """Names of the tables that exist (for checks and tests)."""
        with self._tx() as c:
            return {r[0] for r in c.execute(q.TABLES[self.dialect])}

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"


def clustering_key(run_id: int, algorithm: str, params: dict | None) -> dict:
    """Bound values naming one clustering (as in the clusters table)."""
    return {"run_id": int(run_id), "algorithm": str(algorithm), "params": dumps(params)}


def key_doc(key: dict) -> dict:
    """A clustering key as a JSON document for the edit log."""
    return {"run_id": key["run_id"], "algorithm": key["algorithm"], "params": loads(key["params"])}


def edit_row(target: str, target_id: int | None, field: str, old: Any, new: Any, author: str | None,
             note: str | None, at: str) -> dict:
    """Bound values of one edits row (old and new values kept as JSON)."""
    return {"target": str(target), "target_id": opt_int(target_id), "field": str(field),
            "old_value": None if old is None else dumps(old), "new_value": None if new is None else dumps(new),
            "author": author, "at": at, "note": note}
