"""forget_member, member_data and purge (retention) on migrated SQLite files and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.model import Answer, HelpEdge, MemberPrefs, MessageMeta, Nudge, NudgeState, QState, Question
from storage.models import Base
from storage.repositories import SqlStore, SqlTx

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
C = "guild-1"
ZED = "@zed:example.org"  # the member who asks to be forgotten
ANN = "@ann:example.org"
BOB = "@bob:example.org"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


async def _populate(tx: SqlTx) -> None:
    """A community where ZED asked, answered, helped, was credited, pinged, queued to and reacted."""
    for id_, author, h in [("z-q", ZED, 0), ("a-q", ANN, 1), ("z-ans", ZED, 2), ("b-ans", BOB, 3), ("a-2", ANN, 4)]:
        tx.messages.add(MessageMeta(C, "#help", id_, author, at(h), reply_to="a-q" if "ans" in id_ else None))
    tx.messages.add(MessageMeta("guild-2", "#help", "z-elsewhere", ZED, at(0)))  # another community: kept
    # ZED's own question, answered by BOB, with a pending nudge.
    tx.questions.save(
        Question(C, "z-q", "#help", ZED, at(0), state=QState.ANSWERED, answered_by="b-ans", first_answer_ts=at(3),
                 answers=["b-ans"], credited=[BOB])
    )
    tx.answers.add(Answer(C, "z-q", "b-ans", BOB, at(3), "reply"))
    tx.edges.add(HelpEdge(C, "#help", BOB, ZED, "z-q", "answer", at(3)))
    tx.nudges.save(Nudge(C, "z-q", 1, at(1), NudgeState.SENT))
    # ANN's question, answered first by ZED then BOB; ZED credited; a level-2 nudge pinged ZED and BOB.
    tx.questions.save(
        Question(C, "a-q", "#help", ANN, at(1), state=QState.RESOLVED, answered_by="z-ans", first_answer_ts=at(2),
                 resolved_ts=at(5), answers=["z-ans", "b-ans"], credited=[ZED, BOB])
    )
    tx.answers.add(Answer(C, "a-q", "z-ans", ZED, at(2), "reply"))
    tx.answers.add(Answer(C, "a-q", "b-ans", BOB, at(3), "reply"))
    tx.edges.add(HelpEdge(C, "#help", ZED, ANN, "a-q", "answer", at(2)))
    tx.edges.add(HelpEdge(C, "#help", BOB, ANN, "a-q", "credit", at(5)))
    tx.nudges.save(
        Nudge(C, "a-q", 2, at(1.5), NudgeState.SENT, mentioned=(ZED, BOB),
              why=(f"{ZED}: answered ann before", f"{BOB}: active in #help"))
    )
    # ANN's second question, open, with a pending nudge not naming ZED.
    tx.questions.save(Question(C, "a-2", "#help", ANN, at(4)))
    tx.nudges.save(Nudge(C, "a-2", 1, at(6)))
    tx.members.save(MemberPrefs(C, ZED, helper=True, helper_rooms=("#help",), dms=True))
    tx.members.save(MemberPrefs(C, BOB, helper=True))
    tx.outbox.put("nudge|guild-1|a-q|2", C, {"action": "reply", "mentions": [ZED, BOB], "text": f"<{ZED}>?"}, at(1.5))
    tx.outbox.put("nudge|guild-1|a-2|1", C, {"action": "reply", "text": "any idea?"}, at(6))
    tx.kv.set("matrix.since", "s_123")
    assert await tx.seen.first(C, f"reaction|a-q|{ZED}|+1", at(5))
    assert await tx.seen.first(C, f"reaction|a-q|{BOB}|+1", at(5))
    tx.strikes.add(C, ZED, at(6))  # the guard struck ZED twice, BOB once
    tx.strikes.add(C, ZED, at(7))
    tx.strikes.add(C, BOB, at(7))


async def _rows_containing(tx: SqlTx, needle: str) -> dict[str, int]:
    """Per table, rows of `community` C with any string or JSON column containing `needle`."""
    found: dict[str, int] = {}
    conn = tx._conn
    for table in Base.metadata.sorted_tables:
        texty = [c for c in table.columns if isinstance(c.type, sa.String | sa.JSON | sa.Text)]
        hits = sa.or_(*(sa.cast(c, sa.Text).contains(needle, autoescape=True) for c in texty))
        where = [hits] if "community" not in table.columns else [hits, table.c.community == C]
        n = (await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one()
        if n:
            found[table.name] = n
    return found


async def test_forget_member_leaves_no_row_naming_the_member(store: SqlStore) -> None:
    async with store.transaction() as tx:
        await _populate(tx)
        assert await _rows_containing(tx, ZED)  # the scan finds them before: it can fail
        await tx.purge(at(2.5))  # ZED's early help edge now lives in help_aggregates
        assert (await _rows_containing(tx, ZED)).get("help_aggregates") == 1
    async with store.transaction() as tx:
        await tx.forget_member(C, ZED)
    async with store.transaction() as tx:
        assert await _rows_containing(tx, ZED) == {}


async def test_forget_member_deletes_their_rows_and_scrubs_them_from_others(store: SqlStore) -> None:
    async with store.transaction() as tx:
        await _populate(tx)
        counts = await tx.forget_member(C, ZED)
    assert counts == {
        "questions_scrubbed": 1,
        "nudges_scrubbed": 1,
        "nudges": 1,
        "answers": 2,  # ZED's answer to ann, and BOB's answer to ZED's question
        "help_edges": 2,
        "help_aggregates": 0,
        "messages": 2,
        "members": 1,
        "outbox": 1,
        "seen_events": 1,
        "guard_strikes": 2,
        "questions": 1,
    }
    async with store.transaction() as tx:
        ann_q = await tx.questions.get(C, "a-q")
        assert ann_q is not None
        # ZED's answer was the first: BOB's, the one left, is now the first answer (no row points at ZED's).
        assert (ann_q.answered_by, ann_q.first_answer_ts, ann_q.answers, ann_q.credited) == (
            "b-ans", at(3), ["b-ans"], [BOB])
        assert await tx.questions.get(C, "z-q") is None
        assert await tx.nudges.for_question(C, "a-q") == [
            Nudge(C, "a-q", 2, at(1.5), NudgeState.SENT, mentioned=(BOB,), why=(f"{BOB}: active in #help",))
        ]
        assert [n.question for n in await tx.nudges.pending()] == ["a-2"]
        assert await tx.members.get(C, BOB) == MemberPrefs(C, BOB, helper=True)
        assert await tx.messages.get("guild-2", "z-elsewhere") is not None
        assert [i.key for i in await tx.outbox.unsent(10)] == ["nudge|guild-1|a-2|1"]
        assert await tx.kv.get("matrix.since") == "s_123"
        assert await tx.seen.first(C, f"reaction|a-q|{BOB}|+1", at(9)) is False
        assert await tx.strikes.since(at(0)) == [(C, BOB, at(7))]


async def test_member_data_lists_every_row_naming_the_member_as_json_values(store: SqlStore) -> None:
    async with store.transaction() as tx:
        await _populate(tx)
        data = await tx.member_data(C, ZED)
    json.dumps(data)  # plain values only
    assert {t: len(rows) for t, rows in data.items()} == {
        "messages": 2,
        "questions": 2,  # asked z-q; answered and credited on a-q
        "answers": 2,
        "help_edges": 2,
        "help_aggregates": 0,
        "nudges": 2,  # the nudge of z-q, and the one on a-q that mentioned ZED
        "members": 1,
        "outbox": 1,
        "seen_events": 1,
        "guard_strikes": 2,
    }
    assert data["guard_strikes"][0] == {"community": C, "member": ZED, "ts": "2026-03-01T18:00:00+00:00"}
    assert data["members"] == [
        {"community": C, "member": ZED, "helper": True, "helper_rooms": ["#help"], "optout": False, "dms": True,
         "language": None, "named_thanks": False}
    ]
    assert [(m["id"], m["ts"]) for m in data["messages"]] == [
        ("z-ans", "2026-03-01T14:00:00+00:00"),
        ("z-q", "2026-03-01T12:00:00+00:00"),
    ]


async def test_member_data_of_an_unknown_member_is_empty(store: SqlStore) -> None:
    async with store.transaction() as tx:
        await _populate(tx)
        data = await tx.member_data(C, "@nobody:example.org")
    assert all(rows == [] for rows in data.values())


async def _aggregates(tx: SqlTx) -> list[tuple[object, ...]]:
    from storage.repositories import AGGREGATES

    rows = await tx._conn.execute(sa.select(AGGREGATES).order_by(*AGGREGATES.primary_key))
    return [tuple(r) for r in rows]


async def test_purge_folds_old_help_edges_into_aggregates(store: SqlStore) -> None:
    async with store.transaction() as tx:
        for i, h in enumerate([0, 1, 2, 10]):
            tx.questions.save(Question(C, f"q{i}", "#help", ANN, at(h)))
            tx.edges.add(HelpEdge(C, "#help", BOB, ANN, f"q{i}", "answer", at(h)))
        tx.edges.add(HelpEdge(C, "#help", ANN, BOB, "q9", "credit", at(1)))
    async with store.transaction() as tx:
        counts = await tx.purge(at(1.5))
        assert counts["help_edges"] == 3 and counts["help_aggregates"] == 2
        assert await _aggregates(tx) == [
            (C, "#help", ANN, BOB, "credit", 1, at(1), at(1)),
            (C, "#help", BOB, ANN, "answer", 2, at(0), at(1)),
        ]
        assert [e.question for e in await tx.edges.in_room(C, "#help", at(-100))] == ["q2", "q3"]
    async with store.transaction() as tx:
        await tx.purge(at(5))  # folds q2 into the existing aggregate
        assert await _aggregates(tx) == [
            (C, "#help", ANN, BOB, "credit", 1, at(1), at(1)),
            (C, "#help", BOB, ANN, "answer", 3, at(0), at(2)),
        ]
        assert [e.question for e in await tx.edges.in_room(C, "#help", at(-100))] == ["q3"]


async def test_purge_deletes_old_rows_but_keeps_open_work(store: SqlStore) -> None:
    cut = at(100)
    async with store.transaction() as tx:
        tx.messages.add(MessageMeta(C, "#help", "old", ANN, at(0)))
        tx.messages.add(MessageMeta(C, "#help", "new", ANN, at(200)))
        tx.questions.save(Question(C, "old-closed", "#help", ANN, at(0), state=QState.ANSWERED,
                                   first_answer_ts=at(1)))
        tx.questions.save(Question(C, "late-resolved", "#help", ANN, at(0), state=QState.RESOLVED,
                                   first_answer_ts=at(1), resolved_ts=at(150)))
        tx.questions.save(Question(C, "old-open", "#help", ANN, at(0)))
        tx.questions.save(Question(C, "old-stale", "#help", ANN, at(0), state=QState.STALE))
        tx.answers.add(Answer(C, "old-closed", "a1", BOB, at(1), "reply"))
        tx.answers.add(Answer(C, "late-resolved", "a2", BOB, at(1), "reply"))
        tx.nudges.save(Nudge(C, "old-open", 1, at(1), NudgeState.SENT))
        tx.nudges.save(Nudge(C, "old-open", 2, at(2)))  # pending, however old
        tx.outbox.put("sent-old", C, {"a": 1}, at(0))
        tx.outbox.mark_sent("sent-old", at(0))
        tx.outbox.put("unsent-old", C, {"a": 2}, at(0))
        tx.outbox.put("sent-new", C, {"a": 3}, at(200))
        tx.outbox.mark_sent("sent-new", at(200))
        await tx.seen.first(C, "old-key", at(0))
        await tx.seen.first(C, "new-key", at(200))
    async with store.transaction() as tx:
        counts = await tx.purge(cut)
    assert counts == {
        "help_aggregates": 0,
        "help_edges": 0,
        "nudges": 1,
        "answers": 2,
        "questions": 1,
        "messages": 1,
        "outbox": 1,
        "seen_events": 1,
    }
    async with store.transaction() as tx:
        assert await tx.messages.get(C, "old") is None and await tx.messages.get(C, "new") is not None
        assert await tx.questions.get(C, "old-closed") is None
        assert [q.id for q in await tx.questions.page(None, 10)] == ["late-resolved", "old-open", "old-stale"]
        assert await tx.nudges.for_question(C, "old-open") == [Nudge(C, "old-open", 2, at(2))]
        assert await tx.outbox.get("sent-old") is None
        assert [i.key for i in await tx.outbox.unsent(10)] == ["unsent-old"]
        assert await tx.outbox.get("sent-new") is not None
        assert await tx.seen.first(C, "old-key", at(300)) is True
        assert await tx.seen.first(C, "new-key", at(300)) is False


async def test_forget_member_treats_like_wildcards_in_ids_literally(store: SqlStore) -> None:
    wild, plain = "@a_b%:x", "@axbyy:x"
    async with store.transaction() as tx:
        for i, member in enumerate((wild, plain)):
            tx.outbox.put(f"dm-{i}", C, {"action": "dm", "to": member}, at(0))
            await tx.seen.first(C, f"reaction|m1|{member}|+1", at(0))
            tx.questions.save(Question(C, f"q{i}", "#help", ANN, at(0), credited=[member]))
    async with store.transaction() as tx:
        counts = await tx.forget_member(C, wild)
        assert (counts["outbox"], counts["seen_events"], counts["questions_scrubbed"]) == (1, 1, 1)
        assert await _rows_containing(tx, wild) == {}
        assert await _rows_containing(tx, plain) == {"outbox": 1, "questions": 1, "seen_events": 1}
