"""A history replayed in memory into its questions and help edges: what `lien report EVENTS` draws.

`lien simulate` replays events through the whole engine: nudges, the outbox, a row written for every message and
change, up to a millisecond an event. A report needs only the questions and the help edges, so `replay_history`
feeds the events to the question tracker the way the engine does (same dispatch, same hourly eviction, same
commands that close questions) and keeps in memory what the engine would have stored: each question (the
tracker's own object, so its final state), each answer link, and each help edge from `bot.help_edges.edges_of`,
the engine's own derivation, kept once per (question, helper, kind) as the database keeps them.

Where the engine reads its database, the replay reads that memory: a reply, reaction, edit, delete or command
naming a question or answer that has left the tracker brings it back (`QuestionTracker.remember`), the question
with all its answers. Other messages are kept only for the latest `RECENT_MESSAGES`: a reply or reaction to an
older one that was neither a question nor an answer finds nothing, where the engine would find its author and time
(a million messages would not fit the memory budget; on generated histories no link is lost).

States: there is no nudge ladder, so an unanswered (`open`) question turns `stale` once the longest ladder its
room's settings allow has run (`stale_after`: the level-3 delay, or the level-2 ceiling when longer; 3 days by
default), in rooms where nudges are on. By then the engine has marked it stale too, and it may leave the tracker
as in the engine, so later messages are linked as the engine links them, in bounded memory. Quiet hours, pauses
and raids only delay the engine's ladder, which a replay cannot know; a question younger than `stale_after` at the
end stays `open`, where `lien simulate`, running on for 7 days, shows it `stale`. Both mean unanswered: the
report's metrics and its list of unanswered questions count them alike.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.commands import CommandRate, parse_command, refusal
from bot.config import HARD_MAX_RECIPIENTS, NudgeSettings, Settings
from bot.cycles import cycle_collector_paused
from bot.engine import EVICT_EVERY, LINGER, WINDOW
from bot.events import Command, Delete, Edit, Event, Message, Reaction
from bot.help_edges import edges_of
from bot.model import Answer, HelpEdge, MessageMeta, Question
from bot.tracker import Change, Linked, Opened, QuestionTracker

__all__ = ["RECENT_MESSAGES", "History", "HistoryReplay", "replay_history", "stale_after"]

History = tuple[list[Question], list[HelpEdge]]
#: A kept message: (room, author, ts, reply_to, thread); a tuple is far cheaper to build than a frozen MessageMeta.
_Meta = tuple[str, str, datetime, str | None, str | None]
#: Messages kept (author, time, reply and thread) for references to them that the tracker no longer holds: about
#: 30 MB. References reach a few thousand messages back in busy rooms (10,705 at most in 100,000 generated events).
RECENT_MESSAGES = 100_000


def stale_after(nudges: NudgeSettings) -> timedelta:
    """How long after it was asked an unanswered question has surely been through the whole nudge ladder: the
    level-3 delay, or the level-2 ceiling when longer (`bot.nudges.ladder_for` never goes beyond either)."""
    return timedelta(minutes=max(nudges.level3_minutes, nudges.level2_ceiling_minutes))


class _Community:
    """What the engine's database would hold for one community, as far as a report and a reload need it."""

    __slots__ = ("answers", "messages", "questions")

    def __init__(self) -> None:
        #: question id -> the question (the tracker's object: its state is always the latest)
        self.questions: dict[str, Question] = {}
        #: answer message id -> its answer link, or a tuple of them when one message answers several questions
        self.answers: dict[str, Answer | tuple[Answer, ...]] = {}
        #: message id -> (room, author, ts, reply_to, thread), for the latest `RECENT_MESSAGES` of the history
        self.messages: dict[str, _Meta] = {}

    def answers_of(self, message: str) -> tuple[Answer, ...]:
        found = self.answers.get(message)
        if found is None:
            return ()
        return found if isinstance(found, tuple) else (found,)


