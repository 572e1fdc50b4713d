"""Community health as reciprocity: metrics over question states and help edges only, never message text.

Pure functions, no I/O. The inputs are one community's `Question`s and `HelpEdge`s (the whole history available,
or at least everything since the start of the window); a window is the half-open interval `[start, end)`.
Every ratio is `None` when its denominator is zero (shown as "—"), so an empty, one-member or all-unanswered
community never divides by zero. `METRIC_DEFINITIONS` states each metric for the README.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.model import HelpEdge, QState, Question

__all__ = [
    "METRIC_DEFINITIONS",
    "WEEK",
    "Health",
    "by_room",
    "first_questions",
    "first_seen",
    "helpers_ranked",
    "measure",
    "percentile",
    "week_label",
    "week_start",
    "weekly",
]

WEEK = timedelta(days=7)
#: Share of the most active answerers whose share of answers `top_share` reports.
TOP_FRACTION = 0.10

METRIC_DEFINITIONS = """\
All metrics are computed per window (an ISO week, Monday 00:00 UTC to the next Monday, or the last 7 days for
`!lien health`), per community and optionally per room, from question states and help edges only: never from
message text. A *question of the window* is a question asked in the window and not withdrawn. A *help edge* is
"member H helped member A on question Q", recorded when H's message is linked as an answer to A's question
(`answer`) or when A thanks or credits H (`credit`); edges of the window are those whose time falls in it, and an
edge from a member to themselves is ignored. A value that cannot be computed (no questions, no edges, fewer than
two members) is shown as "—".

- **questions**: the number of questions of the window.
- **answer rate**: the share of the window's questions that got a first answer from someone other than the asker
  (at any time up to the report, so the latest window can still rise).
- **time to first answer** (median, p90): over the window's answered questions, the time from the question to its
  first answer. The median is the middle time (the mean of the two middle ones for an even count); p90 is the
  90th percentile by nearest rank: the smallest time such that at least 90% of the times are at most it.
- **resolved**: the share of the window's questions whose state is `resolved` (the asker, or a moderator, marked
  it solved or thanked someone).
- **reciprocity**: among the distinct directed helper→asker pairs of the window's edges, the share whose reverse
  pair asker→helper is also among them.
- **help-graph density**: the distinct directed helper→asker pairs of the window divided by the n·(n−1) possible
  ordered pairs among the n active members.
- **asked and helped**: the share of active members who both asked (authored a question of the window, or were
  the asker on one of its edges) and helped (were the helper on one of its edges).
- **answerer concentration**: over the window's `answer` edges, counted per helper: the share of all answers
  given by the top 10% of answerers (rounded up, at least one), and the smallest number of answerers who together
  give at least half of the answers.
- **newcomers answered**: a newcomer is a member first seen in the window (first seen: their join time when
  known, else their earliest question or help edge in the data). Counted are the newcomers whose first question
  was asked in the window (in the room, for a room), and reported the share of them whose first question got an
  answer.
- **active members**: members who asked or helped in the window (authors of its questions, helpers and askers of
  its edges). Listed last on purpose: lien measures whether people help each other, not how many there are.
