"""Health metrics on small histories computed by hand (see each test), including the degenerate communities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot import health
from bot.model import HelpEdge, QState, Question

C = "guild"
#: A Monday, 00:00 UTC: the start of ISO week 2026-W02.
T0 = datetime(2026, 1, 5, tzinfo=UTC)
WEEK_END = T0 + timedelta(days=7)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def q(id: str, author: str, minutes: float, *, answered_after: float | None = None, state: QState | None = None,
      room: str = "help") -> Question:
    first = at(minutes + answered_after) if answered_after is not None else None
    if state is None:
        state = QState.ANSWERED if first is not None else QState.OPEN
    return Question(C, id, room, author, at(minutes), state=state, first_answer_ts=first)


def e(helper: str, asker: str, question: str, minutes: float, kind: str = "answer", room: str = "help") -> HelpEdge:
    return HelpEdge(C, room, helper, asker, question, kind, at(minutes))


def week(questions: list[Question], edges: list[HelpEdge], **kw: object) -> health.Health:
    return health.measure(questions, edges, T0, WEEK_END, **kw)  # type: ignore[arg-type]


# A week of four members, a..d (all first seen this week):
#   q1 a asks at 0 min, b answers after 10 min, resolved; q2 b asks at 60, a answers after 30
#   q3 c asks at 120, b answers after 2 h;                 q4 d asks at 180, nobody answers
#   q5 a asks at 240 and withdraws it (ignored);          q6 c asks at 300, b answers after 90 min, resolved
#   edges: answers b->a, a->b, b->c (q3), b->c (q6); credits b->a (q1), b->c (q6)
QUESTIONS = [
    q("q1", "a", 0, answered_after=10, state=QState.RESOLVED),
    q("q2", "b", 60, answered_after=30),
    q("q3", "c", 120, answered_after=120),
    q("q4", "d", 180),
    q("q5", "a", 240, state=QState.WITHDRAWN),
    q("q6", "c", 300, answered_after=90, state=QState.RESOLVED),
]
EDGES = [
    e("b", "a", "q1", 10), e("a", "b", "q2", 90), e("b", "c", "q3", 240), e("b", "c", "q6", 390),
    e("b", "a", "q1", 20, kind="credit"), e("b", "c", "q6", 400, kind="credit"),
]


def test_every_metric_of_a_small_week_matches_the_hand_computation() -> None:
    h = week(QUESTIONS, EDGES)
    assert (h.questions, h.answered, h.answer_rate) == (5, 4, 0.8)  # q5 withdrawn: not a question
    # Delays 600, 1800, 5400, 7200 s: median = (1800 + 5400) / 2; p90 = rank ceil(0.9 * 4) = 4th.
    assert (h.median_first_answer, h.p90_first_answer) == (3600.0, 7200.0)
    assert (h.resolved, h.resolved_share) == (2, 0.4)
    # Pairs b->a, a->b, b->c; the first two answer each other.
    assert (h.pairs, h.reciprocal_pairs) == (3, 2)
    assert h.reciprocity == pytest.approx(2 / 3)
    # Active: a, b, c, d; 3 pairs of 4 * 3 possible.
    assert (h.members, h.density) == (4, 0.25)
    assert h.both_share == 0.5  # a and b asked and helped
    # Answers per answerer: b 3, a 1. Top 10% of 2 answerers = 1 (rounded up): 3 of 4; b alone gives half.
    assert (h.answers, h.answerers, h.top_share, h.half_helpers) == (4, 2, 0.75, 1)
    # Everyone is new this week; d's first question got no answer.
    assert (h.newcomers, h.newcomers_answered, h.newcomers_answered_share) == (4, 3, 0.75)


def test_an_empty_community_has_no_defined_ratio() -> None:
    h = week([], [])
    assert (h.questions, h.answered, h.members, h.pairs, h.answers, h.newcomers) == (0, 0, 0, 0, 0, 0)
    assert h.answer_rate is None and h.median_first_answer is None and h.p90_first_answer is None
    assert h.resolved_share is None and h.reciprocity is None and h.density is None and h.both_share is None
    assert h.top_share is None and h.half_helpers is None and h.newcomers_answered_share is None
    assert health.weekly([], []) == []
    assert health.by_room([], [], T0, WEEK_END) == {}


def test_a_one_member_community_has_no_density_and_no_reciprocity() -> None:
    h = week([q("q1", "a", 0), q("q2", "a", 50, state=QState.RESOLVED)], [])
    assert (h.questions, h.answer_rate, h.resolved_share) == (2, 0.0, 0.5)
    assert h.members == 1
    assert h.density is None  # no pair of members exists
    assert h.reciprocity is None and h.top_share is None and h.half_helpers is None
    assert h.both_share == 0.0
    assert (h.newcomers, h.newcomers_answered, h.newcomers_answered_share) == (1, 0, 0.0)


def test_an_all_unanswered_community_has_zero_rates_and_undefined_times() -> None:
    h = week([q("q1", "a", 0), q("q2", "b", 5), q("q3", "c", 10, state=QState.STALE)], [])
    assert (h.answer_rate, h.resolved_share, h.density, h.both_share) == (0.0, 0.0, 0.0, 0.0)
    assert h.median_first_answer is None and h.p90_first_answer is None
    assert h.reciprocity is None and h.top_share is None
    assert (h.newcomers, h.newcomers_answered) == (3, 0)


def test_a_member_helping_themselves_is_not_a_help_edge() -> None:
    h = week([q("q1", "a", 0)], [e("a", "a", "q1", 1)])
    assert (h.pairs, h.answers, h.answerers, h.members) == (0, 0, 0, 1)


def test_edges_and_questions_outside_the_window_are_ignored() -> None:
    before = q("q0", "a", -60 * 24)  # the Sunday before
    after = q("q9", "a", 7 * 24 * 60)  # the next Monday 00:00: the window is half-open
    h = week([before, *QUESTIONS, after], [*EDGES, e("c", "a", "q0", -30), e("c", "a", "q9", 7 * 24 * 60 + 1)])
    assert (h.questions, h.pairs, h.answers) == (5, 3, 4)


@pytest.mark.parametrize(
    ("counts", "top_share", "half"),
    [
        ([3], 1.0, 1),
        ([3, 2, 2, 2, 1], 3 / 10, 2),  # 5 answerers: the top 1 gives 3 of 10; 3 + 2 reaches half
        ([10] + [1] * 9, 10 / 19, 1),  # 10 answerers: the top 1
        ([1] * 11, 2 / 11, 6),  # 11 answerers: ceil(1.1) = the top 2; 6 of 11 make half
        ([2, 2], 0.5, 1),  # exactly half counts
    ],
    ids=["one-answerer", "five-answerers", "ten-with-a-hub", "eleven-equal", "half-exactly"],
)
def test_answerer_concentration_counts_the_top_tenth_and_the_half(counts: list[int], top_share: float,
                                                                   half: int) -> None:
    edges = [e(f"h{i}", "asker", f"q{i}-{k}", 1) for i, n in enumerate(counts) for k in range(n)]
    h = week([], edges)
    assert h.top_share == pytest.approx(top_share)
    assert h.half_helpers == half


def test_credits_count_as_help_but_not_as_answers() -> None:
    h = week([q("q1", "a", 0, state=QState.RESOLVED)], [e("b", "a", "q1", 5, kind="credit")])
    assert (h.pairs, h.answers, h.top_share, h.both_share) == (1, 0, None, 0.0)
    assert h.answer_rate == 0.0 and h.resolved_share == 1.0


def test_a_member_seen_before_the_window_is_not_a_newcomer() -> None:
    history = [q("q0", "a", -3 * 24 * 60, answered_after=5), *QUESTIONS]
    h = week(history, EDGES)
    assert (h.newcomers, h.newcomers_answered) == (3, 2)  # b, c (answered) and d (not)


def test_a_member_who_helped_before_their_first_question_is_not_a_newcomer() -> None:
    h = week([q("q1", "a", 0, answered_after=5)], [e("a", "z", "q-old", -10)])
    assert h.newcomers == 0


def test_join_times_decide_who_is_new_when_given() -> None:
    seen = {"a": T0 - timedelta(days=30), "d": T0 + timedelta(hours=1)}
    h = week(QUESTIONS, EDGES, seen=seen)
    assert (h.newcomers, h.newcomers_answered) == (3, 2)  # a joined long ago; d joined this week


def test_a_newcomer_whose_first_question_was_withdrawn_counts_from_their_next_one() -> None:
    h = week([q("q1", "n", 0, state=QState.WITHDRAWN), q("q2", "n", 30, answered_after=5)], [])
    assert (h.newcomers, h.newcomers_answered) == (1, 1)


def test_room_metrics_count_only_the_rooms_questions_and_edges() -> None:
    qs = [*QUESTIONS, q("r1", "e", 30, answered_after=1, room="dev"), q("r2", "a", 40, room="dev")]
    es = [*EDGES, e("f", "e", "r1", 31, room="dev")]
    dev = week(qs, es, room="dev")
    assert (dev.room, dev.questions, dev.answered, dev.pairs, dev.members) == ("dev", 2, 1, 1, 3)
    assert dev.newcomers == 1  # e is new and asked first here; a asked first in "help"
    assert week(qs, es, room="help").questions == 5
    rooms = health.by_room(qs, es, T0, WEEK_END)
    assert sorted(rooms) == ["dev", "help"]
    assert rooms["dev"] == dev


def test_weekly_covers_every_week_from_first_to_last_activity_with_empty_weeks() -> None:
    later = q("q9", "a", 14 * 24 * 60 + 5, answered_after=60)
    weeks = health.weekly([*QUESTIONS, later], [*EDGES, e("b", "a", "q9", 14 * 24 * 60 + 65)])
    assert [health.week_label(w.start) for w in weeks] == ["2026-W02", "2026-W03", "2026-W04"]
    assert [w.questions for w in weeks] == [5, 0, 1]
    assert weeks[0] == week(QUESTIONS, EDGES)
    assert weeks[1].answer_rate is None and weeks[1].members == 0
    assert weeks[2].newcomers == 0  # a was first seen in week 1


def test_metrics_are_per_community() -> None:
    other = Question("elsewhere", "x", "help", "a", T0)
    with pytest.raises(ValueError, match="per community"):
        week([*QUESTIONS, other], EDGES)


def test_week_start_is_monday_midnight_utc_of_the_iso_week() -> None:
    sunday_night = datetime(2026, 1, 11, 23, 59, tzinfo=UTC)
    assert health.week_start(sunday_night) == T0
    assert health.week_start(T0) == T0
    # Monday 01:00 in Paris is still Sunday in UTC.
    paris = datetime(2026, 1, 12, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert health.week_start(paris) == T0
    assert health.week_label(datetime(2026, 12, 28, tzinfo=UTC)) == "2026-W53"


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.9, None), ([5.0], 0.9, 5.0), ([float(i) for i in range(1, 11)], 0.9, 9.0),
     ([float(i) for i in range(1, 12)], 0.9, 10.0), ([3.0, 1.0, 2.0], 0.5, 2.0)],
    ids=["empty", "one", "ten", "eleven", "unsorted"],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float | None) -> None:
    assert health.percentile(values, fraction) == expected


def test_helpers_ranked_counts_distinct_people_helped() -> None:
    assert health.helpers_ranked(EDGES, T0, WEEK_END) == [("b", 2), ("a", 1)]
    assert health.helpers_ranked(EDGES, WEEK_END, WEEK_END + timedelta(days=7)) == []


def test_metric_definitions_name_every_reported_metric() -> None:
    text = health.METRIC_DEFINITIONS
    for name in ("answer rate", "time to first answer", "resolved", "reciprocity", "density", "asked and helped",
                 "concentration", "newcomers", "active members"):
        assert name in text
