"""The question tracker: lien's in-memory, deterministic working state of questions and their answers.

It reads events in order and says what changed (`Opened`, `Linked`, `Resolved`, `Withdrawn`). It does no I/O,
has no clock and keeps no text: the engine persists the changes and feeds back what it loads from storage
(`missing_refs` then `remember`). Memory is bounded: a window of recent messages per room, a small cache of
loaded messages, and the live questions; closed questions are dropped by `evict` once idle longer than `linger`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Settings
from bot.detection import addressee, is_chatter, is_help_request, is_personal, is_question, is_thanks
from bot.events import Delete, Edit, Message, Reaction
from bot.linking import Candidate, Link, LinkRules, Role, RoomWindow, Seen, engaged, positional_link
from bot.model import Answer, MessageMeta, QState, Question

__all__ = [
    "RESOLVING_EMOJI",
    "SOLVING_EMOJI",
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

#: States in which a question still takes answers (a tuple: membership by identity is the fastest test).
_LINKABLE = (QState.OPEN, QState.ANSWERED, QState.STALE)
#: States a withdraw or resolve command may act on.
_CLOSABLE = _LINKABLE
#: At most this many answers (and as many follow-ups) are linked to one question, so memory stays bounded.
MAX_ANSWERS = 50
#: The asker's unaddressed messages count as follow-ups of their question within this time of its last activity.
_FOLLOW_UP = timedelta(minutes=30)
#: A new question by an asker whose earlier question is still unanswered and this recent is a follow-up of it.
_REASK = timedelta(minutes=10)
#: A message edited into a question opens one only if the edit comes this soon and the message is this recent.
_EDIT_WINDOW = timedelta(minutes=15)
_EDIT_MESSAGES = 10
#: Messages loaded from storage kept for reply and reaction lookups.
_COLD_SIZE = 4096


@dataclass(slots=True)
class _Info:
    """Tracker-side bookkeeping of one question."""

    q: Question
    room: tuple[str, str]
    seq: int
    last: datetime
    owned: list[str] = field(default_factory=list)
    #: answer message id -> (author, ts)
    answers: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    follow_ups: int = 0


class _Room:
    __slots__ = ("asked", "community", "last", "seen", "seen_order", "threads", "window")

    def __init__(self, community: str, window: int) -> None:
        self.community = community
        self.window = RoomWindow(window)
        self.seen: set[str] = set()
        self.seen_order: deque[str] = deque()
        #: author -> ids of their linkable questions in this room, oldest first
        self.asked: dict[str, list[str]] = {}
        #: thread id -> latest question asked in that thread
        self.threads: dict[str, str] = {}
        self.last: datetime | None = None

    def mark_seen(self, id: str) -> None:
        self.seen.add(id)
        self.seen_order.append(id)
        if len(self.seen_order) > max(4 * self.window.size, 256):
            self.seen.discard(self.seen_order.popleft())


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
        self.settings = settings
        self._window = window
        self._linger = linger
        self._rules = rules or LinkRules()
        self._rooms: dict[tuple[str, str], _Room] = {}
        self._info: dict[tuple[str, str], _Info] = {}
        #: (community, message id) -> question id, for the question, its follow-ups and its answers
        self._owner: dict[tuple[str, str], str] = {}
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

    # ----------------------------------------------------------------------------------------------- reads

    def get(self, community: str, question: str) -> Question | None:
        """The tracked question, if held."""
        info = self._info.get((community, question))
        return info.q if info else None

    def open_questions(self) -> Iterator[Question]:
        """Questions still open (not answered, resolved, stale or withdrawn)."""
        return (i.q for i in list(self._info.values()) if i.q.state is QState.OPEN)

    def held(self) -> dict[str, int]:
        """How much the tracker holds in memory, by kind (for monitoring and the memory-bound tests)."""
        return {
            "rooms": len(self._rooms),
            "questions": len(self._info),
            "owned_ids": len(self._owner),
            "cached_messages": len(self._cold),
            "window_messages": sum(len(r.window) for r in self._rooms.values()),
            "seen_ids": sum(len(r.seen) for r in self._rooms.values()),
        }

    def missing_refs(self, m: Message | Reaction) -> list[str]:
        """Message ids `m` refers to (reply, thread root, reacted message) that the tracker does not hold."""
        if isinstance(m, Reaction):
            refs = [m.message]
        else:
            if self._ignored(m.author, m.is_bot, m.text):
                return []
            refs = [r for r in (m.reply_to, m.thread) if r is not None and r != m.id]
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
            if meta.id not in room.window and (newest is None or newest.ts <= meta.ts):
                seen = Seen(meta.id, meta.author, meta.ts, room.window.next_seq(), meta.reply_to, meta.thread)
                self._reattach(meta.community, seen)
                room.window.push(seen)
                room.mark_seen(meta.id)
                if meta.reply_to or (meta.thread and meta.thread != meta.id):
                    room.window.structured = True
        while len(self._cold) > _COLD_SIZE:
            self._cold.popitem(last=False)
        for q in sorted(questions, key=lambda x: x.asked_ts):
            key = (q.community, q.id)
            if key in self._info:
                continue
            room = self._room(q.community, q.room)
            seen = room.window.get(q.id)
            seq = seen.seq if seen else 0
            last = max([q.asked_ts, *(t for t in (q.first_answer_ts, q.resolved_ts) if t is not None)])
            info = self._info[key] = _Info(q, (q.community, q.room), seq, last)
            self._own(info, q.id)
            if seen is not None:
                seen.role, seen.question = Role.QUESTION, q.id
            if q.state in _LINKABLE:
                room.asked.setdefault(q.author, []).append(q.id)
            if q.thread is not None:
                room.threads[q.thread] = q.id
        for a in sorted(answers, key=lambda x: x.ts):
            info = self._info.get((a.community, a.question))
            if info is None or a.message in info.answers:
                continue
            info.answers[a.message] = (a.author, a.ts)
            self._own(info, a.message)
            info.last = max(info.last, a.ts)
            seen = self._rooms[info.room].window.get(a.message)
            if seen is not None:
                seen.role, seen.question = Role.ANSWER, info.q.id

    # ----------------------------------------------------------------------------------------------- events

    def on_message(self, m: Message) -> list[Change]:
        """Take `m` for a question, an answer to tracked questions, a thanks that resolves one, or nothing."""
        if self._ignored(m.author, m.is_bot, m.text):
            return []
        c = m.community
        room = self._room(c, m.room)
        if m.id in room.seen or (c, m.id) in self._owner:
            return []
        room.mark_seen(m.id)
        room.last = m.ts if room.last is None or m.ts > room.last else room.last
        win = room.window
        if m.reply_to is not None or (m.thread is not None and m.thread != m.id):
            win.structured = True
        to, addressed = self._addressees(room, m)
        seen = Seen(m.id, m.author, m.ts, win.next_seq(), m.reply_to, m.thread, to, addressed=addressed)
        if not addressed:
            seen.help = is_help_request(m.text)
        qs = self._settings.room(c, m.room).questions
        changes: list[Change] = []
        handled = self._explicit(m, room, seen, changes)
        # Addressed messages and replies never open a question nor answer by position: skip the text tests.
        asks = (
            qs.mode == "auto"
            and not addressed
            and (m.reply_to is None or self._own_message(room, m))
            and is_question(m.text, qs.min_words)
        )
        if not handled and not addressed and m.reply_to is None:
            self._implicit(m, room, seen, asks, changes)
        if seen.role is Role.NONE and qs.mode != "off":
            self._maybe_open(m, room, seen, asks, qs.mode == "every_thread", changes)
        win.push(seen)
        return changes

    def on_reaction(self, r: Reaction) -> list[Change]:
        """The asker's approving reaction on an answer (or on the question) resolves it, crediting the answer's
        author; on a recent message by someone else it also links that message as the answer."""
        emoji = r.emoji.translate(_EMOJI_NOISE).lower()
        if r.author in self._ignored_ids or emoji not in RESOLVING_EMOJI:
            return []
        c = r.community
        qid = self._owner.get((c, r.message))
        if qid is not None:
            info = self._info[(c, qid)]
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
        target = self._meta(c, room, r.message)
        info = self._latest_asked(room, r.author)
        if target is None or info is None or target[0] == r.author or target[1] < info.q.asked_ts:
            return []
        changes: list[Change] = []
        linked = self._link(info, r.message, target[0], target[1], Link.REACTION)
        if linked is not None:
            changes.append(linked)
            seen = room.window.get(r.message)
            if seen is not None:
                seen.role, seen.question = Role.ANSWER, info.q.id
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
            or seen.role is not Role.NONE
            or seen.to
            or seen.reply_to is not None
            or e.ts - seen.ts > _EDIT_WINDOW
            or room.window.seq - seen.seq >= _EDIT_MESSAGES
            or (e.community, e.id) in self._owner
            or e.text.lstrip().startswith(self._prefix)
        ):
            return []
        if seen.thread is not None and self._thread_question(e.community, room, seen.thread) is not None:
            return []
        if not is_question(e.text, self._settings.room(e.community, e.room).questions.min_words):
            return []
        return [self._open(e.community, e.room, room, seen)]

    def on_delete(self, d: Delete) -> list[Change]:
        """Deleting an open, answered or stale question withdraws it."""
        info = self._info.get((d.community, d.id))
        if info is None:
            return []
        return self._withdraw(info)

    # --------------------------------------------------------------------------------------------- commands

    def withdraw(self, community: str, room: str, author: str, question: str | None, ts: datetime) -> list[Change]:
        """`!lien not-a-question`: withdraw the author's given question, or their latest one in the room."""
        info = self._pick(community, room, author, question)
        if info is None or info.q.author != author:
            return []
        info.last = max(info.last, ts)
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
        info = self._info.get((community, question))
        if info is None or info.q.state is not QState.OPEN:
            return None
        info.q.state = QState.STALE
        return info.q

    def forget_member(self, community: str, member: str) -> None:
        """Drop every in-memory trace of a member: their questions, their messages, their answers and credits."""
        for key, info in list(self._info.items()):
            if key[0] != community:
                continue
            q = info.q
            if q.author == member:
                self._drop(key, info)
                continue
            theirs = [mid for mid, (author, _) in info.answers.items() if author == member]
            for mid in theirs:
                del info.answers[mid]
                self._owner.pop((community, mid), None)
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
                room.asked.pop(member, None)
        for key in [k for k, meta in self._cold.items() if k[0] == community and meta.author == member]:
            del self._cold[key]

    def evict(self, now: datetime) -> None:
        """Drop questions that are no longer open and idle longer than `linger`, and idle empty rooms."""
        horizon = now - self._linger
        for key, info in list(self._info.items()):
            if info.q.state is not QState.OPEN and info.last < horizon:
                self._drop(key, info)
        for rkey, room in list(self._rooms.items()):
            if not room.asked and not room.threads and (room.last is None or room.last < horizon):
                del self._rooms[rkey]

    # ------------------------------------------------------------------------------------------- internals

    def _reattach(self, community: str, seen: Seen) -> None:
        """A message loaded from storage: give it back its place relative to the question it belongs to."""
        qid = self._owner.get((community, seen.id))
        info = self._info.get((community, qid)) if qid is not None else None
        if info is None:
            return
        seen.question = info.q.id
        if seen.id == info.q.id:
            seen.role = Role.QUESTION
            info.seq = seen.seq
        else:
            seen.role = Role.ANSWER if seen.id in info.answers else Role.FOLLOW

    def _ignored(self, author: str, is_bot: bool, text: str) -> bool:
        return is_bot or author in self._ignored_ids or text.lstrip().startswith(self._prefix)

    def _room(self, community: str, room: str) -> _Room:
        key = (community, room)
        found = self._rooms.get(key)
        if found is None:
            found = self._rooms[key] = _Room(community, self._window)
        return found

    def _holds(self, community: str, room: _Room | None, id: str) -> bool:
        key = (community, id)
        return key in self._owner or key in self._cold or (room is not None and id in room.window)

    def _meta(self, community: str, room: _Room, id: str) -> tuple[str, datetime] | None:
        """(author, ts) of a message the tracker holds."""
        seen = room.window.get(id)
        if seen is not None:
            return seen.author, seen.ts
        meta = self._cold.get((community, id))
        if meta is not None:
            return meta.author, meta.ts
        qid = self._owner.get((community, id))
        if qid is not None:
            info = self._info[(community, qid)]
            if id == qid:
                return info.q.author, info.q.asked_ts
            if id in info.answers:
                return info.answers[id]
        return None

    def _addressees(self, room: _Room, m: Message) -> tuple[tuple[str, ...], bool]:
        """Whom `m` addresses (mentions and a leading nick), and whether it addresses anyone, known or not."""
        to = [a for a in m.mentions if a != m.author]
        token = addressee(m.text)
        if token is not None:
            who = room.window.resolve(token, lambda low: self._asker_named(room, low))
            if who is not None and who != m.author and who not in to:
                to.append(who)
        return tuple(to), bool(to) or token is not None

    @staticmethod
    def _asker_named(room: _Room, low: str) -> str | None:
        for author in room.asked:
            if author.lower() == low:
                return author
        return None

    def _latest_asked(self, room: _Room, author: str, *, before_seq: int | None = None) -> _Info | None:
        """The author's latest linkable question in the room."""
        ids = room.asked.get(author)
        if not ids:
            return None
        for qid in reversed(ids):
            info = self._info.get((room.community, qid))
            if info is not None and info.q.state in _LINKABLE and (before_seq is None or info.seq < before_seq):
                return info
        return None

    def _candidate(self, info: _Info) -> Candidate:
        q = info.q
        return Candidate(q.id, q.author, info.seq, q.state is QState.ANSWERED)

    def _thread_question(self, community: str, room: _Room, thread: str) -> _Info | None:
        qid = self._owner.get((community, thread)) or room.threads.get(thread)
        return self._info.get((community, qid)) if qid is not None else None

    def _explicit(self, m: Message, room: _Room, seen: Seen, changes: list[Change]) -> bool:
        """Replies, threads and mentions. True when `m` was placed relative to some question."""
        c = m.community
        placed = False
        contexts: list[tuple[_Info, str | None, Link]] = []
        if m.reply_to is not None:
            qid = self._owner.get((c, m.reply_to))
            info = self._info.get((c, qid)) if qid is not None else None
            if info is not None and info.q.state in _LINKABLE:
                contexts.append((info, m.reply_to, Link.REPLY))
            elif info is None:
                placed |= self._reply_to_untracked(m, room, seen, changes)
        if m.thread is not None and m.thread != m.id:
            info = self._thread_question(c, room, m.thread)
            if info is not None and info.q.state in _LINKABLE and all(info is not x[0] for x in contexts):
                contexts.append((info, None, Link.THREAD))
        for info, target, how in contexts:
            placed = True
            q = info.q
            if m.author == q.author:
                self._asker_speaks(m, room, seen, info, target, changes)
            elif target is None or target == q.id or target not in info.answers or info.answers[target][0] == m.author:
                # a reply to the question, to the asker's follow-up, to one's own answer, or in the thread
                self._add(changes, self._link(info, m.id, m.author, m.ts, how), seen, info)
        for who in seen.to:
            placed |= self._addressed(m, room, seen, who, changes)
        return placed

    def _reply_to_untracked(self, m: Message, room: _Room, seen: Seen, changes: list[Change]) -> bool:
        """The asker replying to someone's message after asking: that message answered them."""
        target = self._meta(m.community, room, m.reply_to or "")
        info = self._latest_asked(room, m.author)
        if target is None or info is None or target[0] == m.author or target[1] < info.q.asked_ts:
            return False
        s = room.window.get(m.reply_to or "")
        if s is not None and not self._speaks_to(m.community, room, s, m.author):
            return False
        self._credit_turn(m, room, seen, info, target[0], m.reply_to, changes)
        return True

    def _speaks_to(self, community: str, room: _Room, s: Seen, author: str) -> bool:
        """`s` is said to everyone or to `author` (not addressed or replying to someone else)."""
        if s.addressed and author not in s.to:
            return False
        if s.reply_to is not None:
            target = self._meta(community, room, s.reply_to)
            return target is not None and target[0] == author
        return True

    def _asker_speaks(
        self, m: Message, room: _Room, seen: Seen, info: _Info, target: str | None, changes: list[Change]
    ) -> None:
        """The asker replied in their question's context: a thanks resolves it, anything else follows it up."""
        if is_thanks(m.text):
            if target is not None and target in info.answers:
                credit: tuple[str, ...] = (info.answers[target][0],)
            elif seen.to:
                credit = seen.to
            else:
                credit = tuple(dict.fromkeys(a for a, _ in info.answers.values()))
            self._add(changes, self._resolve(info, m.author, credit, m.ts), seen, info, Role.FOLLOW)
            if seen.role is not Role.NONE:
                return
        self._follow(info, seen)

    def _addressed(self, m: Message, room: _Room, seen: Seen, who: str, changes: list[Change]) -> bool:
        """`m` addresses `who`: an answer to `who`'s question, or the asker answering / thanking `who`."""
        placed = False
        mine = self._latest_asked(room, m.author, before_seq=seen.seq)
        recent = mine is not None and m.ts - mine.last <= _FOLLOW_UP * 4
        helped_me = recent and mine is not None and any(a == who for a, _ in mine.answers.values())
        theirs = self._latest_asked(room, who, before_seq=seen.seq)
        if (
            theirs is not None
            and theirs.q.author != m.author
            and not helped_me  # talking back to one's own helper is not answering their question
            and (m.thread is None or theirs.q.thread in (None, m.thread))
        ):
            self._add(changes, self._link(theirs, m.id, m.author, m.ts, Link.MENTION), seen, theirs)
            placed = True
        if recent and mine is not None:
            placed |= self._credit_turn(m, room, seen, mine, who, None, changes)
        return placed

    def _credit_turn(
        self,
        m: Message,
        room: _Room,
        seen: Seen,
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
                if (
                    s.author == helper
                    and s.thread == m.thread
                    and (m.author in s.to or (not s.to and s.role is Role.NONE))
                ):
                    answer_id = s.id
                    break
        if answer_id is not None:
            meta = self._meta(m.community, room, answer_id)
            if meta is not None:
                answer_ts = meta[1]
                linked = self._link(info, answer_id, helper, answer_ts, Link.TURN)
                if linked is not None:
                    changes.append(linked)
                    s = room.window.get(answer_id)
                    if s is not None and s.role is Role.NONE:
                        s.role, s.question = Role.ANSWER, info.q.id
        if is_thanks(m.text) and (info.answers or answer_ts is not None):
            self._add(changes, self._resolve(info, m.author, (helper,), m.ts), seen, info, Role.FOLLOW)
        elif seen.role is Role.NONE:
            self._follow(info, seen)
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
            or between.role not in (Role.NONE, Role.QUESTION)
            or m.ts - between.ts > self._rules.conversation_time
        ):
            return
        linked = self._link(mine, between.id, between.author, between.ts, Link.TURN)
        if linked is None:
            return
        changes.append(linked)
        if between.role is Role.QUESTION and between.question is not None:
            theirs = self._info.get((m.community, between.question))
            if theirs is not None:
                changes.extend(c for c in [self._link(theirs, m.id, m.author, m.ts, Link.TURN)] if c is not None)
        else:
            between.role, between.question = Role.ANSWER, mine.q.id

    def _implicit(self, m: Message, room: _Room, seen: Seen, asks: bool, changes: list[Change]) -> None:
        """An unaddressed message without reply or thread link: the asker following up, or a positional answer."""
        mine = self._latest_asked(room, m.author)
        if mine is not None and m.ts - mine.last <= _FOLLOW_UP and mine.q.thread == m.thread:
            self._turn_taken(m, room, seen, mine, changes)
            if is_thanks(m.text):
                credit = tuple(dict.fromkeys(a for a, _ in mine.answers.values()))
                self._add(changes, self._resolve(mine, m.author, credit, m.ts), seen, mine, Role.FOLLOW)
            elif not asks or (mine.q.state is QState.OPEN and m.ts - mine.q.asked_ts <= _REASK):
                self._follow(mine, seen)
            return
        c = m.community

        def live(qid: str) -> Candidate | None:
            info = self._info.get((c, qid))
            return self._candidate(info) if info is not None and info.q.state in _LINKABLE else None

        def asked_by(author: str) -> Candidate | None:
            info = self._latest_asked(room, author, before_seq=seen.seq)
            return self._candidate(info) if info is not None else None

        found = positional_link(
            room.window,
            m.author,
            m.ts,
            seen.seq,
            m.thread,
            live,
            asked_by,
            self._rules,
            first_reply=not seen.help and not is_chatter(m.text) and not (asks and is_personal(m.text)),
            asks=asks,
        )
        if found is not None:
            info = self._info[(c, found[0].id)]
            self._add(changes, self._link(info, m.id, m.author, m.ts, found[1]), seen, info)

    def _own_message(self, room: _Room, m: Message) -> bool:
        """`m` replies to a message by its own author."""
        target = self._meta(m.community, room, m.reply_to) if m.reply_to is not None else None
        return target is not None and target[0] == m.author

    def _maybe_open(
        self, m: Message, room: _Room, seen: Seen, asks: bool, every_thread: bool, changes: list[Change]
    ) -> None:
        """Open a question for `m` when the room's question mode says so."""
        if seen.addressed:
            return
        if m.reply_to is not None and not self._own_message(room, m):
            return
        if every_thread:
            if m.thread is None:
                return
            if m.thread != m.id:
                if self._thread_question(m.community, room, m.thread) is not None:
                    return
                root = room.window.get(m.thread)
                if root is not None and root.role is Role.NONE and root.author != m.author:
                    # The thread grew from a message we saw: that root is the question, `m` its first answer.
                    changes.append(self._open(m.community, m.room, room, root, thread=m.thread))
                    info = self._info[(m.community, m.thread)]
                    self._add(changes, self._link(info, m.id, m.author, m.ts, Link.THREAD), seen, info)
                    return
                if self._holds(m.community, room, m.thread):
                    return
            changes.append(self._open(m.community, m.room, room, seen, thread=m.thread))
            return
        if m.thread is not None and m.thread != m.id and self._thread_question(m.community, room, m.thread) is not None:
            return
        if not asks or (
            m.reply_to is None and m.thread is None and engaged(room.window, m.author, m.ts, seen.seq, self._rules)
        ):
            return
        mine = self._latest_asked(room, m.author)
        if (
            mine is not None
            and mine.q.state is QState.OPEN
            and m.ts - mine.q.asked_ts <= _REASK
            and mine.q.thread == m.thread
        ):
            self._follow(mine, seen)
            return
        changes.append(self._open(m.community, m.room, room, seen, thread=m.thread))

    def _open(self, community: str, room_id: str, room: _Room, seen: Seen, *, thread: str | None = None) -> Opened:
        q = Question(community, seen.id, room_id, seen.author, seen.ts, thread=thread or seen.thread)
        info = self._info[(community, q.id)] = _Info(q, (community, room_id), seen.seq, seen.ts)
        self._own(info, q.id)
        seen.role, seen.question = Role.QUESTION, q.id
        room.asked.setdefault(q.author, []).append(q.id)
        if q.thread is not None:
            room.threads[q.thread] = q.id
        return Opened(q)

    def _follow(self, info: _Info, seen: Seen) -> None:
        seen.role, seen.question = Role.FOLLOW, info.q.id
        info.last = max(info.last, seen.ts)
        if info.follow_ups < MAX_ANSWERS:
            info.follow_ups += 1
            self._own(info, seen.id)

    def _own(self, info: _Info, id: str) -> None:
        self._owner[(info.q.community, id)] = info.q.id
        info.owned.append(id)

    def _add(
        self,
        changes: list[Change],
        change: Change | None,
        seen: Seen,
        info: _Info,
        role: Role = Role.ANSWER,
    ) -> None:
        if change is None:
            return
        changes.append(change)
        if seen.role is Role.NONE or role is Role.ANSWER:
            seen.role, seen.question = role, info.q.id

    def _link(self, info: _Info, message: str, author: str, ts: datetime, how: Link) -> Linked | None:
        q = info.q
        if (
            author == q.author
            or q.state not in _LINKABLE
            or message in info.answers
            or message == q.id
            or len(q.answers) >= MAX_ANSWERS
        ):
            return None
        info.answers[message] = (author, ts)
        self._own(info, message)
        q.answers.append(message)
        if len(q.answers) > 1 and ts < info.answers[q.answers[-2]][1]:
            q.answers.sort(key=lambda a: info.answers[a][1])
        if q.first_answer_ts is None or ts < q.first_answer_ts:
            q.answered_by, q.first_answer_ts = message, ts
        if q.state is not QState.ANSWERED:
            q.state = QState.ANSWERED
        info.last = max(info.last, ts)
        return Linked(q, Answer(q.community, q.id, message, author, ts, how.value))

    def _resolve(self, info: _Info, by: str, credit: Iterable[str], ts: datetime) -> Resolved | None:
        q = info.q
        if q.state is QState.WITHDRAWN:
            return None
        new = tuple(a for a in dict.fromkeys(credit) if a != q.author and a not in q.credited)
        if q.state is QState.RESOLVED and not new:
            return None
        q.state = QState.RESOLVED
        if q.resolved_ts is None:
            q.resolved_ts = ts
        q.credited.extend(new)
        info.last = max(info.last, ts)
        self._unlist(info)
        return Resolved(q, by, new)

    def _withdraw(self, info: _Info) -> list[Change]:
        if info.q.state not in _CLOSABLE:
            return []
        info.q.state = QState.WITHDRAWN
        self._unlist(info)
        return [Withdrawn(info.q)]

    def _pick(self, community: str, room: str, author: str, question: str | None) -> _Info | None:
        if question is not None:
            return self._info.get((community, question))
        r = self._rooms.get((community, room))
        return self._latest_asked(r, author) if r is not None else None

    def _unlist(self, info: _Info) -> None:
        """Take a closed question out of its room's linkable lists (its ids stay owned until eviction)."""
        room = self._rooms.get(info.room)
        if room is None:
            return
        ids = room.asked.get(info.q.author)
        if ids and info.q.id in ids:
            ids.remove(info.q.id)
            if not ids:
                del room.asked[info.q.author]
        if info.q.thread is not None and room.threads.get(info.q.thread) == info.q.id:
            del room.threads[info.q.thread]

    def _drop(self, key: tuple[str, str], info: _Info) -> None:
        self._unlist(info)
        for id in info.owned:
            if self._owner.get((key[0], id)) == info.q.id:
                del self._owner[(key[0], id)]
        del self._info[key]
