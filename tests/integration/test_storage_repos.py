"""Every repository method of `storage.repositories`, on migrated SQLite files and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.model import (
    Answer,
    HelpEdge,
    MemberPrefs,
    MessageMeta,
    Nudge,
    NudgeState,
    QState,
    Question,
    SentPing,
    SentReminder,
)
from storage.repositories import SqlStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
C = "guild-1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(id: str, minutes: float, author: str = "@ann:x", room: str = "#help", **kw: str) -> MessageMeta:
    return MessageMeta(C, room, id, author, at(minutes), **kw)


def question(id: str, minutes: float, room: str = "#help", author: str = "@ann:x", **kw: object) -> Question:
    return Question(C, id, room, author, at(minutes), **kw)  # type: ignore[arg-type]


# -- transactions ------------------------------------------------------------------------------------------------


async def test_buffered_writes_are_visible_to_reads_in_the_same_transaction(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 0))
        tx.questions.save(question("m1", 0))
        assert await tx.messages.get(C, "m1") == msg("m1", 0)
        assert (await tx.questions.get(C, "m1")) == question("m1", 0)


async def test_a_read_flushes_what_it_needs_and_the_rest_still_commits(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 0))
        tx.questions.save(question("q1", 0))
        tx.nudges.save(Nudge(C, "q1", 1, at(30)))  # its question is buffered too: flushed first
        tx.members.save(MemberPrefs(C, "@h:x", helper=True))
        assert await tx.kv.get("nothing") is None  # touches none of the buffers above
        assert [n.question for n in await tx.nudges.pending()] == ["q1"]
        tx.answers.add(Answer(C, "q1", "m1", "@h:x", at(1), "reply"))
    async with store.transaction() as tx:
        assert await tx.messages.get(C, "m1") is not None
        assert await tx.questions.get(C, "q1") is not None
        assert await tx.members.get(C, "@h:x") is not None
        assert [a.question for a in await tx.answers.for_message(C, "m1")] == ["q1"]


async def test_committed_rows_are_visible_to_the_next_transaction(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 0, reply_to="m0", thread="t1"))
    async with store.transaction() as tx:
        assert await tx.messages.get(C, "m1") == msg("m1", 0, reply_to="m0", thread="t1")


async def test_exception_rolls_back_flushed_and_buffered_writes(store: SqlStore) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as tx:
            tx.messages.add(msg("flushed", 0))
            assert await tx.messages.get(C, "flushed") is not None  # forces a flush into the open transaction
            tx.messages.add(msg("buffered", 1))
            raise RuntimeError("boom")
    async with store.transaction() as tx:
        assert await tx.messages.get(C, "flushed") is None
        assert await tx.messages.get(C, "buffered") is None


async def test_nudge_of_a_question_never_saved_fails_the_commit(store: SqlStore) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        async with store.transaction() as tx:
            tx.nudges.save(Nudge(C, "ghost", 1, at(5)))
    async with store.transaction() as tx:
        assert await tx.nudges.pending() == []


async def test_transaction_inside_a_transaction_of_the_same_task_raises(store: SqlStore) -> None:
    async with store.transaction():
        with pytest.raises(RuntimeError, match="inside another transaction"):
            async with store.transaction():
                pass
    async with store.transaction() as tx:  # the store is usable afterwards
        assert await tx.messages.get(C, "x") is None


async def test_concurrent_transactions_run_one_after_another(store: SqlStore) -> None:
    async def bump(i: int) -> None:
        async with store.transaction() as tx:
            current = await tx.messages.recent(C, "#busy", 1000)
            await asyncio.sleep(0)
            tx.messages.add(msg(f"c{len(current)}-{i}", i, room="#busy"))

    await asyncio.gather(*(bump(i) for i in range(12)))
    # Each transaction saw every earlier commit: the counts it read are 0..11, each once.
    async with store.transaction() as tx:
        ids = [m.id for m in await tx.messages.recent(C, "#busy", 100)]
    assert sorted(int(i.split("-")[0][1:]) for i in ids) == list(range(12))


# -- timestamps --------------------------------------------------------------------------------------------------


async def test_timestamps_come_back_as_the_same_instant_in_utc(store: SqlStore) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    async with store.transaction() as tx:
        tx.messages.add(MessageMeta(C, "#r", "m1", "@a:x", local))
    async with store.transaction() as tx:
        got = await tx.messages.get(C, "m1")
    assert got is not None
    assert got.ts == local
    assert got.ts.tzinfo is not None and got.ts.utcoffset() == timedelta(0)
    assert got.ts == datetime(2026, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)


async def test_naive_timestamp_fails_the_commit(store: SqlStore) -> None:
    # SQLite's bulk path raises ValueError itself; through SQLAlchemy's binding it arrives wrapped.
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive datetime"):
        async with store.transaction() as tx:
            tx.messages.add(msg("ok", 0))
            tx.messages.add(MessageMeta(C, "#r", "m1", "@a:x", datetime(2026, 1, 1)))  # noqa: DTZ001
    async with store.transaction() as tx:
        assert await tx.messages.get(C, "ok") is None


async def test_a_row_at_exactly_since_is_included(store: SqlStore) -> None:
    # Stored text and bound parameters must share one timestamp format for this equality to hold.
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 10))
        tx.messages.add(MessageMeta(C, "#help", "m2", "@bo:x", at(10) + timedelta(microseconds=1)))
    async with store.transaction() as tx:
        assert await tx.messages.active_authors(C, "#help", at(10)) == {
            "@ann:x": at(10),
            "@bo:x": at(10) + timedelta(microseconds=1),
        }
        assert await tx.messages.active_authors(C, "#help", at(10) + timedelta(microseconds=1)) == {
            "@bo:x": at(10) + timedelta(microseconds=1)
        }


async def test_ranges_compare_instants_across_offsets(store: SqlStore) -> None:
    east = timezone(timedelta(hours=9))
    async with store.transaction() as tx:
        tx.messages.add(msg("early", 0))
        tx.messages.add(msg("late", 10))
    async with store.transaction() as tx:
        # 12:05 UTC written as 21:05+09:00: only "late" is at or after it.
        since = (T0 + timedelta(minutes=5)).astimezone(east)
        assert await tx.messages.active_authors(C, "#help", since) == {"@ann:x": at(10)}


# -- messages ----------------------------------------------------------------------------------------------------


async def test_message_added_twice_keeps_the_first_version(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 0, author="@first:x"))
        tx.messages.add(msg("m1", 0, author="@second:x"))
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 0, author="@third:x"))
    async with store.transaction() as tx:
        got = await tx.messages.get(C, "m1")
    assert got is not None and got.author == "@first:x"


async def test_recent_returns_the_latest_messages_oldest_first(store: SqlStore) -> None:
    async with store.transaction() as tx:
        for i in range(6):
            tx.messages.add(msg(f"m{i}", i))
        tx.messages.add(msg("other-room", 99, room="#other"))
        tx.messages.add(MessageMeta("guild-2", "#help", "m9", "@a:x", at(50)))
    async with store.transaction() as tx:
        assert [m.id for m in await tx.messages.recent(C, "#help", 3)] == ["m3", "m4", "m5"]
        last = await tx.messages.last_in_room(C, "#help")
        assert last is not None and last.id == "m5"
        assert await tx.messages.last_in_room(C, "#empty") is None


async def test_active_authors_gives_each_authors_latest_time_since(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.messages.add(msg("m1", 0, author="@a:x"))
        tx.messages.add(msg("m2", 5, author="@b:x"))
        tx.messages.add(msg("m3", 7, author="@a:x"))
        tx.messages.add(msg("m4", 9, author="@c:x", room="#other"))
    async with store.transaction() as tx:
        assert await tx.messages.active_authors(C, "#help", at(5)) == {"@a:x": at(7), "@b:x": at(5)}


# -- questions ---------------------------------------------------------------------------------------------------


async def test_question_save_replaces_the_row_and_keeps_list_order(store: SqlStore) -> None:
    q = question("q1", 0, thread="t1")
    async with store.transaction() as tx:
        tx.questions.save(q)
    # Every field distinct from the others: rows are read back into the dataclass by position.
    q.state = QState.RESOLVED
    q.answered_by = "a2"
    q.first_answer_ts = at(3)
    q.resolved_ts = at(9)
    q.answers = ["a2", "a1", "a3"]
    q.credited = ["@bob:x", "@zoë:x"]
    q.nudges, q.level = 2, 3
    async with store.transaction() as tx:
        tx.questions.save(q)
    async with store.transaction() as tx:
        assert await tx.questions.get(C, "q1") == q
        assert await tx.questions.get(C, "nope") is None


async def test_question_save_is_a_snapshot_of_the_moment(store: SqlStore) -> None:
    q = question("q1", 0)
    async with store.transaction() as tx:
        tx.questions.save(q)
        q.answers.append("later")  # not saved again: must not leak into the buffered row
    async with store.transaction() as tx:
        got = await tx.questions.get(C, "q1")
    assert got is not None and got.answers == []


async def test_live_holds_open_stale_and_recently_closed_questions(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.questions.save(question("open", 0))
        tx.questions.save(question("stale", 1, state=QState.STALE))
        tx.questions.save(question("old-answer", 2, state=QState.ANSWERED, first_answer_ts=at(3)))
        tx.questions.save(question("new-answer", 4, state=QState.ANSWERED, first_answer_ts=at(30)))
        tx.questions.save(
            question("resolved-late", 5, state=QState.RESOLVED, first_answer_ts=at(6), resolved_ts=at(40))
        )
        tx.questions.save(question("withdrawn-old", 7, state=QState.WITHDRAWN))
    async with store.transaction() as tx:
        live = await tx.questions.live(at(20))
    assert [q.id for q in live] == ["open", "stale", "new-answer", "resolved-late"]


async def test_page_walks_every_question_in_id_then_community_order(store: SqlStore) -> None:
    async with store.transaction() as tx:
        for community in ("b", "a"):
            for i in (3, 1, 2):
                tx.questions.save(Question(community, f"q{i}", "#r", "@a:x", at(i)))
    seen: list[tuple[str, str]] = []
    after: tuple[str, str] | None = None
    async with store.transaction() as tx:
        while True:
            page = await tx.questions.page(after, 4)
            seen += [(q.id, q.community) for q in page]
            if len(page) < 4:
                break
            after = (page[-1].id, page[-1].community)
    assert seen == [("q1", "a"), ("q1", "b"), ("q2", "a"), ("q2", "b"), ("q3", "a"), ("q3", "b")]


async def test_unanswered_lists_open_and_stale_oldest_first(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.questions.save(question("q3", 3))
        tx.questions.save(question("q1", 1, state=QState.STALE))
        tx.questions.save(question("q2", 2, room="#other"))
        tx.questions.save(question("q0", 0, state=QState.ANSWERED))
        tx.questions.save(Question("guild-2", "qx", "#help", "@a:x", at(0)))
    async with store.transaction() as tx:
        assert [q.id for q in await tx.questions.unanswered(C, None, 10)] == ["q1", "q2", "q3"]
        assert [q.id for q in await tx.questions.unanswered(C, "#help", 10)] == ["q1", "q3"]
        assert [q.id for q in await tx.questions.unanswered(C, None, 2)] == ["q1", "q2"]


async def test_first_answer_delays_are_seconds_for_answered_questions_since(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.questions.save(question("before", 0, first_answer_ts=at(1)))
        tx.questions.save(question("q1", 10, first_answer_ts=at(12)))
        tx.questions.save(question("q2", 20, first_answer_ts=at(20.5)))
        tx.questions.save(question("open", 30))
        tx.questions.save(question("elsewhere", 30, room="#other", first_answer_ts=at(31)))
    async with store.transaction() as tx:
        assert await tx.questions.first_answer_delays(C, "#help", at(10), 10) == [120.0, 30.0]
        # Only the latest `limit`, still oldest first.
        assert await tx.questions.first_answer_delays(C, "#help", at(0), 2) == [120.0, 30.0]
        assert await tx.questions.first_answer_delays(C, "#help", at(0), 1) == [30.0]


# -- answers and help edges --------------------------------------------------------------------------------------


async def test_answers_for_message_and_double_add_is_ignored(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.questions.save(question("q1", 0))
        tx.questions.save(question("q2", 1))
        tx.answers.add(Answer(C, "q1", "a1", "@bob:x", at(2), "reply"))
        tx.answers.add(Answer(C, "q2", "a1", "@bob:x", at(2), "position"))
        tx.answers.add(Answer(C, "q1", "a1", "@bob:x", at(2), "mention"))  # same link again
    async with store.transaction() as tx:
        tx.answers.add(Answer(C, "q1", "a1", "@bob:x", at(2), "thread"))
    async with store.transaction() as tx:
        got = await tx.answers.for_message(C, "a1")
        assert await tx.answers.for_message(C, "zzz") == []
    assert got == [Answer(C, "q1", "a1", "@bob:x", at(2), "reply"), Answer(C, "q2", "a1", "@bob:x", at(2), "position")]


async def test_answers_for_message_merges_buffered_links_with_stored_ones(store: SqlStore) -> None:
    # A replay asks mid-batch: links not yet written must be seen, a stored link must win over a buffered
    # duplicate (as the insert would keep it), and the whole answer is in time order.
    async with store.transaction() as tx:
        for i in range(3):
            tx.questions.save(question(f"q{i}", i))
        tx.answers.add(Answer(C, "q1", "a1", "@bob:x", at(5), "reply"))
    async with store.transaction() as tx:
        tx.answers.add(Answer(C, "q1", "a1", "@bob:x", at(5), "mention"))  # same link: the stored one stays
        tx.answers.add(Answer(C, "q2", "a1", "@bob:x", at(4), "thread"))
        tx.answers.add(Answer(C, "q0", "other", "@bob:x", at(3), "reply"))
        got = await tx.answers.for_message(C, "a1")
        assert [(a.question, a.how) for a in got] == [("q2", "thread"), ("q1", "reply")]
        assert [a.question for a in await tx.answers.for_message(C, "other")] == ["q0"]
    async with store.transaction() as tx:
        assert await tx.answers.for_message(C, "a1") == got


async def test_help_edges_between_go_both_ways_since(store: SqlStore) -> None:
    def edge(q: str, helper: str, asker: str, minutes: float, room: str = "#help") -> HelpEdge:
        return HelpEdge(C, room, helper, asker, q, "answer", at(minutes))

    edges = [
        edge("q1", "@h1:x", "@ann:x", 0),  # too old
        edge("q2", "@h1:x", "@ann:x", 10),
        edge("q3", "@ann:x", "@h2:x", 11, room="#other"),
        edge("q4", "@h3:x", "@ann:x", 12),  # helper not asked about
        edge("q5", "@h2:x", "@zed:x", 13),  # does not involve ann
    ]
    async with store.transaction() as tx:
        for e in edges:
            tx.edges.add(e)
        tx.edges.add(edge("q2", "@h1:x", "@ann:x", 99))  # same question, helper, kind: ignored
    async with store.transaction() as tx:
        assert await tx.edges.between(C, ["@h1:x", "@h2:x"], "@ann:x", at(5)) == edges[1:3]
        assert await tx.edges.between(C, [], "@ann:x", at(0)) == []
        assert await tx.edges.in_room(C, "#help", at(5)) == [edges[1], edges[3], edges[4]]


# -- nudges ------------------------------------------------------------------------------------------------------


async def test_nudges_pending_due_and_for_question(store: SqlStore) -> None:
    async with store.transaction() as tx:
        for qid in ("q1", "q2", "q3"):
            tx.questions.save(question(qid, 0))
        tx.nudges.save(Nudge(C, "q1", 1, at(30)))
        tx.nudges.save(Nudge(C, "q1", 2, at(90), mentioned=("@h:x",), why=("@h:x: helped ann",)))
        tx.nudges.save(Nudge(C, "q2", 1, at(10)))
        tx.nudges.save(Nudge(C, "q3", 1, at(20), state=NudgeState.SENT))
        tx.nudges.save(Nudge(C, "q3", 2, at(60)))
    async with store.transaction() as tx:
        n = (await tx.nudges.for_question(C, "q1"))[1]
        n.state = NudgeState.CANCELLED
        tx.nudges.save(n)  # upsert: the last save wins
    async with store.transaction() as tx:
        assert [(n.question, n.level) for n in await tx.nudges.pending()] == [("q2", 1), ("q1", 1), ("q3", 2)]
        # strictly before: q3's level 2, due at 60, is not due "before 60"
        assert [(n.question, n.level) for n in await tx.nudges.due(at(60), 10)] == [("q2", 1), ("q1", 1)]
        assert [(n.question, n.level) for n in await tx.nudges.due(at(61), 1)] == [("q2", 1)]
        assert await tx.nudges.for_question(C, "q1") == [
            Nudge(C, "q1", 1, at(30)),
            Nudge(C, "q1", 2, at(90), NudgeState.CANCELLED, ("@h:x",), ("@h:x: helped ann",)),
        ]


async def test_sent_pings_and_reminders_are_read_back_with_the_fate_of_their_questions(store: SqlStore) -> None:
    sent = NudgeState.SENT
    async with store.transaction() as tx:
        tx.questions.save(question("q1", 0, state=QState.ANSWERED))  # h1 answered it, h2 let it pass
        tx.questions.save(question("q2", 5))  # still open: the outcome is to come
        tx.questions.save(question("q3", 6, room="#dev", author="@bo:x", state=QState.STALE))
        tx.questions.save(question("q4", 7))
        tx.nudges.save(Nudge(C, "q1", 1, at(30), sent))
        tx.nudges.save(Nudge(C, "q1", 2, at(90), sent, ("@h1:x", "@h2:x"), ("@h1:x: a", "@h2:x: b")))
        tx.nudges.save(Nudge(C, "q2", 1, at(40), sent))
        tx.nudges.save(Nudge(C, "q2", 2, at(100), sent, ("@h2:x",), ("@h2:x: b",)))
        tx.nudges.save(Nudge(C, "q3", 1, at(50), sent))
        tx.nudges.save(Nudge(C, "q3", 2, at(80), sent))  # "nobody to ask": pinged no one
        tx.nudges.save(Nudge(C, "q4", 1, at(60), NudgeState.CANCELLED))  # cooldown: never sent
        tx.nudges.save(Nudge(C, "q4", 2, at(70), NudgeState.PENDING, ("@h1:x",)))
        tx.edges.add(HelpEdge(C, "#help", "@h1:x", "@ann:x", "q1", "answer", at(95)))
        tx.edges.add(HelpEdge(C, "#help", "@h1:x", "@ann:x", "q1", "credit", at(96)))
    async with store.transaction() as tx:
        assert await tx.nudges.pings_since(at(0)) == [
            SentPing(C, "q1", at(90), ("@h1:x", "@h2:x"), settled=True, helpers=frozenset({"@h1:x"})),
            SentPing(C, "q2", at(100), ("@h2:x",), settled=False),
        ]
        assert [p.question for p in await tx.nudges.pings_since(at(91))] == ["q2"]
        assert await tx.nudges.reminders_since(at(0)) == [
            SentReminder(C, "#dev", "@bo:x", at(50)),
            SentReminder(C, "#help", "@ann:x", at(40)),  # the latest of ann's
        ]
        assert await tx.nudges.reminders_since(at(45)) == [SentReminder(C, "#dev", "@bo:x", at(50))]


# -- members -----------------------------------------------------------------------------------------------------


async def test_member_prefs_round_trip_and_helpers_filter(store: SqlStore) -> None:
    prefs = [
        MemberPrefs(C, "@all:x", helper=True),
        MemberPrefs(C, "@help-room:x", helper=True, helper_rooms=("#help", "#dev"), language="fr", named_thanks=True),
        MemberPrefs(C, "@other-room:x", helper=True, helper_rooms=("#dev",)),
        MemberPrefs(C, "@opted-out:x", helper=True, optout=True),
        MemberPrefs(C, "@not-helper:x", dms=True),
        MemberPrefs("guild-2", "@elsewhere:x", helper=True),
    ]
    async with store.transaction() as tx:
        for p in prefs:
            tx.members.save(p)
        tx.members.save(MemberPrefs(C, "@all:x", helper=True, dms=True))  # the last save wins
    async with store.transaction() as tx:
        assert await tx.members.get(C, "@help-room:x") == prefs[1]
        assert await tx.members.get(C, "@nobody:x") is None
        helpers = await tx.members.helpers(C, "#help")
        everyone = await tx.members.in_community(C)
    # Every member of C with a row (the last save of each), by member id; none of another community.
    assert everyone == sorted([MemberPrefs(C, "@all:x", helper=True, dms=True), *prefs[1:5]], key=lambda p: p.member)
    assert helpers == [MemberPrefs(C, "@all:x", helper=True, dms=True), prefs[1]]


# -- outbox, kv, seen --------------------------------------------------------------------------------------------


async def test_outbox_put_once_unsent_then_marked_sent(store: SqlStore) -> None:
    payload = {"action": "reply", "room": "#help", "mentions": ["@h:x"], "text": "ça marche ?"}
    async with store.transaction() as tx:
        tx.outbox.put("k2", C, payload, at(2))
        tx.outbox.put("k1", C, {"action": "post"}, at(1))
        tx.outbox.put("k2", C, {"action": "other"}, at(3))  # same key: ignored
    async with store.transaction() as tx:
        unsent = await tx.outbox.unsent(10)
        assert [(i.key, i.payload) for i in unsent] == [("k1", {"action": "post"}), ("k2", payload)]
        tx.outbox.mark_sent("k1", at(5))
        assert [i.key for i in await tx.outbox.unsent(10)] == ["k2"]
    async with store.transaction() as tx:
        item = await tx.outbox.get("k1")
        assert item is not None and item.sent_at == at(5) and item.created == at(1)
        assert await tx.outbox.get("nope") is None
        assert [i.key for i in await tx.outbox.unsent(10)] == ["k2"]


async def test_kv_set_then_get_and_overwrite(store: SqlStore) -> None:
    async with store.transaction() as tx:
        assert await tx.kv.get("matrix.since") is None
        tx.kv.set("matrix.since", "s1")
        tx.kv.set("matrix.since", "s2")
        assert await tx.kv.get("matrix.since") == "s2"
    async with store.transaction() as tx:
        tx.kv.set("matrix.since", "s3")
    async with store.transaction() as tx:
        assert await tx.kv.get("matrix.since") == "s3"


async def test_seen_key_is_first_only_once_across_transactions(store: SqlStore) -> None:
    async with store.transaction() as tx:
        assert await tx.seen.first(C, "reaction|m1|@a:x|+1", at(0)) is True
        assert await tx.seen.first(C, "reaction|m1|@a:x|+1", at(0)) is False
        assert await tx.seen.first("guild-2", "reaction|m1|@a:x|+1", at(0)) is True
    async with store.transaction() as tx:
        assert await tx.seen.first(C, "reaction|m1|@a:x|+1", at(1)) is False


async def test_strikes_are_listed_since_cleared_per_member_and_pruned_by_age(store: SqlStore) -> None:
    async with store.transaction() as tx:
        tx.strikes.add(C, "@spam:x", at(1))
        tx.strikes.add(C, "@spam:x", at(1))  # the same strike again (a replayed event): one row
        tx.strikes.add(C, "@spam:x", at(3))
        tx.strikes.add(C, "@other:x", at(2))
    async with store.transaction() as tx:
        assert await tx.strikes.since(at(0)) == [(C, "@spam:x", at(1)), (C, "@other:x", at(2)), (C, "@spam:x", at(3))]
        assert await tx.strikes.prune(at(2)) == 1
        tx.strikes.add(C, "@spam:x", at(4))  # buffered, not yet written: a pardon clears it too
        assert await tx.strikes.clear(C, "@spam:x") == 2
    async with store.transaction() as tx:
        assert await tx.strikes.since(at(0)) == [(C, "@other:x", at(2))]
