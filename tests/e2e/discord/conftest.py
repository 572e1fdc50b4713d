"""Fixtures for Discord end-to-end tests: the stand-in on loopback, and real DiscordAdapters connected to it.

`stand_in` serves the guild of tests/data/discord/guild_create.json. `start_adapter(...)` returns a started
adapter whose events land in a recording `Runtime` (which may answer with actions performed through the adapter).
`start_lien(...)` runs the whole of lien as production does (`lien run --config F` in a subprocess, on a SQLite
file or PostgreSQL), and `lien_db` reads what it stored. Every test fails if discord.py, the adapter or a lien
process logged an ERROR or swallowed an exception.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.discord_adapter import DiscordAdapter, DiscordSettings, LastProcessed
from bot.actions import Action
from bot.clock import SystemClock
from bot.events import Event, Message
from tests.e2e.discord.lien_process import LienDb, LienProcess, toml_config
from tests.e2e.discord.stand_in import DiscordStandIn, route_discord_py_to

DATA = Path(__file__).resolve().parents[2] / "data" / "discord"
GUILD = "1196378239795331073"
LIEN = "1378523440742531079"
ALICE, BOB, MOD = "838203133132931083", "673679042150531084", "609174002073731085"
HELP, GENERAL = "1196378743111811078", "1196378994770051080"
THREAD = "1476941945241731092"
ROLE_HELPERS = "1196379749744771075"

#: Nudge timing for scenarios: level 1 after 3 s, level 2 after 6 s, level 3 out of reach; no pacing, no quiet hours.
FAST_NUDGES: dict[str, Any] = {
    "level1_floor_minutes": 0.05, "level2_floor_minutes": 0.1, "level3_minutes": 60.0, "room_pace_seconds": 0,
    "asker_cooldown_days": 0,
}

Respond = Callable[[Event], "list[Action] | Awaitable[list[Action]]"]
StartAdapter = Callable[..., Awaitable[tuple[DiscordAdapter, "Runtime"]]]
StartLien = Callable[..., Awaitable[LienProcess]]


def frame(name: str) -> dict[str, Any]:
    """A recorded gateway frame from tests/data/discord (`{"op", "t", "s", "d"}`)."""
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


class Runtime:
    """The adapter's `on_event`: records every event, and performs what `respond(event)` returns (if set)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.respond: Respond | None = None
        self.adapter: DiscordAdapter | None = None
        self._changed = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        if self.respond is not None and self.adapter is not None:
            actions = self.respond(event)
            if inspect.isawaitable(actions):
                actions = await actions
            for action in actions:
                await self.adapter.perform(action)

    async def wait_for(self, predicate: Callable[[Event], bool], within: float = 5.0) -> Event:
        """The first recorded event matching `predicate`, waiting up to `within` seconds."""
        return (await self.wait_count(predicate, 1, within))[0]

    async def wait_count(self, predicate: Callable[[Event], bool], n: int, within: float = 5.0) -> list[Event]:
        """Wait until at least `n` recorded events match; returns all that match."""
        async with asyncio.timeout(within), self._changed:
            while len(found := [e for e in self.events if predicate(e)]) < n:
                await self._changed.wait()
            return found

    def last_processed(self) -> LastProcessed:
        """A `LastProcessed` answered from what this runtime recorded (what the message repository would keep)."""
        async def last(community: str, room: str) -> str | None:
            ids = [int(e.id) for e in self.events
                   if isinstance(e, Message) and e.community == community and e.room == room]
            return str(max(ids)) if ids else None
        return last


