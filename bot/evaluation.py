"""Measure question detection and answer linking on real chat logs with human gold labels (`make eval`).

Each dataset folder holds `events.jsonl` (neutral event format) and `gold.jsonl` (see the data README). The
tracker replays the events in file order; the scores follow the README's definitions:

- detection: tracked questions vs `help_request_proxy`, over labelled human messages;
- linking, per question (labelled, non-censored tracked questions): precision = share of questions with a linked
  answer where one linked answer is a gold answer, recall = share of gold-answered questions where one was found;
- unanswered (positive class: what would be nudged, i.e. still open or stale) vs no gold answer;
- the same linking and unanswered figures for a naive reference linker on the same questions.

Usage: `python -m bot.evaluation --data ../shared/data/chat-eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bot.config import Settings
from bot.events import Delete, Edit, Message, Reaction
from bot.model import QState
from bot.tracker import Opened, QuestionTracker

__all__ = [
    "DatasetScore",
    "Gold",
    "Prediction",
    "Prf",
    "format_scores",
    "main",
    "naive_links",
    "read_events",
    "read_gold",
    "replay",
    "run_eval",
    "score",
]

Replayed = Message | Reaction | Edit | Delete
#: The naive reference links the first message by someone else within this delay.
NAIVE_DELAY = timedelta(seconds=90)


@dataclass(frozen=True, slots=True)
class Gold:
    """One labelled message."""

    id: str
    answers: frozenset[str]
    help_request: bool
    censored: bool


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a linker said about one question: its linked answers and whether it would still be nudged."""

    answers: frozenset[str]
    unanswered: bool


