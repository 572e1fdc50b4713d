"""In-memory fakes of the core's ports (named as such): the unit tier runs the real engine on these.

They follow the same contract as storage.repositories (buffer-free: writes are visible at once, a failed
transaction is rolled back by snapshot).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from datetime import datetime

from bot.model import (
    Answer,
    HelpEdge,
    MemberPrefs,
    MessageMeta,
    Nudge,
    NudgeState,
    OutboxItem,
    QState,
    Question,
    SentPing,
    SentReminder,
)


class _Data:
    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], MessageMeta] = {}
        self.questions: dict[tuple[str, str], Question] = {}
        self.answers: dict[tuple[str, str, str], Answer] = {}
        self.edges: list[HelpEdge] = []
        self.nudges: dict[tuple[str, str, int], Nudge] = {}
        self.members: dict[tuple[str, str], MemberPrefs] = {}
        self.outbox: dict[str, OutboxItem] = {}
        self.kv: dict[str, str] = {}
        self.seen: dict[tuple[str, str], datetime] = {}
        self.strikes: set[tuple[str, str, datetime]] = set()


class FakeMessageRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def add(self, meta: MessageMeta) -> None:
        self.d.messages.setdefault((meta.community, meta.id), meta)

    async def get(self, community: str, id: str) -> MessageMeta | None:
        return self.d.messages.get((community, id))

    async def recent(self, community: str, room: str, limit: int) -> list[MessageMeta]:
        rows = sorted((m for m in self.d.messages.values() if (m.community, m.room) == (community, room)),
                      key=lambda m: m.ts)
        return rows[-limit:]

    async def last_in_room(self, community: str, room: str) -> MessageMeta | None:
        rows = await self.recent(community, room, 1)
        return rows[-1] if rows else None

    async def active_authors(self, community: str, room: str, since: datetime) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for m in self.d.messages.values():
            if m.community == community and m.room == room and m.ts >= since:
                out[m.author] = max(out.get(m.author, m.ts), m.ts)
        return out


class FakeQuestionRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def save(self, q: Question) -> None:
        self.d.questions[(q.community, q.id)] = copy.deepcopy(q)

    async def get(self, community: str, id: str) -> Question | None:
        q = self.d.questions.get((community, id))
        return copy.deepcopy(q) if q else None

    async def live(self, since: datetime) -> list[Question]:
        return [copy.deepcopy(q) for q in self.d.questions.values()
                if q.state in (QState.OPEN, QState.STALE)
                or (q.resolved_ts or q.first_answer_ts or q.asked_ts) >= since]

    async def page(self, after: tuple[str, str] | None, limit: int) -> list[Question]:
        rows = sorted(self.d.questions.values(), key=lambda q: (q.id, q.community))
        if after is not None:
            rows = [q for q in rows if (q.id, q.community) > after]
        return [copy.deepcopy(q) for q in rows[:limit]]

    async def unanswered(self, community: str, room: str | None, limit: int) -> list[Question]:
        rows = [q for q in self.d.questions.values() if q.community == community
                and (room is None or q.room == room) and q.state in (QState.OPEN, QState.STALE)]
        return [copy.deepcopy(q) for q in sorted(rows, key=lambda q: q.asked_ts)[:limit]]

    async def asked_between(self, community: str, room: str | None, since: datetime, until: datetime
                            ) -> list[Question]:
        rows = [q for q in self.d.questions.values() if q.community == community
                and (room is None or q.room == room) and since <= q.asked_ts < until]
        return [copy.deepcopy(q) for q in sorted(rows, key=lambda q: (q.asked_ts, q.id))]

    async def first_seen(self, community: str, members: Sequence[str]) -> dict[str, datetime]:
        seen: dict[str, datetime] = {}
        wanted = set(members)
        stamps = [(q.author, q.asked_ts) for q in self.d.questions.values() if q.community == community]
        stamps += [(e.helper, e.ts) for e in self.d.edges if e.community == community]
        for who, ts in stamps:
            if who in wanted and (who not in seen or ts < seen[who]):
                seen[who] = ts
        return seen

    async def communities(self) -> list[str]:
        return sorted({q.community for q in self.d.questions.values()})

    async def first_answer_delays(self, community: str, room: str, since: datetime, limit: int) -> list[float]:
        answered = sorted((q for q in self.d.questions.values()
                           if (q.community, q.room) == (community, room) and q.first_answer_ts and q.asked_ts >= since),
                          key=lambda q: (q.asked_ts, q.id))
        return [(q.first_answer_ts - q.asked_ts).total_seconds() for q in answered[len(answered) - limit:]]


class FakeAnswerRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def add(self, answer: Answer) -> None:
        self.d.answers.setdefault((answer.community, answer.question, answer.message), answer)

    async def for_message(self, community: str, message: str) -> list[Answer]:
        return [a for a in self.d.answers.values() if a.community == community and a.message == message]

    async def for_question(self, community: str, question: str) -> list[Answer]:
        return sorted((a for a in self.d.answers.values() if a.community == community and a.question == question),
                      key=lambda a: a.ts)


class FakeHelpRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def add(self, edge: HelpEdge) -> None:
        self.d.edges.append(edge)

    async def between(self, community: str, helpers: Sequence[str], asker: str, since: datetime) -> list[HelpEdge]:
        hs = set(helpers)
        return [e for e in self.d.edges if e.community == community and e.ts >= since
                and ((e.helper in hs and e.asker == asker) or (e.helper == asker and e.asker in hs))]

    async def during(self, community: str, room: str | None, since: datetime, until: datetime) -> list[HelpEdge]:
        return sorted((e for e in self.d.edges if e.community == community and (room is None or e.room == room)
                       and since <= e.ts < until), key=lambda e: e.ts)

    async def in_room(self, community: str, room: str, since: datetime) -> list[HelpEdge]:
        return [e for e in self.d.edges if e.community == community and e.room == room and e.ts >= since]


class FakeNudgeRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def save(self, nudge: Nudge) -> None:
        self.d.nudges[(nudge.community, nudge.question, nudge.level)] = replace(nudge)

    async def pending(self) -> list[Nudge]:
        return [replace(n) for n in self.d.nudges.values() if n.state == NudgeState.PENDING]

    async def due(self, before: datetime, limit: int) -> list[Nudge]:
        rows = sorted((n for n in self.d.nudges.values() if n.state == NudgeState.PENDING and n.due < before),
                      key=lambda n: n.due)
        return [replace(n) for n in rows[:limit]]

    async def for_question(self, community: str, question: str) -> list[Nudge]:
        return [replace(n) for n in self.d.nudges.values() if (n.community, n.question) == (community, question)]

    def _sent(self, level: int, since: datetime) -> list[tuple[Nudge, Question]]:
        rows = [(n, self.d.questions[(n.community, n.question)]) for n in self.d.nudges.values()
                if n.state == NudgeState.SENT and n.level == level and n.due >= since]
        return sorted(rows, key=lambda r: (r[0].due, r[0].community, r[0].question))

    async def pings_since(self, since: datetime) -> list[SentPing]:
        return [SentPing(n.community, n.question, n.due, n.mentioned, q.state != QState.OPEN,
                         frozenset(e.helper for e in self.d.edges if (e.community, e.question) == (n.community, q.id)))
                for n, q in self._sent(2, since) if n.mentioned]

    async def reminders_since(self, since: datetime) -> list[SentReminder]:
        latest: dict[tuple[str, str, str], datetime] = {}
        for n, q in self._sent(1, since):
            latest[(n.community, q.room, q.author)] = n.due
        return [SentReminder(*k, ts) for k, ts in sorted(latest.items())]


class FakeMemberRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def save(self, prefs: MemberPrefs) -> None:
        self.d.members[(prefs.community, prefs.member)] = replace(prefs)

    async def get(self, community: str, member: str) -> MemberPrefs | None:
        p = self.d.members.get((community, member))
        return replace(p) if p else None

    async def in_community(self, community: str) -> list[MemberPrefs]:
        return sorted((replace(p) for p in self.d.members.values() if p.community == community),
                      key=lambda p: p.member)

    async def helpers(self, community: str, room: str) -> list[MemberPrefs]:
        return [replace(p) for p in self.d.members.values() if p.community == community and p.helper
                and not p.optout and (not p.helper_rooms or room in p.helper_rooms)]


class FakeOutboxRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def put(self, key: str, community: str, payload: dict[str, object], created: datetime) -> None:
        self.d.outbox.setdefault(key, OutboxItem(key, community, created, payload))

    def mark_sent(self, key: str, ts: datetime) -> None:
        if key in self.d.outbox:
            self.d.outbox[key] = replace(self.d.outbox[key], sent_at=ts)

    async def get(self, key: str) -> OutboxItem | None:
        return self.d.outbox.get(key)

    async def unsent(self, limit: int) -> list[OutboxItem]:
        rows = sorted((i for i in self.d.outbox.values() if i.sent_at is None), key=lambda i: (i.created, i.key))
        return rows[:limit]


class FakeKvRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    async def get(self, key: str) -> str | None:
        return self.d.kv.get(key)

    def set(self, key: str, value: str) -> None:
        self.d.kv[key] = value


class FakeSeenRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    async def first(self, community: str, key: str, ts: datetime) -> bool:
        if (community, key) in self.d.seen:
            return False
        self.d.seen[(community, key)] = ts
        return True


class FakeStrikeRepo:
    def __init__(self, d: _Data) -> None:
        self.d = d

    def add(self, community: str, member: str, ts: datetime) -> None:
        self.d.strikes.add((community, member, ts))

    async def clear(self, community: str, member: str) -> int:
        mine = {s for s in self.d.strikes if s[:2] == (community, member)}
        self.d.strikes -= mine
        return len(mine)

    async def since(self, since: datetime) -> list[tuple[str, str, datetime]]:
        return sorted((s for s in self.d.strikes if s[2] >= since), key=lambda s: (s[2], s[0], s[1]))

    async def prune(self, before: datetime) -> int:
        old = {s for s in self.d.strikes if s[2] < before}
        self.d.strikes -= old
        return len(old)


class FakeTx:
    def __init__(self, d: _Data) -> None:
        self.d = d
        self.messages = FakeMessageRepo(d)
        self.questions = FakeQuestionRepo(d)
        self.answers = FakeAnswerRepo(d)
        self.edges = FakeHelpRepo(d)
        self.nudges = FakeNudgeRepo(d)
        self.members = FakeMemberRepo(d)
        self.outbox = FakeOutboxRepo(d)
        self.kv = FakeKvRepo(d)
        self.seen = FakeSeenRepo(d)
        self.strikes = FakeStrikeRepo(d)

    def _rows_naming(self, community: str, member: str) -> dict[str, list[object]]:
        d = self.d
        return {
            "messages": [k for k, m in d.messages.items() if m.community == community and m.author == member],
            "questions": [k for k, q in d.questions.items() if q.community == community and q.author == member],
            "answers": [k for k, a in d.answers.items() if a.community == community and a.author == member],
            "help_edges": [e for e in d.edges if e.community == community and member in (e.helper, e.asker)],
            "members": [k for k in d.members if k == (community, member)],
        }

    async def forget_member(self, community: str, member: str) -> dict[str, int]:
        rows = self._rows_naming(community, member)
        d = self.d
        for k in rows["messages"]:
            del d.messages[k]
        for k in rows["questions"]:
            del d.questions[k]
            for nk in [nk for nk in d.nudges if nk[:2] == k]:
                del d.nudges[nk]
        for k in rows["answers"]:
            del d.answers[k]
        d.edges = [e for e in d.edges if e not in rows["help_edges"]]
        for k in rows["members"]:
            del d.members[k]
        struck = {s for s in d.strikes if s[:2] == (community, member)}
        d.strikes -= struck
        return {table: len(v) for table, v in rows.items()} | {"guard_strikes": len(struck)}

    async def member_data(self, community: str, member: str) -> dict[str, list[dict[str, object]]]:
        d = self.d
        return {
            "messages": [asdict(m) for m in d.messages.values() if m.community == community and m.author == member],
            "questions": [asdict(q) for q in d.questions.values() if q.community == community and q.author == member],
            "members": [asdict(p) for k, p in d.members.items() if k == (community, member)],
        }

    async def purge(self, before: datetime) -> dict[str, int]:
        old = [k for k, m in self.d.messages.items() if m.ts < before]
        for k in old:
            del self.d.messages[k]
        return {"messages": len(old)}


class FakeStore:
    """An in-memory Store; a transaction that raises leaves the data as it was."""

    def __init__(self) -> None:
        self.data = _Data()
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTx]:
        snapshot = copy.deepcopy(self.data)
        try:
            yield FakeTx(self.data)
        except BaseException:
            self.data.__dict__.update(snapshot.__dict__)
            raise
        self.commits += 1
