"""Load benchmark of the guard in front of the engine, with persistence on a temporary SQLite file.

    python -m bench.guard_load [--rate 20000] [--seconds 30] [--no-engine]

Offers `rate` events per virtual second for `seconds` (default 600,000 generated messages plus joins): members
typing in bursts (up to 7 lines, 1.3 to 3 s apart, then a pause), questions and replies, some links and
mentions, joins, a raid (a wave of new accounts in one community) and spam bursts by new accounts (floods,
copies across rooms, group pings, mass mentions, invite links, link bursts). Every event goes through
`Guard.on_message`/`on_join` (each call timed) and then `Engine.handle`. Prints the offered and achieved rates,
events in and processed, guard decision latency p50/p99, peak RSS, and whom the guard flagged: every spammer
should be, no regular member may be.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import random
import sys
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench.memory import peak_rss_mb
from bot.actions import Action
from bot.clock import VirtualClock
from bot.config import Settings
from bot.engine import Engine
from bot.events import Event, MemberJoin, Message
from bot.guard_rules import GuardSettings
from bot.guards import Guard
from bot.timers import VirtualScheduler

_T = TypeVar("_T")
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
COMMUNITIES = 20
ROOMS = 20
MEMBERS = 400_000
RAID_COMMUNITY = "g7"

QUESTIONS = (
    "How do I configure the proxy for the build server", "Does anyone know why the deploy fails with a timeout",
    "Is there a way to run the tests in parallel", "Why does my container restart every few minutes",
    "What is the recommended way to store secrets", "Comment est-ce qu'on active les logs détaillés",
)
ANSWERS = (
    "You need to set the environment variable first", "Try the verbose flag, it prints the reason",
    "That is a known issue, upgrade to the latest release", "Check the health check settings of the service",
)
CHATTER = ("good morning everyone", "I pushed the fix to the branch", "the release notes are out", "brb",
           "nice work on the new docs", "lol", "same here", "that makes sense")
SPAM_KINDS = ("flood", "duplicate", "mass_mention", "invite_link", "link_burst")


@dataclass(slots=True)
class Plan:
    """What the generator produced, to check the guard against."""

    messages: int = 0
    joins: int = 0
    spammers: dict[str, str] = field(default_factory=dict)  # author -> kind
    raiders: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Burst:
    """A member typing a few lines; the next line is made only when it is due, so the stream stays small."""

    author: str
    community: str
    room: str
    lines: int
    done: int = 0


def generate(rate: int, seconds: float, plan: Plan, seed: int = 11) -> Iterator[Event]:
    """`rate * seconds` messages (plus joins) in time order, made lazily so the stream itself takes little memory."""
    rnd = random.Random(seed)
    total = int(rate * seconds)
    mean_lines = 2.6
    lam = rate / mean_lines  # bursts per second
    heap: list[tuple[float, int, Event | _Burst]] = []
    seq = 0
    busy: dict[str, float] = {}
    recent: dict[tuple[str, str], deque[str]] = {}
    planned = 0
    start = 0.0
    raid_left = 40

    def push(at: float, item: Event | _Burst) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (at, seq, item))

    def ts(at: float) -> datetime:
        return T0 + timedelta(seconds=at)

    def message(at: float, community: str, room: str, author: str, text: str, **kw: object) -> Message:
        plan.messages += 1
        return Message(community, room, f"e{plan.messages}", ts(at), author, text, **kw)  # type: ignore[arg-type]

    def line(at: float, b: _Burst) -> Message:
        ids = recent.setdefault((b.community, b.room), deque(maxlen=20))
        roll = rnd.random()
        kw: dict[str, object] = {}
        if roll < 0.3:
            text = f"{rnd.choice(QUESTIONS)} ({rnd.randrange(10_000)})?"
        elif roll < 0.6 and ids:
            text = f"{rnd.choice(ANSWERS)}, see step {rnd.randrange(100)}"
            kw["reply_to"] = rnd.choice(ids)
        else:
            text = f"{rnd.choice(CHATTER)} {b.done}"
        if rnd.random() < 0.03:
            text += f" https://docs.example.org/page/{rnd.randrange(1000)}"
        if rnd.random() < 0.05:
            kw["mentions"] = (f"u{rnd.randrange(MEMBERS)}",)
        m = message(at, b.community, b.room, b.author, text, **kw)
        ids.append(m.id)
        return m

    def member_burst(at: float) -> int:
        for _ in range(5):  # a member who is already typing does not start a second burst
            author = f"u{rnd.randrange(MEMBERS)}"
            if busy.get(author, -1.0) < at:
                break
        else:
            return 0
        lines = min(7, 1 + int(rnd.expovariate(1 / (mean_lines - 1))), total - planned)
        # Lines come 1.3 to 3 s apart, then the member reads the answers for at least 10 s before typing again.
        busy[author] = at + 3.0 * lines + 10
        push(at, _Burst(author, f"g{rnd.randrange(COMMUNITIES)}", f"r{rnd.randrange(ROOMS)}", lines))
        return lines

    def join(at: float, community: str, author: str) -> None:
        plan.joins += 1
        push(at, MemberJoin(community, author, ts(at)))

    def spam_burst(at: float) -> int:
        kind = rnd.choice(SPAM_KINDS)
        author = f"spam{len(plan.spammers)}"
        plan.spammers[author] = kind
        community = f"g{rnd.randrange(COMMUNITIES)}"
        join(at, community, author)
        t = at + rnd.uniform(5, 60)
        rooms = [f"r{rnd.randrange(ROOMS)}" for _ in range(6)]
        out: list[tuple[float, str, str, tuple[str, ...]]] = []
        if kind == "flood":
            out = [(t + i * 0.25, rooms[0], f"spam line {i} {author}", ()) for i in range(15)]
        elif kind == "duplicate":
            out = [(t + i, rooms[i], "CHEAP FOLLOWERS, DM ME", ()) for i in range(6)]
        elif kind == "mass_mention":
            victims = tuple(f"u{rnd.randrange(MEMBERS)}" for _ in range(8))
            out = [(t, rooms[0], "@everyone free giveaway", ()), (t + 1, rooms[1], "look", victims)]
        elif kind == "invite_link":
            out = [(t, rooms[0], f"join us discord.gg/{author}", ())]
        else:
            links = " ".join(f"https://spam.example/{author}/{j}" for j in range(5))
            out = [(t + i, rooms[i], links, ()) for i in range(3)]
        for at_, room, text, mentions in out:
            push(at_, message(at_, community, room, author, text, mentions=mentions))
        return len(out)

    def due(until: float) -> Iterator[Event]:
        """Pop everything due by `until`; a burst yields its next line and comes back for the one after."""
        while heap and heap[0][0] <= until:
            at, _, item = heapq.heappop(heap)
            if isinstance(item, _Burst):
                yield line(at, item)
                item.done += 1
                if item.done < item.lines:
                    push(at + rnd.uniform(1.3, 3.0), item)
            else:
                yield item

    while planned < total:
        start += rnd.expovariate(lam)
        roll = rnd.random()
        if roll < 0.00015:
            planned += spam_burst(start)
        elif roll < 0.00025:
            join(start, f"g{rnd.randrange(COMMUNITIES)}", f"newcomer{plan.joins}")
        else:
            planned += member_burst(start)
        if raid_left and start >= seconds * 0.4:
            raid_left -= 1  # a wave of new accounts in one community, each saying a few things quickly
            raider = f"raider{40 - raid_left}"
            plan.raiders.add(raider)
            join(start, RAID_COMMUNITY, raider)
            for i in range(4):
                at = start + 3 + i * 1.5
                push(at, message(at, RAID_COMMUNITY, "r0", raider, f"hey whats up {i}"))
            planned += 4
        yield from due(start)
    yield from due(float("inf"))


@dataclass(frozen=True, slots=True)
class _View:
    guard: GuardSettings
    language: str = "en"
    moderators_room: str | None = "mods"


def timed(call: Callable[..., _T], *args: Any, **kwargs: Any) -> tuple[_T, int, int]:
    """`call(*args, **kwargs)` with its wall and thread-CPU nanoseconds: how every guard decision is timed here."""
    c0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    result = call(*args, **kwargs)
    wall = time.perf_counter_ns() - t0
    return result, wall, time.thread_time_ns() - c0


def note_flags(flagged: dict[str, set[str]], author: str, actions: Iterable[Action]) -> None:
    """Record the spam rules that fired on `author`'s message (whom the guard flagged, for the figures)."""
    for a in actions:
        if a.reason in SPAM_KINDS:
            flagged.setdefault(author, set()).add(a.reason)