@dataclass(frozen=True, slots=True)
class Prf:
    """Counts of a binary decision, with precision, recall and F1 (0 when undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class DatasetScore:
    """Every figure for one dataset."""

    name: str
    events: int
    questions: int
    detection: Prf
    #: Recall of detection on help requests that got a gold answer (the ones worth tracking).
    detection_answered: Prf
    linking: Prf
    unanswered: Prf
    naive_linking: Prf
    naive_unanswered: Prf
    events_per_second: float = 0.0
    notes: tuple[str, ...] = field(default=())


# ------------------------------------------------------------------------------------------------- scoring


def score_detection(gold: Mapping[str, Gold], detected: Iterable[str], humans: Iterable[str]) -> tuple[Prf, Prf]:
    """Detection vs `help_request_proxy` over labelled human messages, and recall on answered help requests."""
    found = set(detected)
    tp = fp = fn = atp = afn = 0
    for id in humans:
        g = gold.get(id)
        if g is None:
            continue
        hit = id in found
        if g.help_request:
            tp += hit
            fn += not hit
            if g.answers and not g.censored:
                atp += hit
                afn += not hit
        else:
            fp += hit
    return Prf(tp, fp, fn), Prf(atp, 0, afn)


def score(gold: Mapping[str, Gold], predictions: Mapping[str, Prediction]) -> tuple[Prf, Prf, int]:
    """(linking, unanswered, number of scored questions) over labelled, non-censored predicted questions.

    Linking counts a question once: tp = some linked answer is gold; fp = linked answers, none gold;
    fn = gold answers exist and none was linked (a question can be both fp and fn).
    """
    ltp = lfp = lfn = utp = ufp = ufn = n = 0
    for qid, p in predictions.items():
        g = gold.get(qid)
        if g is None or g.censored:
            continue
        n += 1
        hit = bool(p.answers & g.answers)
        ltp += hit
        lfp += bool(p.answers) and not hit
        lfn += bool(g.answers) and not hit
        gold_unanswered = not g.answers
        utp += p.unanswered and gold_unanswered
        ufp += p.unanswered and not gold_unanswered
        ufn += (not p.unanswered) and gold_unanswered
    return Prf(ltp, lfp, lfn), Prf(utp, ufp, ufn), n


def naive_links(messages: Sequence[Message], questions: Iterable[str]) -> dict[str, Prediction]:
    """The reference linker: later messages by others that reply to the question or mention the asker, plus
    the first message by someone else within 90 s."""
    wanted = set(questions)
    by_room: dict[tuple[str, str], list[Message]] = {}
    for m in messages:
        by_room.setdefault((m.community, m.room), []).append(m)
    out: dict[str, Prediction] = {}
    for room_msgs in by_room.values():
        for i, q in enumerate(room_msgs):
            if q.id not in wanted:
                continue
            found: set[str] = set()
            first = False
            for m in room_msgs[i + 1 :]:
                if m.author == q.author:
                    continue
                if m.reply_to == q.id or q.author in m.mentions:
                    found.add(m.id)
                if not first and m.ts - q.ts <= NAIVE_DELAY:
                    found.add(m.id)
                first = True
            out[q.id] = Prediction(frozenset(found), not found)
    return out


# --------------------------------------------------------------------------------------------- reading


def read_events(path: Path) -> list[Replayed]:
    """Message, reaction, edit and delete events of a JSONL file, in file order (others are skipped)."""
    out: list[Replayed] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            e = json.loads(line)
            kind = e.get("type")
            ts = datetime.fromisoformat(e["ts"])
            if kind == "message":
                out.append(
                    Message(
                        community=e["community"],
                        room=e["room"],
                        id=e["id"],
                        ts=ts,
                        author=e["author"],
                        text=e.get("text") or "",
                        reply_to=e.get("reply_to"),
                        thread=e.get("thread"),
                        mentions=tuple(e.get("mentions") or ()),
                        is_bot=bool(e.get("is_bot")),
                    )
                )
            elif kind == "reaction":
                out.append(Reaction(e["community"], e["room"], e["message"], e["author"], e["emoji"], ts))
            elif kind == "edit":
                out.append(Edit(e["community"], e["room"], e["id"], e.get("text") or "", ts))
            elif kind == "delete":
                out.append(Delete(e["community"], e["room"], e["id"], ts))
    return out


def read_gold(path: Path) -> dict[str, Gold]:
    """Gold labels by message id; the gold answers are `answers_direct` where present, else `answers_conv`."""
    out: dict[str, Gold] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            g = json.loads(line)
            direct = g.get("answers_direct")
            answers = direct if direct is not None else g.get("answers_conv") or []
            out[g["id"]] = Gold(g["id"], frozenset(answers), bool(g["help_request_proxy"]), bool(g["censored"]))
    return out


# ----------------------------------------------------------------------------------------------- running


def replay(events: Iterable[Replayed], settings: Settings | None = None) -> dict[str, Prediction]:
    """Run a QuestionTracker over the events and return its final verdict on every question it opened."""
    tracker = QuestionTracker(settings or Settings())
    opened = {}
    last_evict: datetime | None = None
    for e in events:
        if isinstance(e, Message):
            changes = tracker.on_message(e)
        elif isinstance(e, Reaction):
            changes = tracker.on_reaction(e)
        elif isinstance(e, Edit):
            changes = tracker.on_edit(e)
        else:
            changes = tracker.on_delete(e)
        for ch in changes:
            if isinstance(ch, Opened):
                opened[ch.question.id] = ch.question
        if last_evict is None or e.ts - last_evict > timedelta(hours=1):
            tracker.evict(e.ts)
            last_evict = e.ts
    return {
        qid: Prediction(frozenset(q.answers), q.state in (QState.OPEN, QState.STALE))
        for qid, q in opened.items()
        if q.state is not QState.WITHDRAWN
    }


def evaluate(name: str, events: Sequence[Replayed], gold: Mapping[str, Gold]) -> DatasetScore:
    """Score the tracker and the naive reference on one dataset."""
    started = time.perf_counter()
    predictions = replay(events)
    elapsed = time.perf_counter() - started
    messages = [e for e in events if isinstance(e, Message) and not e.is_bot]
    detection, detection_answered = score_detection(gold, predictions, (m.id for m in messages))
    linking, unanswered, n = score(gold, predictions)
    naive = naive_links(messages, predictions)
    naive_linking, naive_unanswered, _ = score(gold, naive)
    return DatasetScore(
        name=name,
        events=len(events),
        questions=n,
        detection=detection,
        detection_answered=detection_answered,
        linking=linking,
        unanswered=unanswered,
        naive_linking=naive_linking,
        naive_unanswered=naive_unanswered,
        events_per_second=len(events) / elapsed if elapsed > 0 else 0.0,
    )


def run_eval(data_dir: Path) -> list[DatasetScore]:
    """Evaluate every dataset folder (with events.jsonl and gold.jsonl) under `data_dir`, in name order."""
    folders = [p for p in sorted(data_dir.iterdir()) if (p / "events.jsonl").is_file() and (p / "gold.jsonl").is_file()]
    return [evaluate(f.name, read_events(f / "events.jsonl"), read_gold(f / "gold.jsonl")) for f in folders]


def format_scores(scores: Sequence[DatasetScore]) -> str:
    """A plain-text table of the scores."""

    def prf(x: Prf) -> str:
        return f"{x.precision:5.2f} {x.recall:5.2f} {x.f1:5.2f}"

    head = (
        f"{'dataset':<16} {'events':>6} {'ev/s':>7} {'qs':>5} | {'detection P   R   F1':^17} {'R ans':>5} | "
        f"{'linking P   R   F1':^17} | {'naive P   R   F1':^17} | {'unanswered P R F1':^17} | "
        f"{'naive unans P R F1':^17}"
    )
    lines = [head, "-" * len(head)]
    for s in scores:
        lines.append(
            f"{s.name:<16} {s.events:>6} {s.events_per_second:>7.0f} {s.questions:>5} | {prf(s.detection)} "
            f"{s.detection_answered.recall:5.2f} | {prf(s.linking)} | {prf(s.naive_linking)} | "
            f"{prf(s.unanswered)} | {prf(s.naive_unanswered)}"
        )
    lines.append(
        "detection vs help_request_proxy over labelled human messages (R ans: recall on answered help requests); "
        "linking and unanswered per question over labelled, non-censored tracked questions; naive = reference linker."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the score table for a folder of datasets; exit 2 if the folder has none."""
    parser = argparse.ArgumentParser(prog="python -m bot.evaluation", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/chat-eval"), help="datasets folder")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: not a directory", file=sys.stderr)
        return 2
    scores = run_eval(args.data)
    if not scores:
        print(f"{args.data}: no dataset folder with events.jsonl and gold.jsonl", file=sys.stderr)
        return 2
    print(format_scores(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