"""


@dataclass(frozen=True, slots=True)
class Health:
    """The health metrics of one community (or one of its rooms) over `[start, end)`; `None` means undefined."""

    start: datetime
    end: datetime
    room: str | None
    questions: int
    answered: int
    answer_rate: float | None
    #: Seconds from question to first answer over the window's answered questions.
    median_first_answer: float | None
    p90_first_answer: float | None
    resolved: int
    resolved_share: float | None
    #: Distinct directed helper->asker pairs, and how many of them are reciprocated.
    pairs: int
    reciprocal_pairs: int
    reciprocity: float | None
    density: float | None
    both_share: float | None
    #: `answer` edges of the window (one per question and helper).
    answers: int
    answerers: int
    top_share: float | None
    half_helpers: int | None
    newcomers: int
    newcomers_answered: int
    newcomers_answered_share: float | None
    #: Active members: asked or helped in the window. Deliberately the last figure.
    members: int


def week_start(ts: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week containing `ts`."""
    day = ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def week_label(start: datetime) -> str:
    """The ISO week name of a week start, e.g. `2026-W02`."""
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def first_seen(questions: Iterable[Question], edges: Iterable[HelpEdge],
               joins: Mapping[str, datetime] | None = None) -> dict[str, datetime]:
    """When each member was first seen: their join time when known, else their earliest question or help edge."""
    seen: dict[str, datetime] = {}

    def note(member: str, ts: datetime) -> None:
        old = seen.get(member)
        if old is None or ts < old:
            seen[member] = ts

    for q in questions:
        note(q.author, q.asked_ts)
    for e in edges:
        note(e.helper, e.ts)
        note(e.asker, e.ts)
    if joins:
        seen.update(joins)
    return seen