class ErrorWatch(logging.Handler):
    """Collects ERROR records from discord.py and lien's adapters (discord.py logs what it swallows)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_watch() -> Iterator[ErrorWatch]:
    """Fails the test at teardown if anything logged an ERROR under `discord` or `adapters`."""
    watch = ErrorWatch()
    loggers = [logging.getLogger("discord"), logging.getLogger("adapters")]
    for logger in loggers:
        logger.addHandler(watch)
    try:
        yield watch
    finally:
        for logger in loggers:
            logger.removeHandler(watch)
    problems = [f"{r.name}: {r.getMessage()}" for r in watch.records]
    assert problems == [], f"errors were logged: {problems}"


@pytest.fixture
async def stand_in() -> AsyncIterator[DiscordStandIn]:
    """The Discord stand-in serving the recorded guild, with discord.py pointed at it."""
    async with DiscordStandIn() as server:
        server.add_guild(copy.deepcopy(frame("guild_create")["d"]))
        with route_discord_py_to(server):
            yield server


@pytest.fixture
async def start_adapter(stand_in: DiscordStandIn, error_watch: ErrorWatch) -> AsyncIterator[StartAdapter]:
    """`await start_adapter(**settings)` -> (started adapter, its Runtime); all stopped and checked at teardown."""
    started: list[DiscordAdapter] = []

    async def start(*, runtime: Runtime | None = None, token: str | None = None,
                    last_processed: LastProcessed | None = None, guild_ready_timeout: float = 0.05,
                    **settings: Any) -> tuple[DiscordAdapter, Runtime]:
        settings.setdefault("command_sync", "guilds")
        settings.setdefault("command_guilds", (GUILD,))
        runtime = runtime or Runtime()
        adapter = DiscordAdapter(token or stand_in.token, clock=SystemClock(),
                                 settings=DiscordSettings(**settings), last_processed=last_processed,
                                 guild_ready_timeout=guild_ready_timeout)
        runtime.adapter = adapter
        started.append(adapter)
        await asyncio.wait_for(adapter.start(runtime), 10)
        return adapter, runtime

    yield start
    for adapter in started:
        await adapter.stop()
    assert [e for a in started for e in a.errors] == [], "the adapter swallowed errors"


def now() -> datetime:
    return datetime.now(UTC)


async def eventually(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll `check()` until it is truthy (for state the stand-in cannot signal, like the adapter's own)."""
    async with asyncio.timeout(within):
        while True:
            if value := check():
                return value
            await asyncio.sleep(0.01)


@pytest.fixture
def lien_db_url(tmp_path: Path) -> str:
    """The database the lien processes of a test share: a SQLite file in tmp_path."""
    return f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}"


@pytest.fixture
def lien_db(lien_db_url: str) -> LienDb:
    return LienDb(lien_db_url)


@pytest.fixture
async def start_lien(stand_in: DiscordStandIn, lien_db_url: str, tmp_path: Path) -> AsyncIterator[StartLien]:
    """`await start_lien(nudges=..., discord=..., name=...)` -> a running `lien run` on the shared database.

    At teardown every process still running gets SIGTERM; each must exit with 0 and have logged no error.
    """
    started: list[LienProcess] = []

    async def start(*, nudges: dict[str, Any] | None = None, discord: dict[str, Any] | None = None,
                    name: str = "lien", url: str | None = None, wait: bool = True) -> LienProcess:
        config = tmp_path / f"{name}.toml"
        config.write_text(toml_config({
            "storage": {"url": lien_db_url},
            "nudges": {**FAST_NUDGES, **(nudges or {})},
            "nudges.quiet_hours": {"enabled": False},
            "discord": {"token_env": "DISCORD_TOKEN", "command_sync": "guilds", "command_guilds": [GUILD],
                        **(discord or {})},
        }), encoding="utf-8")
        process = LienProcess(url or stand_in.url, config, tmp_path / f"{name}.log", token=stand_in.token)
        started.append(process)
        if wait:
            await process.start()
        return process

    yield start
    failures = []
    for process in started:
        if process.running:
            await process.stop()
        if process.returncode not in (0, None, -9):
            failures.append(f"{process.log.name}: exit code {process.returncode}")
        failures.extend(f"{process.log.name}: {p}" for p in process.problems())
    assert failures == [], "lien logged errors or failed:\n" + "\n".join(
        [*failures, *(f"--- {p.log.name}\n{p.tail()}" for p in started)])
