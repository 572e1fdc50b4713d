"""Apply lien's Alembic migrations from Python (no alembic.ini needed), on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from bot.errors import InputError
from storage.db import make_engine, shown_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at lien's migrations (and at `url`, for the command line path)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # Config values go through ConfigParser interpolation: a '%' in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions under {MIGRATIONS}")
    return head


async def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` (sync or async URL) to `revision`, by default the newest."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade through an existing engine (needed for `sqlite://` in memory, where a new engine is a new DB)."""
    cfg = alembic_config()
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_on, cfg, revision)
    log.info("database at revision %s", await _current(engine))


async def require_current(engine: AsyncEngine) -> None:
    """For readers that must not change the database: an InputError unless it is a lien database at the newest
    revision (a file that is not lien's, or one an older lien wrote and `lien migrate` has not upgraded)."""
    current, head = await _current(engine), head_revision()
    if current is None:
        raise InputError(f"{shown_url(engine.url)} is not a lien database (no schema revision in it)")
    if current != head:
        raise InputError(f"{shown_url(engine.url)} is at schema revision {current}, this lien reads {head}: "
                         "`lien migrate --config FILE` upgrades an older one")


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None for a database never migrated."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        return await _current(engine)
    finally:
        await engine.dispose()


async def _current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current_on)


def _upgrade_on(connection: Connection, cfg: Config, revision: str) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _current_on(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
