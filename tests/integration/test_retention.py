"""The daily retention job on a real database: old rows go, help survives only as aggregates."""

from __future__ import annotations

from sqlalchemy import text

from bot.config import Settings
from storage.repositories import SqlStore
from tests.bot_driver import TestBot


async def count(store: SqlStore, table: str) -> int:
    async with store._engine.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def test_daily_purge_drops_old_rows_and_keeps_help_as_aggregates(store: SqlStore) -> None:
    settings = Settings.model_validate({"lien": {"retention_days": 2}})
    bot = await TestBot(store, settings).start()
    await bot.lines("""
/as carol
How do I make the CI run only on the main branch?
/wait 3m
/as alice
/reply m1 Add a branches filter under on push in the workflow file.
/wait 2m
/as carol
/reply m2 thanks, that worked!
""")
    assert await count(store, "messages") == 3
    assert await count(store, "help_edges") >= 1
    await bot.wait("1d")
    assert await count(store, "messages") == 3, "younger than retention: kept"
    await bot.wait("2d")
    assert await count(store, "messages") == 0
    assert await count(store, "help_edges") == 0
    assert await count(store, "help_aggregates") >= 1
