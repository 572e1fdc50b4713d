"""Engine and session factories for lien's database (SQLite via aiosqlite, or PostgreSQL via asyncpg).

Nothing here connects at import; `make_engine` only builds a lazy engine.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

#: Execution option: begin SQLite transactions of this connection with BEGIN IMMEDIATE (write lock up front).
SQLITE_IMMEDIATE = "lien_sqlite_immediate"

#: SQLite page cache per connection, in KiB: big enough for the hot index pages of a million-question database.
SQLITE_CACHE_KIB = 65_536

#: How long a SQLite connection waits for another process's write lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """The URL with its async driver: `sqlite:///x` becomes `sqlite+aiosqlite:///x`, `postgresql://` asyncpg."""
    parsed = make_url(url)
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
    engine = create_async_engine(async_url(url), json_serializer=json_dumps, **kwargs)
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
