"""The in-process test driver: the real engine behind the console adapter, on virtual time.

`bot.line("/as alice")`, `bot.line("How do I ...?")`, `bot.wait("30m")`, then assert on `bot.sent`.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from adapters.console import ConsoleAdapter, Driver, parse_duration
from bot.actions import Action
from bot.clock import VirtualClock
from bot.config import Settings
from bot.engine import Engine
from bot.ports import Store
from bot.timers import VirtualScheduler

#: A weekday at 10:00 UTC, away from quiet hours and DST changes.
START = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


class TestBot:
    """Drives one engine; `sent` holds every action performed, in order."""

    __test__ = False

    def __init__(self, store: Store, settings: Settings | None = None, start: datetime = START) -> None:
        self.settings = settings or Settings()
        self.clock = VirtualClock(start)
        self.scheduler = VirtualScheduler()
        self.engine = Engine(self.settings, store, self.clock, self.scheduler)
        self.out = io.StringIO()
        self.adapter = ConsoleAdapter(clock=self.clock, out=self.out, run_id="t",
                                      prefix=self.settings.lien.command_prefix)
        self.adapter._start = start
        self.driver = Driver(self.engine, self.scheduler, self.clock, self.adapter)

    async def start(self) -> TestBot:
        await self.engine.start()
        return self

    @property
    def sent(self) -> list[Action]:
        return self.adapter.sent

    async def lines(self, text: str) -> None:
        for line in text.strip().splitlines():
            await self.driver.line(line.strip())

    async def wait(self, duration: str) -> None:
        await self.driver.advance(self.clock.now() + parse_duration(duration))

    def id(self, label: str) -> str:
        return self.adapter._ids[label]

    def of(self, kind: str, level: int | None = None) -> list[Action]:
        return [a for a in self.sent if a.kind == kind and (level is None or a.level == level)]
