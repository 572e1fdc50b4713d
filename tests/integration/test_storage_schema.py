"""Migrations against the models, and the engine's connection settings, on real databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.pool import NullPool

from storage.db import async_url, make_engine, make_sessionmaker
from storage.migrate import alembic_config, current_revision, head_revision, migrate
from storage.models import Base, KvRow
from storage.repositories import _PINGED_HELPERS, _PINGS_SINCE, NUDGES, OUTBOX, _pending_nudges, _sqlite_ts
from tests.integration.conftest import BACKENDS, _admin, _on, sqlite_url


async def _diff(url: str, metadata: sa.MetaData) -> list[object]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), metadata)
            )
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables at all (a fresh SQLite file, or a fresh PostgreSQL database)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "empty.db")
    base = request.getfixturevalue("pg_database")
    name = f"{sa.engine.make_url(base).database}_empty"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    request.addfinalizer(lambda: asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    return _on(base, name)


async def test_empty_database_migrated_to_head_matches_the_models(empty_url: str) -> None:
    assert await current_revision(empty_url) is None
    await migrate(empty_url)
    assert await current_revision(empty_url) == head_revision() == "0003_guard_strikes"
    assert await _diff(empty_url, Base.metadata) == []


async def test_schema_comparison_reports_a_column_the_migrations_lack(empty_url: str) -> None:
    # Guards the test above: the comparison must be able to fail.
    await migrate(empty_url)
    metadata = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    metadata.tables["messages"].append_column(sa.Column("extra", sa.Integer))
    diff = await _diff(empty_url, metadata)
    assert [d[0] for d in diff] == ["add_column"]
    assert diff[0][2] == "messages"


async def test_migrate_twice_is_a_no_op(empty_url: str) -> None:
    await migrate(empty_url)
    await migrate(empty_url)
    assert await current_revision(empty_url) == head_revision()


async def test_migrate_accepts_a_plain_sync_url(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    await migrate(f"sqlite:///{path}")
    assert await current_revision(sqlite_url(path)) == head_revision()


def test_async_url_picks_the_async_drivers() -> None:
    assert async_url("sqlite:///lien.db") == "sqlite+aiosqlite:///lien.db"
    assert async_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


async def test_make_engine_does_not_connect_until_used(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    engine = make_engine(sqlite_url(path))
    try:
        assert not path.exists()
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        assert path.exists()
    finally:
        await engine.dispose()


async def test_every_sqlite_connection_gets_foreign_keys_wal_and_normal_sync(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "p.db"))
    try:
        conns = [await engine.connect() for _ in range(3)]  # three pooled connections, each configured
        for conn in conns:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("foreign_keys", "journal_mode", "synchronous")
            ]
            assert pragmas == [1, "wal", 1]  # synchronous=NORMAL is 1
        for conn in conns:
            await conn.close()
    finally:
        await engine.dispose()


async def _query_plan(url: str, stmt: sa.Select[Any]) -> list[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            compiled = stmt.compile(dialect=conn.dialect)
            raw = compiled.construct_params()
            params = tuple(
                _sqlite_ts(v) if isinstance(v, datetime) else v for v in (raw[k] for k in compiled.positiontup or ())
            )
            rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)).all()
    finally:
        await engine.dispose()
    return [str(r[-1]) for r in rows]


@pytest.mark.parametrize(
    ("stmt", "index"),
    [
        (_pending_nudges().where(NUDGES.c.due < datetime(2026, 1, 1, tzinfo=UTC)).limit(100), "ix_nudges_state_due"),
        (
            sa.select(OUTBOX).where(OUTBOX.c.sent_at.is_(None)).order_by(OUTBOX.c.created, OUTBOX.c.key).limit(10),
            "ix_outbox_unsent",
        ),
        # Read at start to rebuild ping budgets: the sent pings of the retention window, not every nudge.
        (_PINGS_SINCE.stmt.params(since=datetime(2026, 1, 1, tzinfo=UTC), level=2), "ix_nudges_state_due"),
        (_PINGED_HELPERS.stmt.params(since=datetime(2026, 1, 1, tzinfo=UTC), level=2), "ix_nudges_state_due"),
    ],
    ids=["due-nudges", "unsent-outbox", "sent-pings", "pinged-helpers"],
)
async def test_hot_queries_read_one_index_range_without_sorting(tmp_path: Path, stmt: Any, index: str) -> None:
    url = sqlite_url(tmp_path / "plan.db")
    await migrate(url)
    plan = await _query_plan(url, stmt)
    assert any(f"USING INDEX {index}" in line or f"USING COVERING INDEX {index}" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan


async def test_downgrade_to_base_drops_every_table_and_upgrade_restores_them(empty_url: str) -> None:
    await migrate(empty_url)
    engine = make_engine(empty_url, poolclass=NullPool)

    def downgrade(sync: sa.Connection) -> list[str]:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync
        command.downgrade(cfg, "base")
        return [t for t in sa.inspect(sync).get_table_names() if t != "alembic_version"]

    try:
        async with engine.begin() as conn:
            assert await conn.run_sync(downgrade) == []
    finally:
        await engine.dispose()
    assert await current_revision(empty_url) is None
    await migrate(empty_url)
    assert await _diff(empty_url, Base.metadata) == []


async def test_session_objects_stay_readable_after_commit(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "s.db")
    await migrate(url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            kv = KvRow(key="k", value="v")
            session.add(kv)
            await session.commit()
            assert kv.value == "v"  # no lazy reload after commit (that would need sync IO under asyncio)
            assert (await session.scalars(sa.select(KvRow.value))).all() == ["v"]
    finally:
        await engine.dispose()
