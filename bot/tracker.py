"""The question tracker: lien's in-memory, deterministic working state of questions and their answers.

It reads events in order and says what changed (`Opened`, `Linked`, `Resolved`, `Withdrawn`). It does no I/O,
has no clock and keeps no text: the engine persists the changes and feeds back what it loads from storage
(`missing_refs` then `remember`). Memory is bounded: a window of recent messages per room, a small cache of
loaded messages, and the live questions; closed questions are dropped by `evict` once idle longer than `linger`
(a heap of closed questions, so that eviction does not walk the open ones).

It runs on every message, so the per-message path is kept short: state is held per community (no tuple keys),
times are compared as integer microseconds (`bot.linking.micros`), each text is read once (`Reading`), and
look-ups go through indexes (askers by nick, the window's latest message per author) rather than scans.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from heapq import heappop, heappush
from types import MappingProxyType

from bot.config import QuestionSettings, Settings
from bot.detection import Reading
from bot.events import Delete, Edit, Message, Reaction
from bot.linking import (
    Link,
    LinkRules,
    Role,
    RoomWindow,
    Seen,
    conversation_link,
    engaged,
    first_reply_link,
    micros,
)
from bot.model import Answer, MessageMeta, QState, Question

__all__ = [
    "RESOLVING_EMOJI",
    "SOLVING_EMOJI",
    "STRUCTURED_PLATFORMS",
    "Change",
    "Linked",
    "Opened",
    "QuestionTracker",
    "Resolved",
    "Withdrawn",
]


@dataclass(frozen=True, slots=True)
class Opened:
    """A message was taken for a question."""

    question: Question


@dataclass(frozen=True, slots=True)
class Linked:
    """A message was linked to a question as an answer (the first one turns it `answered`)."""

    question: Question
    answer: Answer


@dataclass(frozen=True, slots=True)
class Resolved:
    """The asker (or a moderator, `by`) marked the question solved; `credited` are the newly credited authors."""

    question: Question
    by: str
    credited: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """The question was deleted or declared not a question."""

    question: Question


Change = Opened | Linked | Resolved | Withdrawn

#: Reactions by which an asker marks an answer (or the question) solved; skin tones and VS16 are ignored.
SOLVING_EMOJI = frozenset(
    {"✅", "✔", "☑", "✓", "white_check_mark", "heavy_check_mark", "ballot_box_with_check", "check"}
)
#: Approving reactions: they resolve only on a message already linked as an answer (or on the question).
RESOLVING_EMOJI = SOLVING_EMOJI | frozenset(
    {"👍", "🙏", "💯", "🆗", "🎉", "🙌", "❤", "+1", "thumbsup", "thumbs_up", "pray", "100", "ok", "tada", "heart"}
)
_EMOJI_NOISE = str.maketrans("", "", "\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff:")

# Enum members are looked up once: on Python 3.11 `Role.X` goes through the enum metaclass's __getattr__
# hook, which costs as much as a function call, and these sit on the per-message path.
_NONE, _QUESTION, _FOLLOW, _ANSWER = Role.NONE, Role.QUESTION, Role.FOLLOW, Role.ANSWER
_OPEN, _ANSWERED, _RESOLVED, _STALE, _WITHDRAWN = (
    QState.OPEN,
    QState.ANSWERED,
    QState.RESOLVED,
    QState.STALE,
    QState.WITHDRAWN,
)
_MENTION = Link.MENTION
_POSITION = Link.POSITION
_REACTION = Link.REACTION
_REPLY = Link.REPLY
_THREAD = Link.THREAD
_TURN = Link.TURN

#: Platforms with a reply button and threads: there, an answer without a reply is the exception, so answers
#: are linked by position only cautiously (see `bot.linking.first_reply_link`).
STRUCTURED_PLATFORMS = frozenset({"discord", "matrix", "console"})
#: States in which a question still takes answers (a tuple: membership by identity is the fastest test).
_LINKABLE = (_OPEN, _ANSWERED, _STALE)
#: States a withdraw or resolve command may act on.
_CLOSABLE = _LINKABLE
#: At most this many answers (and as many follow-ups) are linked to one question, so memory stays bounded.
MAX_ANSWERS = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
#: The asker's unaddressed messages count as follow-ups of their question within this time of its last activity
#: (in microseconds, like every time the tracker compares).
_FOLLOW_UP = timedelta(minutes=30) // _MICRO
#: A new question by an asker whose earlier question is still unanswered and this recent is a follow-up of it:
#: people ask again, or in other words, when nobody answered.
_REASK = timedelta(minutes=30) // _MICRO
#: A message edited into a question opens one only if the edit comes this soon and the message is this recent.
_EDIT_WINDOW = timedelta(minutes=15)
_EDIT_MESSAGES = 10
#: Messages loaded from storage kept for reply and reaction lookups.
_COLD_SIZE = 4096
#: Every this many `evict` calls, every held question is looked at (not only the closed ones on the heap).
_FULL_SWEEP = 24
_NO_ANSWERS: Mapping[str, tuple[str, datetime]] = MappingProxyType({})
_HOW = {how: how.value for how in Link}


class _Info:
    """Tracker-side bookkeeping of one question; it is also the question the positional rules see."""

    __slots__ = ("answers", "asked_t", "author", "follows", "id", "last", "q", "room", "seq")

    def __init__(self, q: Question, room: tuple[str, str], seq: int, last: int, asked_t: int | None = None) -> None:
        self.q = q
        self.id = q.id
        self.author = q.author
        self.room = room
        #: the question's position in its room (0 when it was loaded without its message)
        self.seq = seq
        #: `q.asked_ts` in microseconds (the caller may know it already)
        self.asked_t = micros(q.asked_ts) if asked_t is None else asked_t
        #: time of the latest activity, in microseconds
        self.last = last
        #: answer message id -> (author, ts); a shared empty mapping until the first answer
        self.answers: Mapping[str, tuple[str, datetime]] = _NO_ANSWERS
        #: ids of the asker's follow-ups (at most MAX_ANSWERS), once there is one
        self.follows: list[str] | None = None

    def own_answer(self, message: str, author: str, ts: datetime) -> None:
        """Record an answer."""
        answers = self.answers
        if not isinstance(answers, dict):
            answers = self.answers = {}
        answers[message] = (author, ts)

    def drop_answer(self, message: str) -> None:
        """Forget an answer (the caller knows it is recorded)."""
        answers = self.answers
        assert isinstance(answers, dict)
        del answers[message]

    def owned(self) -> Iterator[str]:
        """Ids of the messages that belong to this question: itself, its answers and its follow-ups."""
        yield self.id
        yield from self.answers
        yield from self.follows or ()

    @property
    def answered(self) -> bool:
        """The question has an answer and is not resolved yet."""
        return self.q.state is _ANSWERED


class _Community:
    __slots__ = ("info", "owner")

    def __init__(self) -> None:
        #: question id -> bookkeeping
        self.info: dict[str, _Info] = {}
        #: message id -> question id, for the question, its follow-ups and its answers
        self.owner: dict[str, str] = {}


class _Room:
    """One room's window, recent ids and live questions; it answers the positional rules' look-ups."""

    __slots__ = (
        "asked",
        "asked_low",
        "community",
        "info",
        "key",
        "last",
        "owner",
        "qs",
        "seen",
        "seen_cap",
        "seen_order",
        "threads",
        "window",
    )

    def __init__(self, community: str, room: str, comm: _Community, window: int) -> None:
        self.community = community
        #: (community, room): the room's key, shared by its questions' bookkeeping
        self.key = (community, room)
        self.info = comm.info
        self.owner = comm.owner
        self.window = RoomWindow(window)
        self.seen: set[str] = set()
        self.seen_order: deque[str] = deque()
        self.seen_cap = max(4 * window, 256)
        #: author -> ids of their linkable questions in this room, oldest first
        self.asked: dict[str, list[str]] = {}
        #: lower-cased author -> the authors in `asked` with that nick, in the order they entered it
        self.asked_low: dict[str, dict[str, None]] = {}
        #: thread id -> latest question asked in that thread
        self.threads: dict[str, str] = {}
        #: time of the latest message, in microseconds
        self.last: int | None = None
        #: the room's question settings (cleared when the settings change)
        self.qs: QuestionSettings | None = None

    def mark_seen(self, id: str) -> None:
        self.seen.add(id)
        order = self.seen_order
        order.append(id)
        if len(order) > self.seen_cap:
            self.seen.discard(order.popleft())

    def add_asked(self, author: str, qid: str) -> None:
        ids = self.asked.get(author)
        if ids is None:
            self.asked[author] = [qid]
            self.asked_low.setdefault(author.lower(), {})[author] = None
        else:
            ids.append(qid)

    def remove_asked(self, author: str, qid: str) -> None:
        ids = self.asked.get(author)
        if ids and qid in ids:
            ids.remove(qid)
            if not ids:
                self.drop_asker(author)

    def drop_asker(self, author: str) -> None:
        if self.asked.pop(author, None) is not None:
            low = author.lower()
            same = self.asked_low[low]
            del same[author]
            if not same:
                del self.asked_low[low]

    def asker_named(self, low: str) -> str | None:
        """The asker whose lower-cased nick is `low`."""
        same = self.asked_low.get(low)
        return next(iter(same)) if same else None

    def latest_asked(self, author: str, before_seq: int | None = None) -> _Info | None:
        """The author's latest linkable question in the room (asked before position `before_seq`)."""
        ids = self.asked.get(author)
        if not ids:
            return None
        info_of = self.info
        for qid in reversed(ids):
            info = info_of.get(qid)
            if info is not None and info.q.state in _LINKABLE and (before_seq is None or info.seq < before_seq):
                return info
        return None

    def live(self, question: str) -> _Info | None:
        """The question if it still takes answers."""
        info = self.info.get(question)
        return info if info is not None and info.q.state in _LINKABLE else None

    def asked_by(self, author: str, before_seq: int) -> _Info | None:
        """`author`'s latest linkable question asked before position `before_seq`."""
        return self.latest_asked(author, before_seq)


