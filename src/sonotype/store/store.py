"""The result database as one object: :class:`Store` is the three interfaces of this package at once,
:class:`~.detections.DetectionStore` (recordings, models, runs, results, regions, failures),
:class:`~.discovery.DiscoveryStore` (embedding sequences, clusterings, maps) and
:class:`~.curation.CurationStore` (labels, names, merges, splits, the edit log), over one engine.
SQLite by default, PostgreSQL with the same code; the SQL is in ``schema.sql`` and :mod:`.queries`.

A function that needs one side only may say so in its signature (``store: DiscoveryStore``).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..errors import ConfigError
from . import db
from .curation import CurationStore
from .db import DEFAULT_URL, normalise_url
from .detections import DetectionStore
from .discovery import DiscoveryStore
from .rows import StoreError


class Store(DetectionStore, DiscoveryStore, CurationStore):
    """Recordings, models, runs, per-recording results and regions, sequences, clusters, maps and edits."""


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
    except BaseException:  # whatever stops the checks (even Ctrl-C) must not leave the engine open
        store.close()
        raise
    return store