def first_questions(questions: Iterable[Question]) -> dict[str, Question]:
    """Each member's earliest question that was not withdrawn (ties: the smaller id)."""
    first: dict[str, Question] = {}
    for q in questions:
        if q.state == QState.WITHDRAWN:
            continue
        old = first.get(q.author)
        if old is None or (q.asked_ts, q.id) < (old.asked_ts, old.id):
            first[q.author] = q
    return first


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values`: the smallest value with at least `fraction` of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _check_one_community(questions: Sequence[Question], edges: Sequence[HelpEdge]) -> None:
    communities = {q.community for q in questions} | {e.community for e in edges}
    if len(communities) > 1:
        raise ValueError(f"health metrics are per community; got {len(communities)}: {sorted(communities)[:3]}")


class _Context:
    """What the window metrics need from the whole history: first-seen times and first questions."""

    __slots__ = ("first_question", "seen")

    def __init__(self, questions: Sequence[Question], edges: Sequence[HelpEdge],
                 seen: Mapping[str, datetime] | None) -> None:
        computed = first_seen(questions, edges)
        if seen:
            computed.update(seen)
        self.seen: Mapping[str, datetime] = computed
        self.first_question = first_questions(questions)


def _window(qs: Sequence[Question], es: Sequence[HelpEdge], start: datetime, end: datetime, room: str | None,
            ctx: _Context) -> Health:
    """The metrics of questions `qs` and edges `es` already restricted to the window (and room)."""
    questions = [q for q in qs if q.state != QState.WITHDRAWN]
    delays = [max((q.first_answer_ts - q.asked_ts).total_seconds(), 0.0)
              for q in questions if q.first_answer_ts is not None]
    resolved = sum(1 for q in questions if q.state == QState.RESOLVED)

    edges = [e for e in es if e.helper != e.asker]
    pairs = {(e.helper, e.asker) for e in edges}
    reciprocal = sum(1 for h, a in pairs if (a, h) in pairs)
    askers = {q.author for q in questions} | {e.asker for e in edges}
    helpers = {e.helper for e in edges}
    active = askers | helpers
    n = len(active)

    per_answerer = Counter(e.helper for e in edges if e.kind == "answer")
    counts = sorted(per_answerer.values(), reverse=True)
    total = sum(counts)
    top_share: float | None = None
    half: int | None = None
    if total:
        top_share = sum(counts[: max(1, math.ceil(TOP_FRACTION * len(counts)))]) / total
        running = 0
        for k, c in enumerate(counts, 1):
            running += c
            if 2 * running >= total:
                half = k
                break

    newcomers = answered_newcomers = 0
    for member in {q.author for q in questions}:
        seen = ctx.seen.get(member)
        first = ctx.first_question.get(member)
        if seen is None or first is None or not (start <= seen < end) or not (start <= first.asked_ts < end):
            continue
        if room is not None and first.room != room:
            continue
        newcomers += 1
        answered_newcomers += first.first_answer_ts is not None

    return Health(
        start=start, end=end, room=room,
        questions=len(questions), answered=len(delays), answer_rate=_share(len(delays), len(questions)),
        median_first_answer=statistics.median(delays) if delays else None,
        p90_first_answer=percentile(delays, 0.9),
        resolved=resolved, resolved_share=_share(resolved, len(questions)),
        pairs=len(pairs), reciprocal_pairs=reciprocal, reciprocity=_share(reciprocal, len(pairs)),
        density=len(pairs) / (n * (n - 1)) if n >= 2 else None,
        both_share=_share(len(askers & helpers), n),
        answers=total, answerers=len(counts), top_share=top_share, half_helpers=half,
        newcomers=newcomers, newcomers_answered=answered_newcomers,
        newcomers_answered_share=_share(answered_newcomers, newcomers),
        members=n,
    )


def measure(questions: Sequence[Question], edges: Sequence[HelpEdge], start: datetime, end: datetime, *,
            room: str | None = None, seen: Mapping[str, datetime] | None = None) -> Health:
    """The metrics of one community over `[start, end)`, in `room` or community-wide.

    `questions` and `edges` are the community's history (at least from `start`); `seen` overrides the first-seen
    times found in them (with `first_seen` over a longer history, or join times); only newcomers use them.
    """
    _check_one_community(questions, edges)
    ctx = _Context(questions, edges, seen)
    qs = [q for q in questions if start <= q.asked_ts < end and (room is None or q.room == room)]
    es = [e for e in edges if start <= e.ts < end and (room is None or e.room == room)]
    return _window(qs, es, start, end, room, ctx)


def weekly(questions: Sequence[Question], edges: Sequence[HelpEdge], *, room: str | None = None,
           seen: Mapping[str, datetime] | None = None) -> list[Health]:
    """The metrics of every ISO week from the first to the last activity, empty weeks included, oldest first."""
    _check_one_community(questions, edges)
    ctx = _Context(questions, edges, seen)
    q_by_week: dict[datetime, list[Question]] = defaultdict(list)
    e_by_week: dict[datetime, list[HelpEdge]] = defaultdict(list)
    for q in questions:
        if room is None or q.room == room:
            q_by_week[week_start(q.asked_ts)].append(q)
    for e in edges:
        if room is None or e.room == room:
            e_by_week[week_start(e.ts)].append(e)
    weeks = q_by_week.keys() | e_by_week.keys()
    if not weeks:
        return []
    out: list[Health] = []
    week, last = min(weeks), max(weeks)
    while week <= last:
        out.append(_window(q_by_week.get(week, []), e_by_week.get(week, []), week, week + WEEK, room, ctx))
        week += WEEK
    return out


def by_room(questions: Sequence[Question], edges: Sequence[HelpEdge], start: datetime, end: datetime, *,
            seen: Mapping[str, datetime] | None = None) -> dict[str, Health]:
    """The metrics of every room with a question or an edge in `[start, end)`, by room id."""
    _check_one_community(questions, edges)
    ctx = _Context(questions, edges, seen)
    qs: dict[str, list[Question]] = defaultdict(list)
    es: dict[str, list[HelpEdge]] = defaultdict(list)
    for q in questions:
        if start <= q.asked_ts < end:
            qs[q.room].append(q)
    for e in edges:
        if start <= e.ts < end:
            es[e.room].append(e)
    return {r: _window(qs.get(r, []), es.get(r, []), start, end, r, ctx) for r in sorted(qs.keys() | es.keys())}


def helpers_ranked(edges: Iterable[HelpEdge], start: datetime, end: datetime) -> list[tuple[str, int]]:
    """Members who helped in `[start, end)` with the number of distinct people they helped, most first.

    The digest's thank-you candidates; the caller keeps only members who allowed being thanked by name.
    """
    helped: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        if start <= e.ts < end and e.helper != e.asker:
            helped[e.helper].add(e.asker)
    return sorted(((m, len(a)) for m, a in helped.items()), key=lambda x: (-x[1], x[0]))