class QuestionTracker:
    """Which messages are questions, which messages answer them, and when they are resolved or withdrawn."""

    def __init__(
        self,
        settings: Settings,
        *,
        window: int = 50,
        linger: timedelta = timedelta(days=3),
        rules: LinkRules | None = None,
    ) -> None:
        self._rooms: dict[tuple[str, str], _Room] = {}
        self.settings = settings
        self._window = window
        self._linger = linger
        self._rules = rules or LinkRules()
        self._comms: dict[str, _Community] = {}
        #: (last activity, community, question id) of questions that left the open state, earliest first
        self._closed: list[tuple[int, str, str]] = []
        self._evictions = 0
        self._cold: OrderedDict[tuple[str, str], MessageMeta] = OrderedDict()

    @property
    def settings(self) -> Settings:
        """The configuration in force; assigning a new one takes effect on the next event."""
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings
        self._ignored_ids = frozenset(settings.lien.self_ids) | frozenset(settings.lien.bot_ids)
        self._prefix = settings.lien.command_prefix
        for room in self._rooms.values():
            room.qs = None

    # ----------------------------------------------------------------------------------------------- reads

    def get(self, community: str, question: str) -> Question | None:
        """The tracked question, if held."""
        comm = self._comms.get(community)
        info = comm.info.get(question) if comm is not None else None
        return info.q if info else None

    def open_questions(self) -> Iterator[Question]:
        """Questions still open (not answered, resolved, stale or withdrawn)."""
        infos = [i for comm in self._comms.values() for i in comm.info.values()]
        return (i.q for i in infos if i.q.state is _OPEN)

    def held(self) -> dict[str, int]:
        """How much the tracker holds in memory, by kind (for monitoring and the memory-bound tests)."""
        return {
            "rooms": len(self._rooms),
            "questions": sum(len(c.info) for c in self._comms.values()),
            "owned_ids": sum(len(c.owner) for c in self._comms.values()),
            "cached_messages": len(self._cold),
            "window_messages": sum(len(r.window) for r in self._rooms.values()),
            "seen_ids": sum(len(r.seen) for r in self._rooms.values()),
        }

    def missing_refs(self, m: Message | Reaction) -> list[str]:
        """Message ids `m` refers to (reply, thread root, reacted message) that the tracker does not hold."""
        if isinstance(m, Reaction):
            refs = [m.message]
        else:
            reply_to, thread, mid = m.reply_to, m.thread, m.id
            if reply_to is None and (thread is None or thread == mid):
                return []  # the common case, said before anything is looked up
            if self._ignored(m.author, m.is_bot, m.text):
                return []
            refs = [r for r in (reply_to, thread) if r is not None and r != mid]
            if not refs:
                return []
        room = self._rooms.get((m.community, m.room))
        return [r for r in dict.fromkeys(refs) if not self._holds(m.community, room, r)]

    # ------------------------------------------------------------------------------------------ warm start

    def remember(self, metas: Iterable[MessageMeta], questions: Iterable[Question], answers: Iterable[Answer]) -> None:
        """Load state from storage: recent messages (warm start, or ones `missing_refs` named), live questions
        and their answers. Already-held items are left as they are."""
        for meta in sorted(metas, key=lambda x: x.ts):
            key = (meta.community, meta.id)
            self._cold[key] = meta
            self._cold.move_to_end(key)
            room = self._room(meta.community, meta.room)
            newest = room.window.newest()
            t = micros(meta.ts)
            if meta.id not in room.window and (newest is None or newest.t <= t):
                seen = Seen(meta.id, meta.author, meta.ts, t, room.window.next_seq(), meta.reply_to, meta.thread)
                self._reattach(room, seen)
                room.window.push(seen)
                room.mark_seen(meta.id)
                if meta.reply_to or (meta.thread and meta.thread != meta.id):
                    room.window.structured = True
        while len(self._cold) > _COLD_SIZE:
            self._cold.popitem(last=False)
        for q in sorted(questions, key=lambda x: x.asked_ts):
            room = self._room(q.community, q.room)
            if q.id in room.info:
                continue
            seen = room.window.get(q.id)
            seq = seen.seq if seen else 0
            last = max([q.asked_ts, *(t for t in (q.first_answer_ts, q.resolved_ts) if t is not None)])
            info = room.info[q.id] = _Info(q, (q.community, q.room), seq, micros(last))
            room.owner[q.id] = q.id
            if q.state is not _OPEN:
                self._closing(info)
            if seen is not None:
                seen.role, seen.question = _QUESTION, q.id
                room.window.note_question(seen)
            if q.state in _LINKABLE:
                room.add_asked(q.author, q.id)
            if q.thread is not None:
                room.threads[q.thread] = q.id
        for a in sorted(answers, key=lambda x: x.ts):
            comm = self._comms.get(a.community)
            info = comm.info.get(a.question) if comm is not None else None
            if comm is None or info is None or a.message in info.answers:
                continue
            info.own_answer(a.message, a.author, a.ts)
            comm.owner[a.message] = info.id
            info.last = max(info.last, micros(a.ts))
            seen = self._rooms[info.room].window.get(a.message)
            if seen is not None:
                seen.role, seen.question = _ANSWER, info.q.id

    # ----------------------------------------------------------------------------------------------- events

    def on_message(self, m: Message) -> list[Change]:
        """Take `m` for a question, an answer to tracked questions, a thanks that resolves one, or nothing."""
        author = m.author
        if m.is_bot or author in self._ignored_ids or m.text.lstrip().startswith(self._prefix):
            return []
        c = m.community
        room = self._rooms.get((c, m.room))
        if room is None:
            room = self._room(c, m.room)
        mid = m.id
        ids = room.seen
        if mid in ids or mid in room.owner:
            return []
        ids.add(mid)
        order = room.seen_order
        order.append(mid)
        if len(order) > room.seen_cap:
            ids.discard(order.popleft())
        ts = m.ts
        t = (ts - _EPOCH) // _MICRO  # micros(ts), inlined
        last = room.last
        if last is None or t > last:
            room.last = t
        win = room.window
        reply_to = m.reply_to
        thread = m.thread
        threaded = thread is not None and thread != mid
        if not win.structured and (reply_to is not None or threaded or m.platform in STRUCTURED_PLATFORMS):
            win.structured = True
        text = Reading(m.text)
        # Whom `m` addresses: mentions, and a leading nick that names a recent author or an asker.
        token = text.nick
        mentions = m.mentions
        if mentions or token is not None:
            to = [a for a in mentions if a != author] if mentions else []
            if token is not None:
                who = win.resolve(token, room.asker_named)
                if who is not None and who != author and who not in to:
                    to.append(who)
            addressed = bool(to) or token is not None
            # Addressed messages never open a question nor answer by position: the text tests are skipped.
            helps = False if addressed else text.help()
            seen = Seen(mid, author, ts, t, win.seq + 1, reply_to, thread, tuple(to), None, _NONE, addressed, helps)
        else:
            addressed = False
            seen = Seen(mid, author, ts, t, win.seq + 1, reply_to, thread, (), None, _NONE, False, text.help())
        win.seq += 1
        qs = room.qs
        if qs is None:
            qs = room.qs = self._settings.room(c, m.room).questions
        mode = qs.mode
        changes: list[Change] = []
        # Only replies, thread messages and addressed messages can be placed explicitly.
        handled = (reply_to is not None or threaded or bool(seen.to)) and self._explicit(m, room, seen, text, changes)
        # A reply may open a question (or answer by position) only when it replies to its author's own message.
        own = not addressed and (reply_to is None or self._own_message(room, m))
        asks = mode == "auto" and own and text.question(qs.min_words)
        seen.asks = asks
        implicit = not handled and not addressed and reply_to is None
        mine = self._implicit(m, room, seen, text, asks, changes) if implicit else None
        if seen.role is _NONE and own and mode != "off":
            if mode == "every_thread":
                self._open_every_thread(m, room, seen, changes)
            elif asks:  # otherwise nothing opens
                self._maybe_open(m, room, seen, mine if implicit else room.latest_asked(author), changes)
        win.push(seen)
        return changes

    def on_reaction(self, r: Reaction) -> list[Change]:
        """The asker's approving reaction on an answer (or on the question) resolves it, crediting the answer's
        author; on a recent message by someone else it also links that message as the answer."""
        emoji = r.emoji.translate(_EMOJI_NOISE).lower()
        if r.author in self._ignored_ids or emoji not in RESOLVING_EMOJI:
            return []
        c = r.community
        comm = self._comms.get(c)
        qid = comm.owner.get(r.message) if comm is not None else None
        if comm is not None and qid is not None:
            info = comm.info[qid]
            q = info.q
            if r.author != q.author:
                return []
            if r.message == q.id:
                done = self._resolve(info, r.author, (), r.ts)
                return [done] if done else []
            answer = info.answers.get(r.message)
            if answer is None:
                return []  # a follow-up of the asker's own
            done = self._resolve(info, r.author, (answer[0],), r.ts)
            return [done] if done else []
        # A message lien did not link: if the asker marks it solving, it answered their latest question.
        room = self._rooms.get((c, r.room))
        if room is None or emoji not in SOLVING_EMOJI:
            return []
        target = self._meta(room, r.message)
        info = room.latest_asked(r.author)
        if target is None or info is None or target[0] == r.author or target[1] < info.q.asked_ts:
            return []
        changes: list[Change] = []
        linked = self._link(room.owner, info, r.message, target[0], target[1], _REACTION)
        if linked is not None:
            changes.append(linked)
            seen = room.window.get(r.message)
            if seen is not None:
                seen.role, seen.question = _ANSWER, info.q.id
        done = self._resolve(info, r.author, (target[0],), r.ts)
        if done is not None:
            changes.append(done)
        return changes

    def on_edit(self, e: Edit) -> list[Change]:
        """A very recent, untracked, unaddressed message edited into a question opens one (auto mode only)."""
        room = self._rooms.get((e.community, e.room))
        if room is None or self._settings.room(e.community, e.room).questions.mode != "auto":
            return []
        seen = room.window.get(e.id)
        if (
            seen is None
            or seen.role is not _NONE
            or seen.to
            or seen.reply_to is not None
            or e.ts - seen.ts > _EDIT_WINDOW
            or room.window.seq - seen.seq >= _EDIT_MESSAGES
            or e.id in room.owner
            or e.text.lstrip().startswith(self._prefix)
        ):
            return []
        if seen.thread is not None and self._thread_question(room, seen.thread) is not None:
            return []
        if not Reading(e.text).question(self._settings.room(e.community, e.room).questions.min_words):
            return []
        return [self._open(e.room, room, seen)]

    def on_delete(self, d: Delete) -> list[Change]:
        """Deleting an open, answered or stale question withdraws it."""
        comm = self._comms.get(d.community)
        info = comm.info.get(d.id) if comm is not None else None
        if info is None:
            return []
        return self._withdraw(info)

    # --------------------------------------------------------------------------------------------- commands

    def withdraw(self, community: str, room: str, author: str, question: str | None, ts: datetime) -> list[Change]:
        """`!lien not-a-question`: withdraw the author's given question, or their latest one in the room."""
        info = self._pick(community, room, author, question)
        if info is None or info.q.author != author:
            return []
        info.last = max(info.last, micros(ts))
        return self._withdraw(info)

    def resolve(
        self,
        community: str,
        room: str,
        author: str,
        question: str | None,
        ts: datetime,
        *,
        moderator: bool = False,
    ) -> list[Change]:
        """`!lien solved`: the asker (or a moderator, naming the question) marks a question resolved."""
        info = self._pick(community, room, author, question)
        if info is None or (info.q.author != author and not moderator):
            return []
        done = self._resolve(info, author, (), ts)
        return [done] if done else []

    def mark_stale(self, community: str, question: str) -> Question | None:
        """An open question ran past its last nudge: it becomes stale (still takes answers); None otherwise."""
        comm = self._comms.get(community)
        info = comm.info.get(question) if comm is not None else None
        if info is None or info.q.state is not _OPEN:
            return None
        info.q.state = _STALE
        self._closing(info)
        return info.q

    def forget_member(self, community: str, member: str) -> None:
        """Drop every in-memory trace of a member: their questions, their messages, their answers and credits."""
        comm = self._comms.get(community)
        for qid, info in list(comm.info.items()) if comm is not None else ():
            q = info.q
            if q.author == member:
                self._drop(comm, qid, info)
                continue
            theirs = [mid for mid, (author, _) in info.answers.items() if author == member]
            for mid in theirs:
                info.drop_answer(mid)
                comm.owner.pop(mid, None)
                if mid in q.answers:
                    q.answers.remove(mid)
            if theirs:
                first = min(info.answers.items(), key=lambda kv: kv[1][1], default=None)
                q.answered_by, q.first_answer_ts = (first[0], first[1][1]) if first else (None, None)
            if member in q.credited:
                q.credited.remove(member)
        for rkey, room in self._rooms.items():
            if rkey[0] == community:
                room.window.forget(member)
                room.drop_asker(member)
        for key in [k for k, meta in self._cold.items() if k[0] == community and meta.author == member]:
            del self._cold[key]

    def evict(self, now: datetime) -> None:
        """Drop questions that are no longer open and idle longer than `linger`, and idle empty rooms."""
        horizon = micros(now - self._linger)
        self._evictions += 1
        if self._evictions % _FULL_SWEEP == 0:
            # The heap only learns of closings made through the tracker: now and then, look at every question.
            for comm in self._comms.values():
                for qid, info in list(comm.info.items()):
                    if info.q.state is not _OPEN and info.last < horizon:
                        self._drop(comm, qid, info)
        closed = self._closed
        while closed and closed[0][0] < horizon:
            _, community, qid = heappop(closed)
            comm = self._comms.get(community)
            info = comm.info.get(qid) if comm is not None else None
            if info is None or info.q.state is _OPEN:
                continue
            if info.last >= horizon:
                heappush(closed, (info.last, community, qid))  # active since it closed: look again later
                continue
            self._drop(comm, qid, info)
        for rkey, room in list(self._rooms.items()):
            if not room.asked and not room.threads and (room.last is None or room.last < horizon):
                del self._rooms[rkey]

    # ------------------------------------------------------------------------------------------- internals

    def _reattach(self, room: _Room, seen: Seen) -> None:
        """A message loaded from storage: give it back its place relative to the question it belongs to."""
        qid = room.owner.get(seen.id)
        info = room.info.get(qid) if qid is not None else None
        if info is None:
            return
        seen.question = info.q.id
        if seen.id == info.q.id:
            seen.role = _QUESTION
            info.seq = seen.seq
        else:
            seen.role = _ANSWER if seen.id in info.answers else _FOLLOW

    def _ignored(self, author: str, is_bot: bool, text: str) -> bool:
        return is_bot or author in self._ignored_ids or text.lstrip().startswith(self._prefix)

    def _room(self, community: str, room: str) -> _Room:
        key = (community, room)
        found = self._rooms.get(key)
        if found is None:
            comm = self._comms.get(community)
            if comm is None:
                comm = self._comms[community] = _Community()
            found = self._rooms[key] = _Room(community, room, comm, self._window)
        return found

    def _holds(self, community: str, room: _Room | None, id: str) -> bool:
        if room is not None and id in room.window:  # the cheapest test first
            return True
        comm = self._comms.get(community)
        return (comm is not None and id in comm.owner) or (community, id) in self._cold

    def _meta(self, room: _Room, id: str) -> tuple[str, datetime] | None:
        """(author, ts) of a message the tracker holds."""
        seen = room.window.get(id)
        if seen is not None:
            return seen.author, seen.ts
        meta = self._cold.get((room.community, id))
        if meta is not None:
            return meta.author, meta.ts
        qid = room.owner.get(id)
        if qid is not None:
            info = room.info[qid]
            if id == qid:
                return info.q.author, info.q.asked_ts
            if id in info.answers:
                return info.answers[id]
        return None

    def _thread_question(self, room: _Room, thread: str) -> _Info | None:
        qid = room.owner.get(thread) or room.threads.get(thread)
        return room.info.get(qid) if qid is not None else None

    def _explicit(self, m: Message, room: _Room, seen: Seen, text: Reading, changes: list[Change]) -> bool:
        """Replies, threads and mentions. True when `m` was placed relative to some question."""
        placed = False
        contexts: list[tuple[_Info, str | None, Link]] = []
        if m.reply_to is not None:
            qid = room.owner.get(m.reply_to)
            info = room.info.get(qid) if qid is not None else None
            if info is not None and info.q.state in _LINKABLE:
                contexts.append((info, m.reply_to, _REPLY))
            elif info is None:
                placed |= self._reply_to_untracked(m, room, seen, text, changes)
        if m.thread is not None and m.thread != m.id:
            info = self._thread_question(room, m.thread)
            # (`contexts` holds at most the reply's question here)
            if info is not None and info.q.state in _LINKABLE and (not contexts or contexts[0][0] is not info):
                contexts.append((info, None, _THREAD))
        for info, target, how in contexts:
            placed = True
            q = info.q
            if m.author == q.author:
                self._asker_speaks(m, room, seen, text, info, target, changes)
            elif target is None or target == q.id or target not in info.answers or info.answers[target][0] == m.author:
                # a reply to the question, to the asker's follow-up, to one's own answer, or in the thread
                self._add(changes, self._link(room.owner, info, m.id, m.author, m.ts, how), seen, info)
        for who in seen.to:
            placed |= self._addressed(m, room, seen, text, who, changes)
        return placed

    def _reply_to_untracked(self, m: Message, room: _Room, seen: Seen, text: Reading, changes: list[Change]) -> bool:
        """The asker replying to someone's message after asking: that message answered them."""
        target = self._meta(room, m.reply_to or "")
        info = room.latest_asked(m.author)
        if target is None or info is None or target[0] == m.author or target[1] < info.q.asked_ts:
            return False
        s = room.window.get(m.reply_to or "")
        if s is not None and not self._speaks_to(room, s, m.author):
            return False
        self._credit_turn(m, room, seen, text, info, target[0], m.reply_to, changes)
        return True

    def _speaks_to(self, room: _Room, s: Seen, author: str) -> bool:
        """`s` is said to everyone or to `author` (not addressed or replying to someone else)."""
        if s.addressed and author not in s.to:
            return False
        if s.reply_to is not None:
            target = self._meta(room, s.reply_to)
            return target is not None and target[0] == author
        return True

    def _asker_speaks(
        self,
        m: Message,
        room: _Room,
        seen: Seen,
        text: Reading,
        info: _Info,
        target: str | None,
        changes: list[Change],
    ) -> None:
        """The asker replied in their question's context: a thanks resolves it, anything else follows it up."""
        if text.thanks():
            if target is not None and target in info.answers:
                credit: tuple[str, ...] = (info.answers[target][0],)
            elif seen.to:
                credit = seen.to
            else:
                credit = tuple(dict.fromkeys(a for a, _ in info.answers.values()))
            self._add(changes, self._resolve(info, m.author, credit, m.ts), seen, info, _FOLLOW)
            if seen.role is not _NONE:
                return
        self._follow(room.owner, info, seen)

    def _addressed(self, m: Message, room: _Room, seen: Seen, text: Reading, who: str, changes: list[Change]) -> bool:
        """`m` addresses `who`: an answer to `who`'s question, or the asker answering / thanking `who`."""
        placed = False
        mine = room.latest_asked(m.author, seen.seq)
        recent = mine is not None and seen.t - mine.last <= _FOLLOW_UP * 4
        helped_me = recent and mine is not None and any(a == who for a, _ in mine.answers.values())
        theirs = room.latest_asked(who, seen.seq)
        if (
            theirs is not None
            and theirs.q.author != m.author
            and not helped_me  # talking back to one's own helper is not answering their question
            and (m.thread is None or theirs.q.thread in (None, m.thread))
        ):
            self._add(changes, self._link(room.owner, theirs, m.id, m.author, m.ts, _MENTION), seen, theirs)
            placed = True
        if recent and mine is not None:
            placed |= self._credit_turn(m, room, seen, text, mine, who, None, changes)
        return placed

    def _credit_turn(
        self,
        m: Message,
        room: _Room,
        seen: Seen,
        text: Reading,
        info: _Info,
        helper: str,
        target: str | None,
        changes: list[Change],
    ) -> bool:
        """The asker addresses `helper` (or replies to `target` by them): `helper` spoke to them, so their latest
        message since the question is an answer; a thanks also resolves the question crediting them."""
        answer_id = target
        answer_ts: datetime | None = None
        if answer_id is None and helper not in (a for a, _ in info.answers.values()):
            for s in room.window.newest_first():
                if s.seq <= info.seq:
                    break
                if s.author == helper and s.thread == m.thread and (m.author in s.to or (not s.to and s.role is _NONE)):
                    answer_id = s.id
                    break
        if answer_id is not None:
            meta = self._meta(room, answer_id)
            if meta is not None:
                answer_ts = meta[1]
                linked = self._link(room.owner, info, answer_id, helper, answer_ts, _TURN)
                if linked is not None:
                    changes.append(linked)
                    s = room.window.get(answer_id)
                    if s is not None and s.role is _NONE:
                        s.role, s.question = _ANSWER, info.q.id
        if text.thanks() and (info.answers or answer_ts is not None):
            self._add(changes, self._resolve(info, m.author, (helper,), m.ts), seen, info, _FOLLOW)
        elif seen.role is _NONE:
            self._follow(room.owner, info, seen)
        return True

    def _turn_taken(self, m: Message, room: _Room, seen: Seen, mine: _Info, changes: list[Change]) -> None:
        """Asker, someone, asker again: the one message in between, by someone else and to nobody else, was a
        reply to the asker (often a question back), and the asker's message answers it in turn."""
        recent = room.window.newest_first()
        between = next(recent, None)
        before = next(recent, None)
        if (
            between is None
            or before is None
            or before.author != m.author
            or between.author == m.author
            or between.seq <= mine.seq
            or between.thread != m.thread
            or between.help
            or between.reply_to is not None
            or (between.addressed and m.author not in between.to)
            or between.role not in (_NONE, _QUESTION)
            # Where replies exist, a question asked in between is someone else's new question.
            or (between.role is _QUESTION and room.window.structured)
            or seen.t - between.t > self._rules.conversation_us
        ):
            return
        linked = self._link(room.owner, mine, between.id, between.author, between.ts, _TURN)
        if linked is None:
            return
        changes.append(linked)
        if between.role is _QUESTION and between.question is not None:
            theirs = room.info.get(between.question)
            if theirs is not None:
                changes.extend(
                    c for c in [self._link(room.owner, theirs, m.id, m.author, m.ts, _TURN)] if c is not None
                )
        else:
            between.role, between.question = _ANSWER, mine.q.id

    def _implicit(
        self, m: Message, room: _Room, seen: Seen, text: Reading, asks: bool, changes: list[Change]
    ) -> _Info | None:
        """An unaddressed message without reply or thread link: the asker following up, or a positional answer.
        Returns the author's latest linkable question in the room, when they have one."""
        author = seen.author
        mine = room.latest_asked(author) if author in room.asked else None
        if mine is not None and seen.t - mine.last <= _FOLLOW_UP and mine.q.thread == m.thread:
            self._turn_taken(m, room, seen, mine, changes)
            if text.thanks():
                credit = tuple(dict.fromkeys(a for a, _ in mine.answers.values()))
                self._add(changes, self._resolve(mine, m.author, credit, m.ts), seen, mine, _FOLLOW)
            elif not asks or (mine.q.state is _OPEN and seen.t - mine.asked_t <= _REASK):
                self._follow(room.owner, mine, seen)
            return mine
        win = room.window
        rules = self._rules
        # The positional rules' own first tests, made here: most messages fail them, and a call costs more.
        if author in win.addressed_to or author in win.latest_by:
            found = conversation_link(win, author, seen.t, seen.seq, m.thread, room, rules)
        else:
            found = None  # nobody addressed the author and they did not speak lately: no conversation to carry on
        if found is None:
            # Chatter and a new help request answer nothing; nor does a question about one's own situation.
            if seen.help or (asks and win.structured) or win.last_question < seen.seq - rules.first_reply_messages:
                return mine
            q = first_reply_link(win, author, seen.t, seen.seq, m.thread, room, rules, asks=asks)
            if q is None or text.chatter() or (asks and text.personal()):
                return mine
            found = q, _POSITION
        info = room.info[found[0].id]
        self._add(changes, self._link(room.owner, info, m.id, m.author, m.ts, found[1]), seen, info)
        return mine

    def _own_message(self, room: _Room, m: Message) -> bool:
        """`m` replies to a message by its own author."""
        target = self._meta(room, m.reply_to) if m.reply_to is not None else None
        return target is not None and target[0] == m.author

    def _open_every_thread(self, m: Message, room: _Room, seen: Seen, changes: list[Change]) -> None:
        """Mode `every_thread`: the first message of a thread (an unaddressed one, not a reply to someone else's
        message) opens a question."""
        if m.thread is None:
            return
        if m.thread != m.id:
            if self._thread_question(room, m.thread) is not None:
                return
            root = room.window.get(m.thread)
            if root is not None and root.role is _NONE and root.author != m.author:
                # The thread grew from a message we saw: that root is the question, `m` its first answer.
                changes.append(self._open(m.room, room, root, thread=m.thread))
                info = room.info[m.thread]
                self._add(changes, self._link(room.owner, info, m.id, m.author, m.ts, _THREAD), seen, info)
                return
            if self._holds(m.community, room, m.thread):
                return
        changes.append(self._open(m.room, room, seen, thread=m.thread))

    def _maybe_open(self, m: Message, room: _Room, seen: Seen, mine: _Info | None, changes: list[Change]) -> None:
        """Mode `auto`: `m` (unaddressed, not a reply to someone else's message) asks something: it opens a question
        unless it belongs to a thread's question, a conversation, or the asker's recent question. `mine` is the
        author's latest linkable question in the room (as `_implicit` found it: nothing it does after changes it)."""
        if m.thread is not None and m.thread != m.id and self._thread_question(room, m.thread) is not None:
            return
        if m.reply_to is None and m.thread is None and engaged(room.window, m.author, seen.t, seen.seq, self._rules):
            return
        if mine is not None and mine.q.state is _OPEN and seen.t - mine.asked_t <= _REASK and mine.q.thread == m.thread:
            self._follow(room.owner, mine, seen)
            return
        changes.append(self._open(m.room, room, seen, thread=m.thread))

    def _open(self, room_id: str, room: _Room, seen: Seen, *, thread: str | None = None) -> Opened:
        qid = seen.id
        q = Question(room.community, qid, room_id, seen.author, seen.ts, thread=thread or seen.thread)
        room.info[qid] = _Info(q, room.key, seen.seq, seen.t, seen.t)
        room.owner[qid] = qid
        seen.role, seen.question = _QUESTION, qid
        win = room.window
        if seen.seq > win.last_question:  # `RoomWindow.note_question`, inlined
            win.last_question = seen.seq
        room.add_asked(q.author, qid)
        if q.thread is not None:
            room.threads[q.thread] = qid
        return Opened(q)

    def _closing(self, info: _Info) -> None:
        """`info` is leaving the open state: from now on, `evict` may drop it once idle."""
        heappush(self._closed, (info.last, info.q.community, info.id))

    def _follow(self, owner: dict[str, str], info: _Info, seen: Seen) -> None:
        seen.role, seen.question = _FOLLOW, info.id
        if seen.t > info.last:
            info.last = seen.t
        follows = info.follows
        if follows is None:
            follows = info.follows = []
        if len(follows) < MAX_ANSWERS:
            follows.append(seen.id)
            owner[seen.id] = info.id

    @staticmethod
    def _add(
        changes: list[Change],
        change: Change | None,
        seen: Seen,
        info: _Info,
        role: Role = _ANSWER,
    ) -> None:
        if change is None:
            return
        changes.append(change)
        if seen.role is _NONE or role is _ANSWER:
            seen.role, seen.question = role, info.q.id

    def _link(
        self, owner: dict[str, str], info: _Info, message: str, author: str, ts: datetime, how: Link
    ) -> Linked | None:
        q = info.q
        if (
            author == q.author
            or q.state not in _LINKABLE
            or message in info.answers
            or message == q.id
            or len(q.answers) >= MAX_ANSWERS
            # Written before the question (a late delivery, a backfill, a file out of time order): it cannot answer
            # it, and a negative time to first answer would skew the room's delays and the health metrics.
            or ts < q.asked_ts
        ):
            return None
        answers = info.answers
        if not isinstance(answers, dict):  # `_Info.own_answer`, inlined
            answers = info.answers = {}
        answers[message] = (author, ts)
        owner[message] = info.id
        ids = q.answers
        ids.append(message)
        if len(ids) > 1 and ts < answers[ids[-2]][1]:
            ids.sort(key=lambda a: answers[a][1])
        if q.first_answer_ts is None or ts < q.first_answer_ts:
            q.answered_by, q.first_answer_ts = message, ts
        t = (ts - _EPOCH) // _MICRO  # micros(ts), inlined
        if t > info.last:
            info.last = t
        if q.state is not _ANSWERED:
            if q.state is _OPEN:
                self._closing(info)
            q.state = _ANSWERED
        return Linked(q, Answer(q.community, q.id, message, author, ts, _HOW[how]))

    def _resolve(self, info: _Info, by: str, credit: Iterable[str], ts: datetime) -> Resolved | None:
        q = info.q
        if q.state is _WITHDRAWN or ts < q.asked_ts:  # a thanks written before the question is not about it
            return None
        new = tuple(a for a in dict.fromkeys(credit) if a != q.author and a not in q.credited)
        if q.state is _RESOLVED and not new:
            return None
        info.last = max(info.last, micros(ts))
        if q.state is _OPEN:
            self._closing(info)
        q.state = _RESOLVED
        if q.resolved_ts is None:
            q.resolved_ts = ts
        q.credited.extend(new)
        self._unlist(info)
        return Resolved(q, by, new)

    def _withdraw(self, info: _Info) -> list[Change]:
        if info.q.state not in _CLOSABLE:
            return []
        if info.q.state is _OPEN:
            self._closing(info)
        info.q.state = _WITHDRAWN
        self._unlist(info)
        return [Withdrawn(info.q)]

    def _pick(self, community: str, room: str, author: str, question: str | None) -> _Info | None:
        if question is not None:
            comm = self._comms.get(community)
            return comm.info.get(question) if comm is not None else None
        r = self._rooms.get((community, room))
        return r.latest_asked(author) if r is not None else None

    def _unlist(self, info: _Info) -> None:
        """Take a closed question out of its room's linkable lists (its ids stay owned until eviction)."""
        room = self._rooms.get(info.room)
        if room is None:
            return
        room.remove_asked(info.q.author, info.q.id)
        if info.q.thread is not None and room.threads.get(info.q.thread) == info.q.id:
            del room.threads[info.q.thread]

    def _drop(self, comm: _Community, qid: str, info: _Info) -> None:
        self._unlist(info)
        owner = comm.owner
        for id in info.owned():
            if owner.get(id) == qid:
                del owner[id]
        del comm.info[qid]