def _pct(ordered: list[int], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000


@dataclass(slots=True)
class Run:
    """What one pass measured."""

    plan: Plan
    guard: Guard
    events_in: int = 0
    processed: int = 0
    elapsed: float = 0.0
    guard_ns: int = 0
    actions: int = 0
    engine_actions: int = 0
    latencies: array = field(default_factory=lambda: array("q"))
    cpu: array = field(default_factory=lambda: array("q"))
    flagged: dict[str, set[str]] = field(default_factory=dict)
    stopped_early: bool = False

    def guard_step(self, event: Event) -> None:
        if isinstance(event, Message):
            actions, spent, cpu = timed(self.guard.on_message, event, now=event.ts)
            self.cpu.append(cpu)
            self.latencies.append(spent)
            self.guard_ns += spent
            note_flags(self.flagged, event.author, actions)
        else:
            actions = self.guard.on_join(event, now=event.ts)
        self.actions += len(actions)


def _timing_floor(n: int = 20_000) -> tuple[float, float]:
    """p50 wall and CPU microseconds of an empty call timed as `Run.guard_step` times the guard: the part of
    each latency figure that is the measuring itself."""
    def nothing(event: object, *, now: object) -> list[object]:
        return []

    wall, cpu = array("q"), array("q")
    for _ in range(n):
        _, spent, used = timed(nothing, None, now=None)
        cpu.append(used)
        wall.append(spent)
    return _pct(sorted(wall), 0.5), _pct(sorted(cpu), 0.5)


def _guard() -> Guard:
    view = _View(GuardSettings())
    return Guard(lambda community, room: view)


def guard_only(rate: int, seconds: float) -> Run:
    """Every generated event through the guard alone."""
    r = Run(Plan(), _guard())
    started = time.perf_counter()
    for event in generate(rate, seconds, r.plan):
        r.events_in += 1
        r.guard_step(event)
        r.processed += 1
    r.elapsed = time.perf_counter() - started
    return r


async def guard_and_engine(rate: int, seconds: float, workdir: Path, budget: float) -> Run:
    """The same stream through the guard then the engine on SQLite; stops offering when `budget` seconds pass."""
    from storage.db import make_engine
    from storage.migrate import upgrade
    from storage.repositories import SqlStore

    r = Run(Plan(), _guard())
    db = make_engine(f"sqlite+aiosqlite:///{workdir / 'load.db'}")
    await upgrade(db)
    clock = VirtualClock(T0)
    scheduler = VirtualScheduler()
    engine = Engine(Settings(), SqlStore(db), clock, scheduler)
    await engine.start(purge=False)
    started = time.perf_counter()
    deadline = started + budget
    async with engine.batch(2000):
        for event in generate(rate, seconds, r.plan):
            if r.events_in % 1000 == 0 and time.perf_counter() > deadline:
                r.stopped_early = True
                break
            r.events_in += 1
            clock.set(event.ts)
            while (due := scheduler.pop_due(event.ts)) is not None:
                await engine.fire(due[1])
            r.guard_step(event)
            r.engine_actions += len(await engine.handle(event))
            r.processed += 1
    r.elapsed = time.perf_counter() - started
    await db.dispose()
    return r


def report_guard(r: Run, rate: int, seconds: float) -> None:
    ordered = sorted(r.latencies)
    plan = r.plan
    print(f"offered: {rate:,} events/s for {seconds:g} s = {plan.messages:,} messages + {plan.joins:,} joins")
    print(f"guard alone: {r.processed:,}/{r.events_in:,} events processed "
          f"({'none lost' if r.processed == r.events_in else 'LOST EVENTS'}) in {r.elapsed:.1f} s = "
          f"{r.events_in / r.elapsed:,.0f} events/s; time inside on_message {r.guard_ns / 1e9:.1f} s")
    cpu = sorted(r.cpu)
    print(f"guard decision latency (each on_message), wall clock: p50 {_pct(ordered, 0.5):.1f} us, "
          f"p99 {_pct(ordered, 0.99):.1f} us, p99.9 {_pct(ordered, 0.999):.1f} us, max {ordered[-1] / 1000:.1f} us")
    print(f"  CPU time of the same calls (unaffected by other processes on the machine): p50 {_pct(cpu, 0.5):.1f} us, "
          f"p99 {_pct(cpu, 0.99):.1f} us, p99.9 {_pct(cpu, 0.999):.1f} us, max {cpu[-1] / 1000:.1f} us; total "
          f"{sum(cpu) / 1e9:.1f} s = {len(cpu) / (sum(cpu) / 1e9):,.0f} messages per CPU second")
    wall, cpu_floor = _timing_floor()
    print(f"  of which the timing itself (an empty call timed the same way): wall p50 {wall:.1f} us, "
          f"CPU p50 {cpu_floor:.1f} us")
    print(f"peak RSS after the guard pass: {peak_rss_mb():.0f} MB; guard state at the end: {r.guard.sizes()}")
    spammers = plan.spammers
    by_kind = {k: sum(1 for s, kk in spammers.items() if kk == k and s in r.flagged) for k in SPAM_KINDS}
    totals = {k: sum(1 for kk in spammers.values() if kk == k) for k in SPAM_KINDS}
    regular = sorted(a for a in r.flagged if a.startswith("u"))
    raiders = sum(1 for x in plan.raiders if x in r.flagged)
    print(f"spammers flagged: {sum(by_kind.values())}/{len(spammers)} "
          f"({', '.join(f'{k} {by_kind[k]}/{totals[k]}' for k in SPAM_KINDS)}); raid mode entered "
          f"{r.guard.stats['raid']} time(s), raiders flagged {raiders}/{len(plan.raiders)}; regular members flagged: "
          f"{len(regular)}{' ' + str(regular[:10]) if regular else ''}")


def report_engine(r: Run, rate: int, total: int) -> None:
    ordered = sorted(r.latencies)
    achieved = r.events_in / r.elapsed
    print(f"guard + engine (SQLite persistence): {r.processed:,}/{r.events_in:,} offered events processed "
          f"({'none lost' if r.processed == r.events_in else 'LOST EVENTS'}) in {r.elapsed:.1f} s = "
          f"{achieved:,.0f} events/s{'' if achieved >= rate else f' (does NOT sustain {rate:,}/s)'}")
    if r.stopped_early:
        print(f"  stopped offering at the time budget: {r.events_in:,} of ~{total:,} events; the whole stream "
              f"would take ~{total / achieved:,.0f} s at this rate")
    print(f"  guard share of the time: {r.guard_ns / 1e9 / r.elapsed:.1%}; guard latency in the pipeline p50 "
          f"{_pct(ordered, 0.5):.1f} us, p99 {_pct(ordered, 0.99):.1f} us; actions: guard {r.actions:,}, "
          f"engine {r.engine_actions:,}")
    print(f"peak RSS of the process: {peak_rss_mb():.0f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.guard_load", description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=20_000, help="events offered per virtual second")
    ap.add_argument("--seconds", type=float, default=30, help="virtual seconds of traffic")
    ap.add_argument("--budget", type=float, default=100, help="wall seconds for the guard + engine pass")
    ap.add_argument("--no-engine", action="store_true", help="the guard alone, without the engine pass")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    g = guard_only(args.rate, args.seconds)
    report_guard(g, args.rate, args.seconds)
    ok = g.processed == g.events_in
    if not args.no_engine:
        with tempfile.TemporaryDirectory(prefix="lien-guard-load-") as tmp:
            e = asyncio.run(guard_and_engine(args.rate, args.seconds, Path(tmp), args.budget))
        report_engine(e, args.rate, g.events_in)
        ok &= e.processed == e.events_in
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
