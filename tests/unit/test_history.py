"""The in-memory history replay of `lien report`: questions, answer links and help edges as the engine records them.

`tests/integration/test_storage_export.py` compares the replay with the Simulation on the same events; here each
behaviour stands alone, on plain events and no database.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.events import Command, Delete, Event, Message, Reaction
from bot.help_edges import edges_of
from bot.history import HistoryReplay, replay_history, stale_after
from bot.model import HelpEdge, QState, Question
from bot.tracker import Linked, Opened, QuestionTracker, Resolved, Withdrawn

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "guild"
ASK = "How do I reset my password on the staging server?"
ANSWER = "Use the reset link on the login page."
THANKS = "thanks, that worked!"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def say(id: str, minutes: float, author: str, text: str, room: str = "help", **kw: Any) -> Message:
    return Message(C, room, id, at(minutes), author, text, platform="discord", **kw)


def chatter(start: float, until: float, every: float = 60, room: str = "help") -> list[Message]:
    """Small talk by one member, every `every` minutes from `start` to before `until` (the clock moves on)."""
    out, t = [], start
    while t < until:
        out.append(say(f"c{room}{t:g}", t, "zed", "good morning everyone", room=room))
        t += every
    return out


def edge(helper: str, asker: str, question: str, kind: str, minutes: float) -> HelpEdge:
    return HelpEdge(C, "help", helper, asker, question, kind, at(minutes))


def replay(events: list[Event], settings: Settings | None = None, **kw: Any) -> HistoryReplay:
    r = HistoryReplay(settings or Settings(), **kw)
    for e in events:
        r.feed(e)
    return r


def only(questions: list[Question], id: str) -> Question:
    [q] = [q for q in questions if q.id == id]
    return q


# -- the shared derivation ------------------------------------------------------------------------------------


def test_edges_of_gives_one_answer_edge_per_link_and_one_credit_edge_per_credited_member() -> None:
    tracker = QuestionTracker(Settings())
    [opened] = tracker.on_message(say("q", 0, "ann", ASK))
    [linked] = tracker.on_message(say("a", 3, "bob", ANSWER, reply_to="q"))
    [resolved] = tracker.on_message(say("t", 5, "ann", THANKS, reply_to="a"))
    assert isinstance(opened, Opened) and isinstance(linked, Linked) and isinstance(resolved, Resolved)
    assert edges_of(opened, at(9)) == []
    assert edges_of(linked, at(9)) == [edge("bob", "ann", "q", "answer", 3)]
    assert edges_of(resolved, at(9)) == [edge("bob", "ann", "q", "credit", 5)]
    withdrawn = tracker.withdraw(C, "help", "ann", "q", at(6))
    assert withdrawn == [] or all(isinstance(w, Withdrawn) and edges_of(w, at(9)) == [] for w in withdrawn)


def test_a_credit_without_a_resolution_time_is_dated_now() -> None:
    q = Question(C, "q", "help", "ann", at(0))
    assert edges_of(Resolved(q, "ann", ("bob", "cat")), at(9)) == [
        edge("bob", "ann", "q", "credit", 9), edge("cat", "ann", "q", "credit", 9)]


# -- questions and edges --------------------------------------------------------------------------------------


def test_a_history_becomes_its_questions_and_help_edges_in_storage_order() -> None:
    events: list[Event] = [
        say("q1", 0, "ann", ASK),
        say("a1", 3, "bob", ANSWER, reply_to="q1"),
        say("t1", 5, "ann", THANKS, reply_to="a1"),
        say("q2", 10, "cat", "Why does the deploy fail with a timeout on Mondays?"),
    ]
    questions, edges = replay_history(events, Settings())
    assert [(q.id, q.state, q.answered_by, q.first_answer_ts) for q in questions] == [
        ("q1", QState.RESOLVED, "a1", at(3)), ("q2", QState.OPEN, None, None)]
    assert only(questions, "q1").credited == ["bob"] and only(questions, "q1").resolved_ts == at(5)
    assert edges == [edge("bob", "ann", "q1", "answer", 3), edge("bob", "ann", "q1", "credit", 5)]


def test_a_helper_who_answers_twice_gets_one_answer_edge_the_first() -> None:
    events: list[Event] = [
        say("q", 0, "ann", ASK),
        say("a1", 3, "bob", ANSWER, reply_to="q"),
        say("a2", 6, "bob", "Or ask an admin to reset it for you.", reply_to="q"),
    ]
    questions, edges = replay_history(events, Settings())
    assert only(questions, "q").answers == ["a1", "a2"]
    assert edges == [edge("bob", "ann", "q", "answer", 3)]


def test_commands_resolve_and_withdraw_as_the_engine_admits_them() -> None:
    events: list[Event] = [
        say("q1", 0, "ann", ASK),
        say("q2", 1, "cat", "Why does the deploy fail with a timeout on Mondays?"),
        say("x1", 2, "ann", "!lien solved"),
        Command(C, "help", "x2", "cat", at(3), "not-a-question"),
    ]
    questions, _ = replay_history(events, Settings())
    assert [(q.id, q.state) for q in questions] == [("q1", QState.RESOLVED), ("q2", QState.WITHDRAWN)]
    # Five commands a minute at most: the sixth is refused, as `CommandRunner` refuses it.
    busy = [say("q1", 0, "ann", ASK), *[say(f"h{i}", 1 + i / 10, "ann", "!lien help") for i in range(5)],
            say("x", 1.6, "ann", "!lien solved")]
    assert only(replay_history(busy, Settings())[0], "q1").state is QState.OPEN
    # A command runs once per event id: a copy of `!lien not-a-question` does not withdraw the next question.
    again = [say("q1", 0, "ann", ASK), say("x1", 2, "ann", "!lien not-a-question"),
             say("q2", 3, "ann", "Why does the deploy fail with a timeout on Mondays?"),
             say("x1", 4, "ann", "!lien not-a-question")]
    assert [q.state for q in replay_history(again, Settings())[0]] == [QState.WITHDRAWN, QState.OPEN]


def test_a_copy_of_a_stored_message_does_not_open_its_question_again() -> None:
    """A message first seen in a room (or older than the room's latest) that was stored before is a copy brought
    back by a replay: the engine finds it in its database, the replay in its memory, and neither reopens it."""
    events: list[Event] = [say("q", 0, "ann", ASK), say("a", 3, "bob", ANSWER, reply_to="q"), *chatter(10, 6000)]
    copy = Message(C, "dev", "q", at(6000), "ann", ASK, platform="discord")
    questions, edges = replay_history([*events, copy], Settings())
    assert [(q.id, q.room, q.state) for q in questions] == [("q", "help", QState.ANSWERED)]
    assert len(edges) == 1


# -- states ---------------------------------------------------------------------------------------------------


def test_stale_after_is_the_longest_ladder_the_settings_allow() -> None:
    assert stale_after(Settings().room(C).nudges) == timedelta(days=3)
    slow = Settings.model_validate({"nudges": {"level2_ceiling_minutes": 5 * 24 * 60}})
    assert stale_after(slow.room(C).nudges) == timedelta(days=5)
    late = Settings.model_validate({"nudges": {"level3_minutes": 6 * 24 * 60}})
    assert stale_after(late.room(C).nudges) == timedelta(days=6)


def test_an_unanswered_question_turns_stale_once_its_ladder_has_surely_run() -> None:
    events: list[Event] = [say("q", 0, "ann", ASK), *chatter(10, 2 * 24 * 60)]
    assert only(replay(events).history()[0], "q").state is QState.OPEN  # two days: the ladder may still run
    assert only(replay(events).history(at(3 * 24 * 60))[0], "q").state is QState.STALE
    # A stale question still takes answers, as in the engine.
    late = [*events, *chatter(2 * 24 * 60, 4 * 24 * 60), say("a", 4 * 24 * 60, "bob", ANSWER, reply_to="q")]
    questions, edges = replay(late).history()
    assert only(questions, "q").state is QState.ANSWERED and edges == [edge("bob", "ann", "q", "answer", 5760)]


def test_without_nudges_an_unanswered_question_stays_open() -> None:
    quiet = Settings.model_validate({"nudges": {"enabled": False}})
    events: list[Event] = [say("q", 0, "ann", ASK), *chatter(10, 10 * 24 * 60, every=600)]
    r = replay(events, quiet)
    assert r.tracker.get(C, "q") is not None  # never closed, so never evicted: as the engine keeps it
    assert only(r.history()[0], "q").state is QState.OPEN


def test_open_questions_leave_the_tracker_once_stale_and_idle_so_memory_stays_bounded() -> None:
    days = 20
    events: list[Event] = []
    for d in range(days):
        events += [say(f"q{d}-{i}", d * 1440 + i * 30, f"u{i}", ASK) for i in range(20)]
    r = replay(events)
    held = r.tracker.held()["questions"]
    assert held <= 7 * 20  # the last ~6 days (3 until stale, 3 idle); every day adds 20
    assert len(r.history()[0]) == days * 20


# -- questions that left the tracker come back from memory ----------------------------------------------------


def test_a_late_thanks_to_an_evicted_answer_resolves_and_credits_its_author() -> None:
    events: list[Event] = [say("q", 0, "ann", ASK), say("a", 3, "bob", ANSWER, reply_to="q"), *chatter(10, 5 * 1440)]
    r = replay(events)
    assert r.tracker.get(C, "q") is None  # answered, idle for three days: evicted
    r.feed(say("t", 5 * 1440, "ann", THANKS, reply_to="a"))
    questions, edges = r.history()
    assert only(questions, "q").state is QState.RESOLVED
    assert edges == [edge("bob", "ann", "q", "answer", 3), edge("bob", "ann", "q", "credit", 5 * 1440)]


def test_a_reply_to_an_evicted_answered_question_is_linked_with_its_earlier_answers() -> None:
    events: list[Event] = [say("q", 0, "ann", ASK), say("a", 3, "bob", ANSWER, reply_to="q"), *chatter(10, 5 * 1440),
                           say("b", 5 * 1440, "cat", "Also check the spam folder for the mail.", reply_to="q")]
    questions, edges = replay(events).history()
    # The question came back with its first answer: the second one is sorted after it (no lookup of a lost answer).
    assert only(questions, "q").answers == ["a", "b"] and only(questions, "q").answered_by == "a"
    assert edges == [edge("bob", "ann", "q", "answer", 3), edge("cat", "ann", "q", "answer", 5 * 1440)]


def test_a_delete_or_a_solved_command_reaches_an_evicted_question() -> None:
    base: list[Event] = [say("q", 0, "ann", ASK), say("a", 3, "bob", ANSWER, reply_to="q"), *chatter(10, 5 * 1440)]
    deleted = replay([*base, Delete(C, "help", "q", at(5 * 1440))]).history()[0]
    assert only(deleted, "q").state is QState.WITHDRAWN
    solved = replay([*base, say("x", 5 * 1440, "ann", "!lien solved q")]).history()[0]
    assert only(solved, "q").state is QState.RESOLVED and only(solved, "q").resolved_ts == at(5 * 1440)


def test_an_asker_reply_to_an_old_plain_message_uses_the_kept_messages() -> None:
    """The asker replies to a message the tracker's window no longer holds: kept, it is linked as the answer (as
    the engine finds it in its database); beyond the kept messages it is not: the replay's one loss."""
    events: list[Event] = [
        say("q", 0, "ann", ASK),
        say("tip", 2, "bob", "cat: the staging server has its own admin page", mentions=("cat",)),
        *chatter(3, 300, every=2),
        say("t", 300, "ann", THANKS, reply_to="tip"),
    ]
    before = replay(events[:-1])
    assert before.tracker.get(C, "q").answers == [] and "tip" in before.tracker.missing_refs(events[-1])
    questions, edges = replay(events).history()
    assert only(questions, "q").state is QState.RESOLVED and only(questions, "q").answers == ["tip"]
    assert edges == [edge("bob", "ann", "q", "answer", 2), edge("bob", "ann", "q", "credit", 300)]
    questions, edges = replay(events, recent_messages=50).history()
    assert only(questions, "q").answers == [] and edges == []


