"""False alarms of the guard on real chat: hits per 1,000 human messages, per dataset, in observe mode.

    python -m bench.guard_eval --data /work/shared/data/chat-eval

Each dataset folder's `events.jsonl` is replayed through a fresh `Guard` with default settings (observe mode,
nobody known as a moderator). These logs are ordinary conversation, so every decision counts as a false alarm;
the bar is fewer than 1 per 1,000 human messages.

IRC logs are stamped to the minute, which cannot show a flood (the guard's windows shrink to one message on such
stamps). `--spread` also runs a second pass where the events sharing a minute are spread evenly across it in file
order, a plausible reconstruction of when they were written, so the windowed rules get exercised too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from adapters.jsonl import read_events
from bot.events import Event, MemberJoin, Message
from bot.guard_rules import RULES, GuardSettings
from bot.guards import Guard

#: The bar: guard decisions per 1,000 human messages on ordinary conversation.
MAX_PER_1000 = 1.0


@dataclass(frozen=True, slots=True)
class _View:
    guard: GuardSettings
    language: str = "en"
    moderators_room: str | None = "moderators"


@dataclass(slots=True)
class Result:
    """One dataset's figures."""

    name: str
    human: int
    decisions: int
    raids: int
    hits: Counter[str]

    @property
    def per_1000(self) -> float:
        return 1000 * self.decisions / self.human if self.human else 0.0


def spread(events: Iterable[Event]) -> Iterator[Event]:
    """The events with those sharing a whole-minute stamp (per community) spread evenly across that minute."""
    groups: dict[tuple[str, object], list[Event]] = defaultdict(list)
    ordered = list(events)
    for e in ordered:
        if e.ts.second == 0 and e.ts.microsecond == 0:
            groups[(e.community, e.ts)].append(e)
    shift: dict[int, timedelta] = {}
    for group in groups.values():
        for i, e in enumerate(group):
            shift[id(e)] = timedelta(seconds=(i + 0.5) * 60 / len(group))
    for e in ordered:
        yield dataclasses.replace(e, ts=e.ts + shift[id(e)]) if id(e) in shift else e


def evaluate(events_path: Path, settings: GuardSettings | None = None, *, spread_minutes: bool = False) -> Result:
    """Replay one events file through a fresh guard; count decisions (reports about members) and raids."""
    view = _View(settings or GuardSettings())
    guard = Guard(lambda community, room: view)
    human = 0
    events: Iterable[Event] = read_events(events_path, skip_bad=True)
    for event in spread(events) if spread_minutes else events:
        if isinstance(event, Message):
            human += not event.is_bot
            guard.on_message(event, now=event.ts)
        elif isinstance(event, MemberJoin):
            guard.on_join(event, now=event.ts)
    decisions = sum(v for k, v in guard.stats.items() if k.startswith("decision:"))
    hits = Counter({r.name: guard.stats[f"hit:{r.name}"] for r in RULES})
    return Result(events_path.parent.name, human, decisions, guard.stats["raid"], hits)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.guard_eval", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of datasets, each with an events.jsonl")
    ap.add_argument("--spread", action="store_true", help="also run with minute stamps spread across the minute")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    paths = sorted(args.data.glob("*/events.jsonl"))
    if not paths:
        print(f"no */events.jsonl under {args.data}", file=sys.stderr)
        return 2
    ok = True
    print(f"{'dataset':<34} {'human msgs':>10} {'decisions':>9} {'per 1,000':>9} {'raids':>5}  hits by rule")
    for path in paths:
        for spread_minutes in (False, True) if args.spread else (False,):
            r = evaluate(path, spread_minutes=spread_minutes)
            ok &= r.per_1000 < MAX_PER_1000
            name = r.name + (" (minutes spread)" if spread_minutes else "")
            rules = ", ".join(f"{k} {v}" for k, v in r.hits.items() if v) or "-"
            print(f"{name:<34} {r.human:>10,} {r.decisions:>9} {r.per_1000:>9.2f} {r.raids:>5}  {rules}")
    print(f"bar: < {MAX_PER_1000:g} decision per 1,000 human messages: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
