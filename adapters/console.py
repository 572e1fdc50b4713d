"""The console adapter: a terminal chat with lien, and the in-process driver for tests and the demo.

People type as community members (`/as alice`), lien's actions print as they happen, and virtual time can run
fast (`--speed 600` = ten minutes a second) so that nudges show within a minute. Script lines use the same
syntax as interactive input, listed in `HELP` (what `/help` prints).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO

from bot.actions import Action
from bot.clock import VirtualClock
from bot.events import Command, Delete, Event, MemberJoin, Message, Reaction

log = logging.getLogger(__name__)

COMMUNITY = "console"
HELP = """\
    plain text            a message by the current speaker (`!lien ...` is a lien command)
    /as NAME              speak as NAME from now on (plain lines are NAME's messages)
    /room NAME            move to room NAME (default: general)
    /reply LABEL TEXT     reply to message LABEL (labels m1, m2 ... are printed beside each message)
    /thread LABEL TEXT    post TEXT in the thread of message LABEL
    /react LABEL EMOJI    react to message LABEL
    /delete LABEL         delete message LABEL
    /join NAME            NAME joins the community
    /admin on|off         the current speaker is (not) an admin
    /wait 30m | 2h | 45s  let virtual time pass (timers fire on the way; at most 366d at a time)
    /say TEXT             print a narrator line
    # ...                 a comment
    /help                 this list
    /quit                 end the demo (interactive mode)
"""
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest `/wait`: a year is more than any nudge ladder or digest needs, and virtual time stays in range.
MAX_WAIT = timedelta(days=366)
_MENTION = re.compile(r"<@([^>\s]+)>")


def parse_duration(text: str) -> timedelta:
    """`45s`, `30m`, `2h`, `1d` (up to `MAX_WAIT`) -> timedelta; raises ValueError otherwise."""
    m = _WAIT.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 45s, 30m, 2h, 1d)")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_WAIT.total_seconds():
        raise ValueError(f"too long a wait: {text.strip()!r} (at most {MAX_WAIT.days}d at a time)")
    return timedelta(seconds=seconds)


@dataclass
class ConsoleAdapter:
    """Turns typed lines into events and prints actions; keeps every action it performed in `sent`."""

    clock: VirtualClock
    out: IO[str]
    run_id: str = "r"
    prefix: str = "!lien"
    speaker: str = "alice"
    room: str = "general"
    admins: set[str] = field(default_factory=set)
    sent: list[Action] = field(default_factory=list)
    platform: str = "console"
    _labels: dict[str, str] = field(default_factory=dict)
    _ids: dict[str, str] = field(default_factory=dict)
    _rooms: dict[str, str] = field(default_factory=dict)
    _threads: dict[str, str | None] = field(default_factory=dict)
    _count: int = 0
    _start: datetime | None = None
    on_event: Callable[[Event], Awaitable[None]] | None = None

    # -- Adapter protocol --------------------------------------------------------------------------------------

    async def start(self, on_event: Callable[[Event], Awaitable[None]]) -> None:
        self.on_event = on_event
        self._start = self.clock.now()

    async def perform(self, action: Action) -> None:
        self.sent.append(action)
        self.out.write(self.render(action) + "\n")
        self.out.flush()

    async def already_sent(self, action: Action) -> bool:
        return any(a.key == action.key for a in self.sent if action.key)

    async def stop(self) -> None:
        self.on_event = None

    # -- input -------------------------------------------------------------------------------------------------

    def _next_id(self) -> tuple[str, str]:
        self._count += 1
        label = f"m{self._count}"
        mid = f"{self.run_id}:{label}"
        self._labels[mid] = label
        self._ids[label] = mid
        return label, mid

    def _ref(self, label: str) -> str:
        if label not in self._ids:
            raise ValueError(f"no message labelled {label!r}")
        return self._ids[label]

    def events_for(self, line: str) -> list[Event]:
        """The events one input line stands for (possibly none); raises ValueError on a malformed line."""
        line = line.rstrip("\n")
        now = self.clock.now()
        if not line.strip() or line.lstrip().startswith("#"):
            return []
        if not line.startswith("/"):
            return [self._message(line, now)]
        cmd, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        match cmd:
            case "as" | "room":
                if not rest:
                    raise ValueError(f"usage: /{cmd} NAME")
                if cmd == "as":
                    self.speaker = rest
                else:
                    self.room = rest
                return []
            case "help":
                self.out.write(HELP)
                return []
            case "admin":
                (self.admins.add if rest != "off" else self.admins.discard)(self.speaker)
                return []
            case "join":
                return [MemberJoin(COMMUNITY, rest or self.speaker, now)]
            case "reply" | "thread":
                label, _, text = rest.partition(" ")
                target = self._ref(label)
                if cmd == "reply":
                    return [self._message(text, now, reply_to=target, thread=self._threads.get(target))]
                return [self._message(text, now, thread=self._threads.get(target) or target)]
            case "react":
                label, _, emoji = rest.partition(" ")
                target = self._ref(label)
                emoji = emoji.strip() or "✅"
                self.out.write(f"{self._stamp(now)} {self.speaker:>8} reacted {emoji} to {label}\n")
                return [Reaction(COMMUNITY, self._rooms[target], target, self.speaker, emoji, now)]
            case "delete":
                target = self._ref(rest)
                return [Delete(COMMUNITY, self._rooms[target], target, now)]
        raise ValueError(f"unknown console command /{cmd}")

    def _message(self, text: str, now: datetime, reply_to: str | None = None, thread: str | None = None) -> Event:
        label, mid = self._next_id()
        self._rooms[mid] = self.room
        self._threads[mid] = thread
        self.out.write(f"{self._stamp(now)} {self.speaker:>8} [{label}]"
                       f"{' ↪ ' + self._labels.get(reply_to, reply_to) if reply_to else ''}: {text}\n")
        mentions = tuple(w[1:] for w in text.split() if w.startswith("@") and len(w) > 1)
        if self.speaker in self.admins and text.startswith(self.prefix):
            body = text[len(self.prefix):].split()
            return Command(COMMUNITY, self.room, mid, self.speaker, now, (body or ["help"])[0].lower(),
                           tuple(body[1:]), is_admin=True)
        return Message(COMMUNITY, self.room, mid, now, self.speaker, text, reply_to=reply_to, thread=thread,
                       mentions=mentions, platform="console")

    # -- output ------------------------------------------------------------------------------------------------

    def _stamp(self, when: datetime) -> str:
        base = self._start or when
        minutes = int((when - base).total_seconds() // 60)
        return f"[+{minutes // 60:02d}:{minutes % 60:02d}]"

    def render(self, a: Action) -> str:
        """One readable line for an action."""
        target = f" ↪ {self._labels.get(a.reply_to, a.reply_to)}" if a.reply_to else ""
        where = f"dm to {a.to}" if a.name == "dm" else f"#{a.room}"
        tag = a.kind + (f" L{a.level}" if a.level else "") + (f", {a.reason}" if a.reason else "")
        body = _MENTION.sub(lambda m: "@" + m.group(1), a.text)
        body = re.sub(r"<link:[^/>]+/([^>]+)>", lambda m: self._labels.get(m.group(1), m.group(1)), body)
        return f"{self._stamp(a.ts)}     lien {a.name}{target} ({where}; {tag}): {body}"


class Driver:
    """Runs a console session: lines in, engine, timers on virtual time, actions printed."""

    def __init__(self, engine, scheduler, clock: VirtualClock, adapter: ConsoleAdapter) -> None:
        self.engine, self.scheduler, self.clock, self.adapter = engine, scheduler, clock, adapter

    async def _perform(self, actions: Iterable[Action]) -> None:
        for a in actions:
            await self.adapter.perform(a)

    async def advance(self, until: datetime) -> None:
        """Let virtual time pass to `until`, firing every timer due on the way."""
        while (due := self.scheduler.pop_due(until)) is not None:
            when, key = due
            self.clock.set(when)
            await self._perform(await self.engine.fire(key))
        self.clock.set(until)

    async def line(self, line: str) -> None:
        """Process one input line (script or interactive)."""
        if line.startswith("/wait"):
            await self.advance(self.clock.now() + parse_duration(line[5:]))
            return
        if line.startswith("/say"):
            self.adapter.out.write(f"\n    {line[4:].strip()}\n")
            return
        for event in self.adapter.events_for(line):
            await self._perform(await self.engine.handle(event))

    async def interactive(self, speed: float, stdin: IO[str]) -> None:
        """Read lines from `stdin` while virtual time runs at `speed` virtual seconds per real second."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.2)
                await self.advance(self.clock.now() + timedelta(seconds=0.2 * speed))

        task = asyncio.create_task(ticker(), name="console-ticker")
        try:
            while True:
                raw = await loop.run_in_executor(None, stdin.readline)
                if not raw or raw.strip() in ("/quit", "/exit"):
                    break
                try:
                    await self.line(raw.rstrip("\n"))
                except ValueError as exc:
                    self.adapter.out.write(f"  ! {exc}\n")
        finally:
            stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


DEMO_SCRIPT = """\
/say A small community: alice, bob, carol and dave. lien watches #general.
/as bob
!lien helper on
/as carol
!lien helper on
/say Some history first: alice helps carol, bob helps alice.
/as carol
How do I make the CI run only on the main branch?
/wait 5m
/as alice
/reply m3 Add a branches filter under "on: push" in the workflow file.
/as carol
/reply m4 thanks, that worked!
/wait 1h
/as alice
Does anyone know why my docker build ignores the .dockerignore file?
/wait 10m
/as bob
/reply m6 It must sit at the root of the build context, next to the Dockerfile.
/wait 1d
/say Now alice asks something nobody answers. Watch lien nudge: a gentle reminder, then a few chosen people.
/as alice
How can I rotate the signing keys without downtime?
/wait 40m
/wait 2h
/say dave wants lien to invite and message everyone. lien refuses, and explains.
/as dave
!lien invite-all
!lien dm-all Join my new server!
/say carol answers alice; alice marks it solved. Nudges stop.
/as carol
/reply m8 Publish the new key first, sign with it a day later, then retire the old one.
/as alice
/react m11 ✅
/wait 1h
/say erin asks in French; nobody answers yet. It stays open in the database for the next run.
/as erin
Est-ce que quelqu'un sait comment limiter la mémoire d'un conteneur ?
/wait 40m
/as alice
!lien unanswered
"""


async def run_demo(settings, store, *, script: tuple[str, str] | None, speed: float, interactive: bool | None,
                   out: IO[str]) -> int:
    """`lien demo`: the built-in scenario (or `script`: its name and text), then interactive mode on a terminal."""
    from bot.clock import SystemClock
    from bot.engine import Engine
    from bot.timers import VirtualScheduler

    # Message ids must never repeat across runs on one database (two runs can start within the same second), and
    # each run starts a week after the last one ended: ping budgets and asker cooldowns hold across runs, as across
    # restarts, and a fresh week shows the whole ladder again.
    name, text = script or ("demo", DEMO_SCRIPT)
    async with store.transaction() as tx:
        run = int(await tx.kv.get("demo.runs") or 0) + 1
        tx.kv.set("demo.runs", str(run))
        ended = await tx.kv.get("demo.ended")
    start = SystemClock().now()
    if ended is not None:
        start = max(start, datetime.fromisoformat(ended) + timedelta(days=8))
    clock = VirtualClock(start)
    scheduler = VirtualScheduler()
    engine = Engine(settings, store, clock, scheduler)
    overdue = await engine.start()  # told below in the demo's own words, not as an operator's log warning
    run_id = f"run{run}"
    adapter = ConsoleAdapter(clock=clock, out=out, run_id=run_id, prefix=settings.lien.command_prefix)
    driver = Driver(engine, scheduler, clock, adapter)
    await adapter.start(lambda e: driver.line(""))  # events are fed by the driver itself
    async with store.transaction() as tx:
        earlier = await tx.questions.unanswered(COMMUNITY, None, 100)
    out.write(f"lien demo: state in the database, virtual time ({speed:g}x in interactive mode).\n")
    if earlier:
        out.write(f"Earlier runs left {len(earlier)} open question(s) in the database; `!lien unanswered` lists "
                  "them.\n")
    if overdue:
        out.write(f"{len(overdue)} of their nudge(s) fell due more than `catch_up_hours` before this run's start "
                  "(it begins a week after the last one): skipped, not sent late, as after a long outage.\n")
    for n, line in enumerate(text.splitlines(), 1):
        try:
            await driver.line(line)
        except ValueError as exc:
            out.write(f"  ! {name}:{n}: {exc}\n")
            return 2
    if interactive is None:
        interactive = sys.stdin.isatty() and script is None
    if interactive:
        out.write("\nYour turn: type as members (/as NAME), /wait 30m, /help, /quit. Time runs at "
                  f"{speed:g}x.\n")
        await driver.interactive(speed, sys.stdin)
    async with store.transaction() as tx:
        tx.kv.set("demo.ended", clock.now().isoformat())
    return 0
