"""The `!lien health` text and the weekly digest: trend arrows, French, links, consent to be named, no mentions."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot import digest, health
from bot.digest import DOWN, SAME, UP, arrow, digest_text, health_text
from bot.model import HelpEdge, MemberPrefs, QState, Question

C = "guild"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
END = T0 + timedelta(days=7)
MENTION = re.compile(r"<@")


def metrics(**overrides: object) -> health.Health:
    """A week's metrics: 10 questions, 8 answered, ..., with `overrides`."""
    base = health.Health(
        start=T0, end=END, room=None, questions=10, answered=8, answer_rate=0.8, median_first_answer=840.0,
        p90_first_answer=6 * 3600.0, resolved=4, resolved_share=0.4, pairs=10, reciprocal_pairs=2, reciprocity=0.2,
        density=0.05, both_share=0.25, answers=9, answerers=4, top_share=0.45, half_helpers=2, newcomers=4,
        newcomers_answered=3, newcomers_answered_share=0.75, members=12,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def question(id: str, room: str = "help", hours_ago: float = 30, state: QState = QState.OPEN) -> Question:
    return Question(C, id, room, "asker", END - timedelta(hours=hours_ago), state=state)


def prefs(member: str, named: bool, optout: bool = False) -> MemberPrefs:
    return MemberPrefs(C, member, named_thanks=named, optout=optout)


@pytest.mark.parametrize(
    ("current", "previous", "kind", "expected"),
    [
        (0.8, 0.5, "share", UP), (0.5, 0.8, "share", DOWN), (0.505, 0.5, "share", SAME), (0.52, 0.5, "share", UP),
        (3600.0, 1800.0, "duration", UP), (3600.0, 3500.0, "duration", SAME), (1200.0, 3600.0, "duration", DOWN),
        (5, 4, "count", UP), (4, 4, "count", SAME), (3, 4, "count", DOWN),
        (None, 0.5, "share", ""), (0.5, None, "share", ""),
    ],
    ids=["share-up", "share-down", "share-within-a-point", "share-two-points", "duration-up", "duration-within-5%",
         "duration-down", "count-up", "count-same", "count-down", "current-undefined", "previous-undefined"],
)
def test_arrow_compares_with_the_previous_window(current: float | None, previous: float | None, kind: str,
                                                 expected: str) -> None:
    assert arrow(current, previous, kind) == expected


def test_health_text_shows_each_figure_with_its_trend() -> None:
    before = metrics(questions=8, answer_rate=0.5, median_first_answer=1800.0, p90_first_answer=6 * 3600.0,
                     reciprocity=0.1, members=12)
    text = health_text(metrics(), before, "en")
    lines = text.splitlines()
    assert lines[0].startswith("Community health, last 7 days")
    assert "Questions: 10 ↑ · answered 80% ↑ · resolved 40% →" in text
    assert "First answer: median 14 min ↓ · p90 6.0 h →" in text
    assert "Reciprocity: 20% ↑" in text and "25% → of members both asked and helped" in text
    assert "top 10% of answerers gave 45% →" in text and "half came from 2 people" in text
    assert "Newcomers whose first question got an answer: 3 of 4 (75%)" in text
    assert lines[-1] == "• Active members: 12 →"  # member count last


def test_health_text_without_a_previous_window_has_no_arrows() -> None:
    text = health_text(metrics(), None, "en")
    assert not set(text) & {UP, DOWN, SAME}


def test_health_text_of_an_empty_community_shows_dashes_without_arrows() -> None:
    empty = health.measure([], [], T0, END)
    text = health_text(empty, metrics(), "en")
    assert "answered — ·" in text and "median — · p90 —" in text and "Reciprocity: — of" in text
    assert "half came from — people" in text
    assert "Active members: 0 ↓" in text
    assert "Newcomers whose first question got an answer: 0 of 0\n" in text


def test_health_text_names_the_room_safely() -> None:
    text = health_text(metrics(room="<@123> @everyone"), None, "en")
    assert not MENTION.search(text) and "@everyone" not in text
    assert text.startswith("Health of room")


def test_health_text_in_french() -> None:
    text = health_text(metrics(median_first_answer=2.5 * 3600), metrics(), "fr")
    assert text.startswith("Santé de la communauté, 7 derniers jours")
    assert "Questions\u00a0: 10 → · avec réponse 80\u00a0% →" in text
    assert "médiane 2,5\u00a0h ↑" in text
    assert "Réciprocité\u00a0: 20\u00a0%" in text
    assert "la moitié vient de 2 personnes" in text
    assert text.splitlines()[-1] == "• Membres actifs\u00a0: 12 →"


@pytest.mark.parametrize(
    ("seconds", "lang", "expected"),
    [(None, "en", "—"), (30, "en", "<1 min"), (840, "en", "14 min"), (9000, "en", "2.5 h"),
     (3 * 86400, "en", "3.0 d"), (3 * 86400, "fr", "3,0\u00a0j"), (9000, "fr", "2,5\u00a0h")],
    ids=["undefined", "seconds", "minutes", "hours", "days", "jours", "heures"],
)
def test_durations_read_in_the_largest_sensible_unit(seconds: float | None, lang: str, expected: str) -> None:
    assert digest.duration(seconds, lang) == expected


def test_digest_lists_open_and_stale_questions_as_link_tokens() -> None:
    text = digest_text(metrics(), [question("q2", hours_ago=5), question("q1", room="dev", hours_ago=50)],
                       [question("q0", state=QState.STALE, hours_ago=90)], [], "en")
    assert text.startswith("Weekly digest, 2026-W02 (Jan 5 to Jan 11)")
    assert "10 questions, 80% answered, 40% resolved; first answer in 14 min (median), 6.0 h" in text
    assert "3 of 4 newcomers got an answer to their first question. 12 active members." in text
    # Oldest first within each list.
    assert "Still waiting for an answer (2):\n- <link:dev/q1>\n- <link:help/q2>" in text
    assert "Waiting for a long time (1), a partial answer helps too:\n- <link:help/q0>" in text


def test_digest_caps_long_lists_and_points_to_the_command() -> None:
    many = [question(f"q{i:02d}", hours_ago=100 - i) for i in range(14)]
    text = digest_text(metrics(), many, [], [], "en", prefix="!lien")
    assert text.count("<link:") == digest.MAX_OPEN
    assert "…and 4 more: `!lien unanswered` lists them." in text


def test_digest_thanks_by_name_only_members_who_allowed_it() -> None:
    thanked = [(prefs("u1", named=True), "Alice"), (prefs("u2", named=False), "Bob"),
               (prefs("u3", named=True, optout=True), "Carol"), (prefs("u4", named=True), "Dan")]
    text = digest_text(metrics(), [], [], thanked, "en")
    assert "Thank you Alice and Dan, and everyone who answered a question this week." in text
    assert "Bob" not in text and "Carol" not in text


def test_digest_without_named_helpers_thanks_them_as_a_group() -> None:
    text = digest_text(metrics(answerers=4), [], [], [(prefs("u2", named=False), "Bob")], "en")
    assert "Thank you to the 4 people who answered a question this week." in text
    assert "Bob" not in text


def test_digest_never_mentions_anyone_even_through_names() -> None:
    hostile = [(prefs("u1", named=True), "<@123>"), (prefs("u2", named=True), "@everyone"),
               (prefs("u3", named=True), "@alice:example.org"), (prefs("u4", named=True), "<link:r/1>")]
    for lang in ("en", "fr"):
        text = digest_text(metrics(), [question("q1")], [question("q0", state=QState.STALE)], hostile, lang)
        assert not MENTION.search(text)
        assert "@everyone" not in text and "@alice" not in text
        assert text.count("<link:") == 2  # only the two questions
        assert "alice:example.org" in text  # the name itself is kept, without the at sign


def test_a_quiet_week_says_so_and_congratulates() -> None:
    text = digest_text(health.measure([], [], T0, END), [], [], [], "en")
    assert "A quiet week: no questions were asked." in text
    assert "No question is waiting for an answer." in text
    assert "Thank" not in text


def test_digest_in_french() -> None:
    text = digest_text(metrics(), [question("q1")], [], [(prefs("u1", named=True), "Alice")], "fr")
    assert text.startswith("Bilan de la semaine 2026-W02 (du 05/01 au 11/01)")
    assert "10 questions, 80\u00a0% avec réponse, 40\u00a0% résolues" in text
    assert "3 nouveaux venus sur 4 ont eu une réponse à leur première question" in text
    assert "Toujours en attente d'une réponse (1)\u00a0:\n- <link:help/q1>" in text
    assert "Merci à Alice, et à toutes celles et ceux qui ont répondu cette semaine." in text


def test_digest_of_real_metrics_names_the_weeks_helpers() -> None:
    edges = [HelpEdge(C, "help", "h1", "a", "q1", "answer", T0 + timedelta(hours=1))]
    qs = [Question(C, "q1", "help", "a", T0, state=QState.ANSWERED, first_answer_ts=T0 + timedelta(hours=1))]
    week = health.measure(qs, edges, T0, END)
    ranked = health.helpers_ranked(edges, T0, END)
    text = digest_text(week, [], [], [(prefs(m, named=True), m.upper()) for m, _ in ranked], "en")
    assert "1 question, 100% answered" in text and "Thank you H1," in text


def test_the_digest_covers_the_last_complete_iso_week() -> None:
    assert digest.digest_week(datetime(2026, 1, 14, 15, 0, tzinfo=UTC)) == (T0, END)
    assert digest.digest_week(END) == (T0, END)  # Monday 00:00: the week just ended


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        (datetime(2026, 1, 7, 12, 0, tzinfo=UTC), "UTC", datetime(2026, 1, 12, 9, 0, tzinfo=UTC)),
        (datetime(2026, 1, 12, 8, 59, tzinfo=UTC), "UTC", datetime(2026, 1, 12, 9, 0, tzinfo=UTC)),
        (datetime(2026, 1, 12, 9, 0, tzinfo=UTC), "UTC", datetime(2026, 1, 19, 9, 0, tzinfo=UTC)),
        (datetime(2026, 1, 7, 12, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 1, 12, 8, 0, tzinfo=UTC)),
        # Sunday 23:30 UTC is already Monday 08:30 in Tokyo: due the same morning, 00:00 UTC.
        (datetime(2026, 1, 11, 23, 30, tzinfo=UTC), "Asia/Tokyo", datetime(2026, 1, 12, 0, 0, tzinfo=UTC)),
        (datetime(2026, 3, 25, 12, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),
    ],
    ids=["midweek", "just-before", "at-the-time", "paris-winter", "tokyo-monday-morning", "paris-summer-time"],
)
def test_the_next_digest_is_due_on_monday_morning_local_time(now: datetime, zone: str, expected: datetime) -> None:
    assert digest.next_digest_at(now, zone) == expected