class HistoryReplay:
    """Feed events in time order (`feed`), then take the questions and help edges (`history`)."""

    def __init__(self, settings: Settings, *, recent_messages: int = RECENT_MESSAGES) -> None:
        self.settings = settings
        self.tracker = QuestionTracker(settings, window=WINDOW, linger=LINGER)
        self._comms: dict[str, _Community] = {}
        self._edges: list[HelpEdge] = []
        #: one shared str object per name (`setdefault(name, name)`): a million events repeat a few thousand names
        self._names: dict[str, str] = {}
        self._evicted_at: datetime | None = None
        self._last: datetime | None = None
        self._room_latest: dict[tuple[str, str], datetime] = {}
        self._rate = CommandRate()
        self._seen_commands: set[tuple[str, str]] = set()
        self._recent: deque[tuple[dict[str, _Meta], str, _Meta]] = deque()
        self._recent_cap = recent_messages
        #: (stale time, community, question id) of questions opened in rooms with nudges, earliest first
        self._deadlines: list[tuple[datetime, str, str]] = []
        #: per room: `stale_after`, or None where nudges are off (questions never go stale there)
        self._stale_after: dict[tuple[str, str], timedelta | bool | None] = {}
        self._self_ids = frozenset(settings.lien.self_ids)
        self._prefix = settings.lien.command_prefix
        self._max_recipients = min(settings.lien.max_recipients, HARD_MAX_RECIPIENTS)

    # ------------------------------------------------------------------------------------------------- input

    def feed(self, event: Event) -> None:
        """One event, dispatched as `Engine.handle` dispatches it (what only drives nudges and the guard is left)."""
        ts = event.ts
        if self._last is None or ts > self._last:
            self._last = ts
        if self._evicted_at is None or ts - self._evicted_at >= EVICT_EVERY:
            # The engine's hourly eviction, at the same events: closed, idle questions leave the tracker.
            self._go_stale(ts)
            self.tracker.evict(ts)
            self._evicted_at = ts
        kind = type(event)
        if kind is Message:
            self._message(event)  # type: ignore[arg-type]
        elif kind is Reaction:
            self._load(event.community, self.tracker.missing_refs(event))  # type: ignore[arg-type]
            self._apply(self.tracker.on_reaction(event), ts)  # type: ignore[arg-type]
        elif kind is Command:
            self._command(event)  # type: ignore[arg-type]
        elif kind is Edit:
            self._edit(event)  # type: ignore[arg-type]
        elif kind is Delete:
            self._load(event.community, [event.id])  # type: ignore[attr-defined]
            self._apply(self.tracker.on_delete(event), ts)  # type: ignore[arg-type]

    def history(self, until: datetime | None = None) -> History:
        """Every question (oldest first) and help edge (in time order), sorted as `storage.export` reads them.

        Questions are judged as of `until` (default: the last event): an unanswered one whose ladder would have
        ended by then is `stale`.
        """
        if until is None:
            until = self._last
        if until is not None:
            self._go_stale(until)
        questions = [q for comm in self._comms.values() for q in comm.questions.values()]
        questions.sort(key=lambda q: (q.asked_ts, q.community, q.id))
        self._edges.sort(key=lambda e: (e.ts, e.community, e.question, e.helper, e.kind))
        return questions, self._edges

    # --------------------------------------------------------------------------------------------- dispatch

    def _message(self, m: Message) -> None:
        if m.author in self._self_ids:
            return
        prefix = self._prefix
        text = m.text
        if not m.is_bot and text.startswith(prefix) and text[len(prefix) : len(prefix) + 1] in ("", " ", "\t"):
            self._command(parse_command(m, prefix))
            return
        community = m.community
        key = (community, m.room)
        latest = self._room_latest.get(key)
        # As the engine: a message older than the room's latest (or first in the room) that was stored before is a
        # copy brought back by a replay, and must not open a question again.
        if latest is None or m.ts < latest:
            if self.tracker.get(community, m.id) is None and self._known(community, m.id):
                return
            if latest is None:
                self._room_latest[key] = m.ts
        elif m.ts > latest:
            self._room_latest[key] = m.ts
        tracker = self.tracker
        if m.reply_to is not None or m.thread is not None:
            missing = tracker.missing_refs(m)
            if missing:
                self._load(community, missing)
        changes = tracker.on_message(m)
        self._keep(m)
        if changes:
            self._apply(changes, m.ts)

    def _edit(self, e: Edit) -> None:
        comm = self._comms.get(e.community)
        if self.tracker.get(e.community, e.id) is None and comm is not None and e.id in comm.questions:
            # An edit of a question that left the tracker must not open it again.
            self._load(e.community, [e.id])
        self._apply(self.tracker.on_edit(e), e.ts)

    def _command(self, cmd: Command) -> None:
        """The commands that change questions (`solved`, `not-a-question`, `forget-me`), admitted as
        `bot.commands.CommandRunner.run` admits them (once per event id, rate limit, refusals); the others change no
        history."""
        seen = self._seen_commands
        if (cmd.community, cmd.id) in seen:
            return  # a copy of a command already run
        seen.add((cmd.community, cmd.id))
        if not self._admitted(cmd):
            return
        name = cmd.name.lower()
        if name in ("solved", "not-a-question"):
            qid = cmd.args[0] if cmd.args else None
            if qid:
                self._load(cmd.community, [qid])
            if name == "solved":
                changes = self.tracker.resolve(cmd.community, cmd.room, cmd.author, qid, cmd.ts,
                                               moderator=cmd.is_admin)
            else:
                changes = self.tracker.withdraw(cmd.community, cmd.room, cmd.author, qid, cmd.ts)
            self._apply(changes, cmd.ts)
        elif name == "forget-me":
            self._forget(cmd.community, cmd.author)

    def _admitted(self, cmd: Command) -> bool:
        return self._rate.admits(cmd) and refusal(cmd, self._max_recipients) is None

    def _go_stale(self, now: datetime) -> None:
        """Questions still open past their ladder's end turn stale, as the engine's last nudge would make them."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, community, qid = heapq.heappop(deadlines)
            self.tracker.mark_stale(community, qid)

    # ---------------------------------------------------------------------------------------------- storage

    def _comm(self, community: str) -> _Community:
        comm = self._comms.get(community)
        if comm is None:
            comm = self._comms[community] = _Community()
        return comm

    def _keep(self, m: Message) -> None:
        """Remember the message's meta (as the engine stores it), forgetting the oldest beyond the cap."""
        comm = self._comms.get(m.community)
        if comm is None:
            comm = self._comm(m.community)
        kept = comm.messages
        intern = self._names.setdefault
        meta = (intern(m.room, m.room), intern(m.author, m.author), m.ts, m.reply_to, m.thread)
        mid = m.id
        if kept.setdefault(mid, meta) is not meta:  # one look-up in a large table, not two
            return  # the engine keeps the first
        recent = self._recent
        recent.append((kept, mid, meta))
        if len(recent) > self._recent_cap:
            kept, mid, meta = recent.popleft()
            if kept.get(mid) is meta:
                del kept[mid]

    def _known(self, community: str, message: str) -> bool:
        comm = self._comms.get(community)
        return comm is not None and (
            message in comm.questions or message in comm.answers or message in comm.messages)

    def _apply(self, changes: list[Change], now: datetime) -> None:
        """Record changes as `Engine._apply` writes them: the question's state, its answer links, its edges."""
        for ch in changes:
            q = ch.question
            comm = self._comm(q.community)
            kind = type(ch)
            if kind is Opened:
                self._opened(q)
            comm.questions[q.id] = q
            if kind is Linked:
                a = ch.answer  # type: ignore[union-attr]
                if not self._add_answer(comm, a):
                    continue  # the engine keeps the first link (and edge) of a message to a question
                if self._answered_by(comm, q, a):
                    continue  # one answer edge per (question, helper): the engine keeps the first
            self._edges.extend(edges_of(ch, now))

    def _opened(self, q: Question) -> None:
        intern = self._names.setdefault
        q.community, q.room = intern(q.community, q.community), intern(q.room, q.room)
        q.author = intern(q.author, q.author)
        key = (q.community, q.room)
        after = self._stale_after.get(key, False)
        if after is False:
            nudges = self.settings.room(q.community, q.room).nudges
            after = self._stale_after[key] = stale_after(nudges) if nudges.enabled else None
        if after is not None:
            heapq.heappush(self._deadlines, (q.asked_ts + after, q.community, q.id))

    def _add_answer(self, comm: _Community, a: Answer) -> bool:
        """Record an answer link unless the same message is already linked to the same question."""
        found = comm.answers.get(a.message)
        if found is None:
            comm.answers[a.message] = a
            return True
        links = found if isinstance(found, tuple) else (found,)
        if any(x.question == a.question for x in links):
            return False
        comm.answers[a.message] = (*links, a)
        return True

    @staticmethod
    def _answered_by(comm: _Community, q: Question, a: Answer) -> bool:
        """Did `a.author` already answer `q` with another message (so the engine already has their edge)?"""
        for mid in q.answers:
            if mid != a.message:
                for x in comm.answers_of(mid):
                    if x.question == q.id and x.author == a.author:
                        return True
        return False

    def _load(self, community: str, ids: Iterable[str]) -> None:
        """`Engine._load_refs` on memory: messages, questions and answers the tracker no longer holds."""
        comm = self._comms.get(community)
        if comm is None:
            return
        for mid in ids:
            q = comm.questions.get(mid)
            answers = list(comm.answers_of(mid))
            linked = [comm.questions.get(a.question) for a in answers]
            questions = [x for x in [q, *linked] if x is not None]
            for x in questions:
                if x.answers and self.tracker.get(community, x.id) is None:
                    # A question comes back with all its answers, as `Engine.start` loads live ones: later links
                    # and thanks refer to them.
                    answers += [a for m in x.answers for a in comm.answers_of(m) if a.question == x.id]
            kept = comm.messages.get(mid)
            meta = MessageMeta(community, kept[0], mid, *kept[1:]) if kept is not None else None
            if meta is None and q is not None:
                meta = MessageMeta(community, q.room, q.id, q.author, q.asked_ts, None, q.thread)
            elif meta is None and answers and linked and linked[0] is not None:
                meta = MessageMeta(community, linked[0].room, mid, answers[0].author, answers[0].ts)
            if meta is not None or questions or answers:
                self.tracker.remember([meta] if meta else [], questions, answers)

    def _forget(self, community: str, member: str) -> None:
        """`!lien forget-me`, as `SqlTx.forget_member` and `Engine.forget` apply it: the member's questions, answer
        links, messages and edges go; others' questions lose the member's answers and credits.

        A question that lost its first answer gets the next one as first answer, as the tracker does for the
        questions it holds (the database keeps the old one until the question changes again).
        """
        self.tracker.forget_member(community, member)
        comm = self._comms.get(community)
        if comm is None:
            return
        asked = {qid for qid, q in comm.questions.items() if q.author == member}
        theirs: set[str] = set()
        for mid in list(comm.answers):
            links = comm.answers_of(mid)
            kept = tuple(a for a in links if a.author != member and a.question not in asked)
            if any(a.author == member for a in links):
                theirs.add(mid)
            if not kept:
                del comm.answers[mid]
            elif len(kept) != len(links):
                comm.answers[mid] = kept if len(kept) > 1 else kept[0]
        for qid in asked:
            del comm.questions[qid]
        for mid in [mid for mid, kept in comm.messages.items() if kept[1] == member]:
            del comm.messages[mid]
        for q in comm.questions.values():
            if member in q.credited:
                q.credited.remove(member)
            if theirs.intersection(q.answers):  # a question the tracker no longer holds
                q.answers[:] = [mid for mid in q.answers if mid not in theirs]
                if q.answered_by in theirs:
                    links = [a for mid in q.answers for a in comm.answers_of(mid) if a.question == q.id]
                    first = min(links, key=lambda a: a.ts, default=None)
                    q.answered_by, q.first_answer_ts = (first.message, first.ts) if first else (None, None)
        self._edges = [e for e in self._edges
                       if e.community != community or (e.helper != member and e.asker != member)]


def replay_history(events: Iterable[Event], settings: Settings, *, until: datetime | None = None) -> History:
    """Replay `events` (in time order) in memory and return every question and help edge (see the module doc).

    `until` is when the questions are judged (default: the last event); `lien simulate` judges them 7 days later.
    """
    replay = HistoryReplay(settings)
    with cycle_collector_paused():
        for event in events:
            replay.feed(event)
        return replay.history(until)