def test_a_reaction_on_an_evicted_answer_resolves_it() -> None:
    events: list[Event] = [say("q", 0, "ann", ASK), say("a", 3, "bob", ANSWER, reply_to="q"), *chatter(10, 5 * 1440),
                           Reaction(C, "help", "a", "ann", "✅", at(5 * 1440))]
    questions, edges = replay(events).history()
    assert only(questions, "q").state is QState.RESOLVED
    assert edges[-1] == edge("bob", "ann", "q", "credit", 5 * 1440)


# -- forget-me ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("later", [10, 5 * 1440], ids=["held", "evicted"])
def test_forget_me_takes_the_member_out_of_the_history(later: float) -> None:
    events: list[Event] = [
        say("q1", 0, "ann", ASK),
        say("a1", 3, "bob", ANSWER, reply_to="q1"),
        say("a2", 4, "cat", "Or ask an admin to reset it.", reply_to="q1"),
        say("t1", 5, "ann", THANKS, reply_to="a1"),
        say("q2", 6, "bob", "Why does the deploy fail with a timeout on Mondays?", room="dev"),
        say("a3", 7, "ann", "The Monday backup holds the lock.", room="dev", reply_to="q2"),
        *chatter(8, later),
        say("x", later, "bob", "!lien forget-me"),
    ]
    questions, edges = replay(events).history()
    assert [q.id for q in questions] == ["q1"]
    q1 = only(questions, "q1")
    assert q1.answers == ["a2"] and q1.credited == [] and (q1.answered_by, q1.first_answer_ts) == ("a2", at(4))
    assert edges == [edge("cat", "ann", "q1", "answer", 4)]


# -- the process --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_replay_history_leaves_the_cycle_collector_as_it_found_it(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        replay_history([say("q", 0, "ann", ASK)], Settings())
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
