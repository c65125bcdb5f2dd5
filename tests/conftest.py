"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real recordings: $SONOTYPE_DATA, default ``<repo>/../shared/data``.

    Missing -> the test is skipped, or fails when SONOTYPE_REQUIRE_DATA=1 (CI).
    """
    root = Path(os.environ.get("SONOTYPE_DATA") or REPO.parent / "shared" / "data")
    if not root.is_dir():
        msg = f"real data folder {root} not found; set SONOTYPE_DATA to the folder of real recordings"
        if os.environ.get("SONOTYPE_REQUIRE_DATA") == "1":
            pytest.fail(msg + " (SONOTYPE_REQUIRE_DATA=1 makes this an error)")
        pytest.skip(msg)
    return root


# ---------------------------------------------------------------------------- databases (sonotype.store)


def _pg_missing(msg: str):
    """Skip a PostgreSQL test, or fail it when SONOTYPE_REQUIRE_PG=1 (CI)."""
    if os.environ.get("SONOTYPE_REQUIRE_PG") == "1":
        pytest.fail(msg + " (SONOTYPE_REQUIRE_PG=1 makes this an error)")
    pytest.skip(msg)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL URL for tests: $SONOTYPE_TEST_PG_URL, else a throw-away cluster started here.

    The cluster needs the server binaries (Debian: ``apt-get install -y postgresql``); it is created
    with initdb in a fresh /tmp folder (as the ``postgres`` user when running as root, since the
    server refuses root), listens only on a Unix socket in that folder, and is stopped and deleted
    at the end of the session. No binaries -> skipped (failed when SONOTYPE_REQUIRE_PG=1).
    """
    env = os.environ.get("SONOTYPE_TEST_PG_URL")
    if env:
        yield env
        return
    import glob
    import shutil
    import subprocess
    import tempfile

    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not initdbs:
        _pg_missing("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); install them with "
                    "`apt-get install -y postgresql` or set SONOTYPE_TEST_PG_URL=postgresql://user@host/db")
    bindir = Path(initdbs[-1]).parent
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run the server as the `postgres` user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _pg_missing("running as root and there is no `postgres` user to run the test server as")
        prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if prefix is None:
            _pg_missing("running as root and `runuser` (util-linux) is missing")
    base = Path(tempfile.mkdtemp(prefix="sonotype-pg-", dir="/tmp"))  # short path: socket names are limited
    if prefix:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data, log, port = base / "data", base / "server.log", _free_port()

    def run(*args: str) -> None:
        r = subprocess.run(prefix + [str(bindir / args[0]), *args[1:]], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            extra = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stdout}{r.stderr}{extra}")

    started = False
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale")
        opts = f"-p {port} -k {base} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
        started = True
        run("createdb", "-h", str(base), "-p", str(port), "-U", "postgres", "sonotype_test")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        if started:
            subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
        _pg_missing(f"could not start a throw-away PostgreSQL server from {bindir}: {e}")
    try:
        yield f"postgresql://postgres@/sonotype_test?host={base}&port={port}"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_fresh_url(pg_url):
    """A fresh, empty private schema in the PostgreSQL test database (tests never see each other's rows)."""
    import uuid
    from urllib.parse import quote

    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty database per test: a SQLite file, or a private schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_fresh_url")
