"""Integration fixtures: migrated databases on real SQLite files and on the local PostgreSQL server.

`db_url` is parametrized over both. PostgreSQL tests skip, with the reason, when the server is unreachable,
except under CI=true, where they fail instead: CI must not pass by skipping them. The server is taken from
LIEN_TEST_PG_URL (default: postgres on 127.0.0.1:5432, database `test`); each test session creates its own
database there, migrates it once, empties its tables before each test and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storage.db import make_engine
from storage.migrate import migrate
from storage.models import Base
from storage.repositories import SqlStore

PG_SERVER_URL = os.environ.get("LIEN_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _on(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    engine = make_engine(PG_SERVER_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _probe() -> str | None:
    try:
        await asyncio.wait_for(_admin("SELECT 1"), timeout=5)
    except Exception as exc:  # any failure means "not usable here"; the message says which
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session (dropped afterwards)."""
    problem = asyncio.run(_probe())
    if problem is not None:
        reason = f"PostgreSQL not reachable at {make_url(PG_SERVER_URL).render_as_string()}: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(reason)
    name = f"lien_test_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = _on(PG_SERVER_URL, name)
    try:
        asyncio.run(migrate(url))
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_tables(url: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names}"))
    finally:
        await engine.dispose()


def sqlite_url(path: Path) -> str:
    """An aiosqlite URL for a database file."""
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at the newest revision, with empty tables: a SQLite file, or the session's PostgreSQL DB."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "lien.db")
        asyncio.run(migrate(url))
        return url
    url = request.getfixturevalue("pg_database")
    asyncio.run(_empty_tables(url))
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    """A SqlStore on `db_url`; its engine is disposed after the test."""
    engine = make_engine(db_url)
    try:
        yield SqlStore(engine)
    finally:
        await engine.dispose()
