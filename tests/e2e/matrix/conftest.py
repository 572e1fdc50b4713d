"""Fixtures for Matrix end-to-end tests: one throwaway Synapse per session, fresh users, members and adapters.

`make_member` gives a human client, `make_adapter` a started MatrixAdapter whose events land in an
`EventRecorder` (or in any handler passed in), with a `MemoryKv` that survives restarts, and `make_lien` a whole
`lien run` process with its own config file and database.
"""

from __future__ import annotations

import asyncio
import atexit
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.matrix_adapter import MatrixAdapter
from bot.events import Event
from bot.ports import EventHandler
from tests.e2e.matrix.lien_process import LienProcess
from tests.e2e.matrix.members import Member
from tests.e2e.matrix.synapse_harness import SynapseServer, TestUser

_startup: dict[str, float] = {}

MakeMember = Callable[["str | TestUser"], Awaitable[Member]]
MakeAdapter = Callable[..., Awaitable[MatrixAdapter]]
MakeUser = Callable[..., TestUser]
MakeLien = Callable[..., LienProcess]


class MemoryKv:
    """The adapter's key-value port in memory; keep the instance to simulate what the database would keep."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value


class EventRecorder:
    """An `EventHandler` that records events and lets a test wait for the one it expects."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Event], bool], within: float = 15.0) -> Event:
        """The first recorded event matching `predicate`, waiting up to `within` seconds for it."""
        async with asyncio.timeout(within), self._changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await self._changed.wait()

    async def wait_count(self, predicate: Callable[[Event], bool], n: int, within: float = 15.0) -> list[Event]:
        """Wait until at least `n` recorded events match; returns all that match."""
        async with asyncio.timeout(within), self._changed:
            while len(found := [e for e in self.events if predicate(e)]) < n:
                await self._changed.wait()
            return found


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A running Synapse on a free loopback port, stopped by its pid at session end (also on failure or Ctrl-C)."""
    server = SynapseServer(Path(tmp_path_factory.mktemp("synapse")))
    atexit.register(server.stop)  # a second guard if pytest dies before its teardown; stop() is idempotent
    _startup["seconds"] = server.start()
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "seconds" in _startup:
        terminalreporter.write_line(f"synapse: started in {_startup['seconds']:.2f}s")


@pytest.fixture
def make_user(synapse: SynapseServer) -> Callable[..., TestUser]:
    """Register a fresh user (unique localpart per call); `rate_limited=True` keeps Synapse's message limits,
    `message_rate=(per_second, burst)` sets the user's own."""

    def make(name: str, *, rate_limited: bool = False, message_rate: tuple[int, int] | None = None) -> TestUser:
        return synapse.register(f"{name}-{uuid.uuid4().hex[:8]}", rate_limited=rate_limited,
                                message_rate=message_rate)

    return make


@pytest.fixture
async def make_member(synapse: SynapseServer, make_user: Callable[..., TestUser]) -> AsyncIterator[MakeMember]:
    """A factory of human members: a new account per name, or a client for an existing user; closed at teardown."""
    made: list[Member] = []

    async def make(who: str | TestUser) -> Member:
        member = Member(synapse, make_user(who) if isinstance(who, str) else who)
        made.append(member)
        return member

    yield make
    for member in made:
        await member.close()


@pytest.fixture
async def make_adapter(synapse: SynapseServer) -> AsyncIterator[MakeAdapter]:
    """Start a MatrixAdapter for `user` (token login unless `password=True`); every one is stopped at teardown."""
    started: list[MatrixAdapter] = []

    async def make(user: TestUser, *, on_event: EventHandler, kv: MemoryKv | None = None,
                   password: bool = False, **options: Any) -> MatrixAdapter:
        kv = kv or MemoryKv()
        settings: dict[str, Any] = {"homeserver": synapse.base_url, "community": "localhost",
                                    "backoff_initial": 0.1, "backoff_cap": 2.0, "sync_timeout_ms": 10_000,
                                    **options}
        if password:
            settings["password"] = user.password
        else:
            settings |= {"access_token": user.access_token, "device_id": user.device_id}
        adapter = MatrixAdapter(user_id=user.user_id, kv_get=kv.get, kv_set=kv.set,
                                **settings)
        started.append(adapter)
        async with asyncio.timeout(30):
            await adapter.start(on_event)
        return adapter

    yield make
    for adapter in started:
        async with asyncio.timeout(60):
            await adapter.stop()


@pytest.fixture
async def make_lien(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[MakeLien]:
    """A factory of `lien run` processes (not started) for a user; any still running at teardown is killed."""
    made: list[LienProcess] = []

    def make(user: TestUser, **options: Any) -> LienProcess:
        workdir = tmp_path / f"lien-{len(made)}"
        workdir.mkdir()
        process = LienProcess(workdir, synapse, user, **options)
        made.append(process)
        return process

    yield make
    for process in made:
        await process.kill()


@pytest.fixture
def timed() -> Callable[[], float]:
    """Seconds since the test started (for reporting durations in assertion messages)."""
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0
