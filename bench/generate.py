"""A deterministic generator of realistic chat events in the neutral format, for benchmarks and load tests.

Mix per message: about 30% questions; answers arrive as explicit replies, thread messages, mentions of the asker,
or plain follow-ups; some askers thank; a few questions stay unanswered.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

QUESTIONS = (
    "How do I configure the proxy for the build server?",
    "Does anyone know why the deploy fails with a timeout?",
    "Comment est-ce qu'on active les logs détaillés ?",
    "Is there a way to run the tests in parallel?",
    "Why does my container restart every few minutes?",
    "Quelqu'un sait pourquoi la page ne se charge pas ?",
    "What is the recommended way to store secrets here?",
    "Can someone explain how the cache invalidation works?",
)
ANSWERS = (
    "You need to set the environment variable first.",
    "Try the --verbose flag, it prints the reason.",
    "Regarde dans le fichier de configuration, section logs.",
    "That is a known issue, upgrade to the latest release.",
    "Check the health check settings of the service.",
)
CHATTER = (
    "good morning everyone",
    "I pushed the fix to the branch",
    "lunch time",
    "the release notes are out",
    "nice work on the new docs",
    "brb",
)
THANKS = ("thanks, that worked!", "merci, c'est résolu", "thank you!")


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def generate(n: int, *, rooms: int = 50, members: int = 2000, seed: int = 7) -> Iterator[dict[str, object]]:
    """`n` message events (dicts), in time order, reproducible for a given seed."""
    rnd = random.Random(seed)
    t = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    open_q: list[list[tuple[str, str, str]]] = [[] for _ in range(rooms)]  # per room: (id, author, thread)
    for i in range(n):
        t += timedelta(milliseconds=rnd.randint(200, 4000))
        r = rnd.randrange(rooms)
        author = f"u{rnd.randrange(members)}"
        ev: dict[str, object] = {"type": "message", "platform": "bench", "community": "bench",
                                 "room": f"r{r}", "id": f"e{i}", "ts": _ts(t), "author": author}
        roll = rnd.random()
        pending = open_q[r]
        if roll < 0.30:
            ev["text"] = rnd.choice(QUESTIONS)
            thread = f"e{i}" if rnd.random() < 0.3 else None
            pending.append((f"e{i}", author, thread or ""))
            if len(pending) > 20:
                pending.pop(0)
        elif roll < 0.60 and pending:
            qid, asker, thread = pending.pop(rnd.randrange(len(pending)))
            ev["text"] = rnd.choice(ANSWERS)
            how = rnd.random()
            if thread:
                ev["thread"] = thread
            elif how < 0.5:
                ev["reply_to"] = qid
            elif how < 0.8:
                ev["mentions"] = [asker]
                ev["text"] = f"{asker}: {ev['text']}"
            if rnd.random() < 0.3:
                pending.append((f"e{i}", asker, thread))  # the asker may thank this answer later
        elif roll < 0.65 and pending:
            qid, asker, thread = pending[-1]
            ev["author"] = asker
            ev["text"] = rnd.choice(THANKS)
            ev["reply_to"] = qid
        else:
            ev["text"] = rnd.choice(CHATTER)
        yield ev


def write(path: Path, n: int, **kwargs: int) -> Path:
    """Write `n` generated events to `path` as JSON Lines."""
    with path.open("w", encoding="utf-8") as f:
        for ev in generate(n, **kwargs):
            f.write(json.dumps(ev, separators=(",", ":"), ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="generate benchmark events")
    ap.add_argument("out", type=Path)
    ap.add_argument("-n", type=int, default=100_000)
    args = ap.parse_args()
    write(args.out, args.n)
