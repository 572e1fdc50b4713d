"""Engine and session factories for lien's database (SQLite via aiosqlite, or PostgreSQL via asyncpg).

Nothing here connects at import; `make_engine` only builds a lazy engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.config import DATABASE_SCHEMES, database_scheme
from bot.errors import DatabaseUnavailable, InputError

#: Execution option: begin SQLite transactions of this connection with BEGIN IMMEDIATE (write lock up front).
SQLITE_IMMEDIATE = "lien_sqlite_immediate"

#: SQLite page cache per connection, in KiB: big enough for the hot index pages of a million-question database.
SQLITE_CACHE_KIB = 65_536

#: How long a SQLite connection waits for another process's write lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def parse_url(url: str) -> URL:
    """`url` parsed; an InputError (which never repeats the text: it may hold a password) if it is not a URL."""
    try:
        return make_url(url)
    except ArgumentError:
        raise InputError("not a database URL (expected e.g. sqlite:///lien.db or postgresql://user@host/lien)"
                         ) from None


def shown_url(url: str | URL) -> str:
    """`url` fit for messages and logs: a SQLite file's path, else the URL without its driver or password."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        return str(path)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and for SQLite in memory."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def check_open(engine: AsyncEngine) -> None:
    """Connect once, so that a database that cannot be opened or reached fails here with a DatabaseUnavailable
    that names it and says why, not later in the middle of a migration with a driver traceback."""
    name = shown_url(engine.url)
    path = sqlite_file(engine.url)
    if path is not None and not path.parent.is_dir():
        raise DatabaseUnavailable(f"cannot open the database {name}: the directory {path.parent} does not exist")
    try:
        async with engine.connect():
            pass
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"cannot open the database {name}: {exc.orig}") from None
    except OSError as exc:  # the server's address: refused, unreachable, unknown host, timed out
        raise DatabaseUnavailable(f"cannot reach the database {name}: {exc.strerror or exc}") from None


def async_url(url: str) -> str:
    """The URL with its async driver: `sqlite:///x` becomes `sqlite+aiosqlite:///x`, `postgresql://` asyncpg."""
    parsed = parse_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_dumps(value: Any) -> str:
    """The JSON text stored for JSON columns: compact, non-ASCII kept as is (so member ids can be matched)."""
    if not value and isinstance(value, list | tuple):
        return "[]"  # most lists are empty when a question or nudge is created
    return _JSON.encode(value)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; SQLite connections get foreign keys, WAL and synchronous=NORMAL."""
    backend = parse_url(url).get_backend_name()
    if database_scheme(url) not in DATABASE_SCHEMES:
        raise InputError(f"lien cannot use {backend} databases: it supports SQLite and PostgreSQL "
                         "(sqlite:///lien.db, postgresql://user@host/lien)")
    try:
        engine = create_async_engine(async_url(url), json_serializer=json_dumps, **kwargs)
    except ModuleNotFoundError as exc:  # asyncpg is an optional dependency
        raise InputError(f"the database driver {exc.name} is not installed (for PostgreSQL: "
                         "pip install 'lien[postgres]')") from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver (which skips it before SELECT and DDL) so that a transaction
        # covers reads and migrations too; the "begin" hook below emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction waits for another process's
        # writer (busy_timeout) instead of failing with SQLITE_BUSY when it upgrades; plain reads stay DEFERRED.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(SQLITE_IMMEDIATE) else "BEGIN")
