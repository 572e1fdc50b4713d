"""Answer linking without explicit structure: a room's recent window, nick resolution and positional rules.

Where people neither reply nor use threads (IRC, Gitter, many busy channels), an answer is recognised by who
talks to whom and when: a message addressed to the asker, the asker addressing someone who just spoke, a
helper carrying on a conversation, or the first message by someone else shortly after an unanswered question.
Everything here is pure and bounded: a window holds the last `size` messages of one room, never their text.
Times are compared as integer microseconds since the epoch (`micros`): exact, and cheaper than datetimes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

__all__ = [
    "Candidate",
    "Link",
    "LinkRules",
    "Questions",
    "Role",
    "RoomWindow",
    "Seen",
    "conversation_link",
    "engaged",
    "first_reply_link",
    "micros",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def micros(ts: datetime) -> int:
    """`ts` (tz-aware) as whole microseconds since the epoch."""
    return (ts - _EPOCH) // _MICRO


class Role(StrEnum):
    """What a remembered message is to the question it belongs to."""

    NONE = ""
    QUESTION = "question"
    FOLLOW = "follow"
    ANSWER = "answer"


# Looked up once: on Python 3.11 `Role.X` goes through the enum metaclass's __getattr__ hook (slow).
_QUESTION, _FOLLOW, _ANSWER = Role.QUESTION, Role.FOLLOW, Role.ANSWER


class Link(StrEnum):
    """Why a message was linked as an answer (`Answer.how`)."""

    REPLY = "reply"
    THREAD = "thread"
    MENTION = "mention"
    TURN = "turn"
    CONVERSATION = "conversation"
    POSITION = "position"
    THANKS = "thanks"
    REACTION = "reaction"


@dataclass(slots=True)
class Seen:
    """A recent message as the linker remembers it: ids, author, time, whom it addressed; no text."""

    id: str
    author: str
    ts: datetime
    #: `ts` in microseconds (see `micros`).
    t: int
    seq: int
    reply_to: str | None = None
    thread: str | None = None
    to: tuple[str, ...] = ()
    question: str | None = None
    role: Role = Role.NONE
    #: Addressed to someone ("nick: ...") even if the nick is not a known author.
    addressed: bool = False
    #: Asks for help in its own right (a new topic rather than a reply).
    help: bool = False
    #: Asks something (a question by the detection rules).
    asks: bool = False


class Candidate(Protocol):
    """What the positional rules need to know about a live question."""

    @property
    def id(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def answered(self) -> bool: ...


class Questions(Protocol):
    """The live questions of one room, as the positional rules look them up."""

    def live(self, question: str) -> Candidate | None:
        """The question `question` if it still takes answers."""
        ...

    def asked_by(self, author: str, before_seq: int) -> Candidate | None:
        """`author`'s latest question that still takes answers, asked before position `before_seq`."""
        ...


_TURN, _CONVERSATION = Link.TURN, Link.CONVERSATION  # looked up once, as above


@dataclass(frozen=True, slots=True)
class LinkRules:
    """Bounds of positional linking, in room messages and time (both must hold)."""

    #: An unanswered question is a first-responder target while fewer than this many messages followed it.
    first_reply_messages: int = 6
    first_reply_time: timedelta = timedelta(minutes=30)
    #: ... or, when nobody else spoke since the question, within this time (slow rooms answer late).
    silent_reply_time: timedelta = timedelta(hours=2)
    #: A helper's unaddressed message continues their conversation with an asker within these bounds.
    conversation_messages: int = 12
    conversation_time: timedelta = timedelta(minutes=15)
    #: A first reply must come before more than this many other people spoke since the question (0 in rooms
    #: that use replies or threads, where an answer without a reply is the exception); negative: no limit.
    max_between: int = 1
    #: The time bounds in microseconds, derived from the ones above.
    first_reply_us: int = field(init=False, repr=False, compare=False)
    reply_reach_us: int = field(init=False, repr=False, compare=False)
    conversation_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first_reply_us", self.first_reply_time // _MICRO)
        object.__setattr__(self, "reply_reach_us", max(self.first_reply_time, self.silent_reply_time) // _MICRO)
        object.__setattr__(self, "conversation_us", self.conversation_time // _MICRO)


class RoomWindow:
    """The last `size` messages of one room, with a case-insensitive index of their authors' nicks."""

    __slots__ = ("_items", "_nicks", "_order", "addressed_to", "inversion", "last_question", "latest_by", "seq",
                 "size", "structured")  # fmt: skip

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[str, Seen] = {}
        #: the same messages, newest first
        self._order: deque[Seen] = deque()
        #: author -> their newest message in the window (an author leaves the window with that message); read-only
        self.latest_by: dict[str, Seen] = {}
        #: lower-cased nick -> the authors in the window with that nick, in the order they entered it
        self._nicks: dict[str, dict[str, None]] = {}
        #: author -> number of messages in the window that address them; read-only
        self.addressed_to: dict[str, int] = {}
        #: Number of messages pushed so far; a message's `seq` is its position in the room.
        self.seq = 0
        #: True once the room has shown replies or threads, or is on a platform that has them (set by the tracker).
        self.structured = False
        #: Position of the latest message that came with an earlier time than the one before it (0: none).
        self.inversion = 0
        #: Position of the latest message that was taken for a question (an upper bound: see `note_question`).
        self.last_question = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, id: str) -> bool:
        return id in self._items

    def get(self, id: str) -> Seen | None:
        """The remembered message `id`, if still in the window."""
        return self._items.get(id)

    def next_seq(self) -> int:
        """Reserve the position of the next message."""
        self.seq += 1
        return self.seq

    def push(self, seen: Seen) -> None:
        """Remember `seen`, forgetting the oldest message beyond `size`."""
        order = self._order
        items = self._items
        latest_by = self.latest_by
        if order:
            if seen.t < order[0].t:
                self.inversion = seen.seq
            if len(order) >= self.size:
                # `_drop(order.pop())`, inlined: this runs for every message once the window is full.
                old = order.pop()
                del items[old.id]
                gone = old.author
                if latest_by.get(gone) is old:  # `_unlatest`, inlined: most authors leave with their message
                    del latest_by[gone]
                    low = gone.lower()
                    nicks = self._nicks[low]
                    del nicks[gone]
                    if not nicks:
                        del self._nicks[low]
                for a in old.to:
                    self._unaddress(a)
        order.appendleft(seen)
        items[seen.id] = seen
        author = seen.author
        if author not in latest_by:
            low = author.lower()
            nicks = self._nicks.get(low)
            if nicks is None:
                self._nicks[low] = {author: None}
            else:
                nicks[author] = None
        latest_by[author] = seen
        if seen.to:
            addressed = self.addressed_to
            for a in seen.to:
                addressed[a] = addressed.get(a, 0) + 1
        if seen.role is _QUESTION and seen.seq > self.last_question:
            self.last_question = seen.seq

    def note_question(self, seen: Seen) -> None:
        """`seen` (in the window or about to be pushed) was just taken for a question."""
        if seen.seq > self.last_question:
            self.last_question = seen.seq

    def _drop(self, old: Seen) -> None:
        """Forget `old`, the oldest message (or one of an author whose messages all go)."""
        del self._items[old.id]
        if self.latest_by.get(old.author) is old:
            self._unlatest(old.author)
        for a in old.to:
            self._unaddress(a)

    def _unlatest(self, author: str) -> None:
        """`author` leaves the window (their newest message went)."""
        del self.latest_by[author]
        low = author.lower()
        nicks = self._nicks[low]
        del nicks[author]
        if not nicks:
            del self._nicks[low]

    def _unaddress(self, author: str) -> None:
        n = self.addressed_to[author] - 1
        if n:
            self.addressed_to[author] = n
        else:
            del self.addressed_to[author]

    def newest(self) -> Seen | None:
        """The latest remembered message."""
        return self._order[0] if self._order else None

    def forget(self, author: str) -> None:
        """Drop the author's messages from the window (their ids stay out of reach, their text was never kept)."""
        theirs = [s for s in self._order if s.author == author]
        if theirs:
            self._order = deque(s for s in self._order if s.author != author)
            for s in reversed(theirs):  # oldest first, so that the newest one takes the author out
                self._drop(s)
        for s in self._order:
            if author in s.to:
                s.to = tuple(a for a in s.to if a != author)
                self._unaddress(author)

    def newest_first(self) -> Iterator[Seen]:
        """Remembered messages, newest first."""
        return iter(self._order)

    def resolve(self, token: str, extra: Callable[[str], str | None] | None = None) -> str | None:
        """The author a typed nick refers to: exact case-insensitive match among recent authors (or via `extra`),
        else a unique recent author whose nick starts with it (at least 3 characters)."""
        low = token.lower().rstrip("_-|")
        found = self._nicks.get(low)
        if found:
            return next(iter(found))
        if extra is not None and (hit := extra(low)) is not None:
            return hit
        if len(low) < 3:
            return None
        hits = {a for nick, authors in self._nicks.items() if nick.startswith(low) for a in authors}
        return hits.pop() if len(hits) == 1 else None


def conversation_link(
    window: RoomWindow,
    author: str,
    t: int,
    seq: int,
    thread: str | None,
    questions: Questions,
    rules: LinkRules,
) -> tuple[Candidate, Link] | None:
    """The live question an unaddressed message by `author` at `t` (microseconds) continues a conversation
    about, and why; or None: the author carries on a conversation they were having with an asker, or an asker
    addressed the author since the author last spoke."""
    floor = seq - rules.conversation_messages
    since = t - rules.conversation_us
    if author not in window.addressed_to:
        own = window.latest_by.get(author)
        if own is None:
            return None
        # Nobody addressed the author lately: only their own latest message can say whom they talk to. The scan
        # below would reach it when it is in this thread and times did not go back since.
        if own.thread == thread and window.inversion <= own.seq:
            return _carry_on(own, author, seq, questions) if own.seq >= floor and own.t >= since else None
    for s in window._order:  # newest first
        if s.seq < floor or s.t < since:
            break
        if s.thread != thread:
            continue
        if s.author == author:
            return _carry_on(s, author, seq, questions)
        if author in s.to:
            # Someone who asked something addressed this author: the author now answers them.
            q = questions.asked_by(s.author, seq)
            if q is not None and q.author != author:
                return q, _TURN
    return None


def first_reply_link(
    window: RoomWindow,
    author: str,
    t: int,
    seq: int,
    thread: str | None,
    questions: Questions,
    rules: LinkRules,
    *,
    asks: bool = False,
) -> Candidate | None:
    """The unanswered question `author`'s message at `t` answers by being the first reply to it, or None.

    Callers first rule out messages that answer nothing (chatter, a new help request). When the message is
    itself a question (`asks`), this holds only in a quiet room, where nobody but the asker spoke lately: in a
    busy room it is more likely a new question than a question back; and never in a room that uses replies or
    threads (`structured`), where people answer a question by replying to it, not by asking another one, and
    where a late message is no first reply either.
    """
    if asks and window.structured:
        return None
    floor = seq - rules.first_reply_messages
    if window.last_question < floor:
        return None  # no question among the messages in reach
    # Late replies (`silent_reply_time`) only where replies do not exist: elsewhere a late answer replies.
    since = t - (rules.first_reply_us if window.structured else rules.reply_reach_us)
    between: set[str] = set()
    for s in window._order:  # newest first
        if s.seq < floor or s.t < since:
            break
        if s.thread != thread or s.author == author:
            continue
        if s.question is None or not (s.role is _QUESTION or (s.role is _FOLLOW and s.asks)):
            between.add(s.author)
            continue
        q = questions.live(s.question)
        if q is not None and not q.answered:
            allowed = 0 if window.structured else rules.max_between
            if s.t < t - rules.first_reply_us:
                if asks:
                    return None  # a question long after another one is a new question
                allowed = 0  # a late first reply counts only if nobody else spoke in between
            if allowed >= 0 and len(between) - (q.author in between) > allowed:
                return None
            if asks and not _quiet(window, q.author, author, t, seq, rules):
                return None
            if _talking_to_others(window, author, q.author, t, seq, rules):
                return None
            return q
        between.add(s.author)
    return None


def _carry_on(own: Seen, author: str, seq: int, questions: Questions) -> tuple[Candidate, Link] | None:
    """The author's own latest message says whom they were talking to."""
    if own.role is _ANSWER and own.question is not None:
        q = questions.live(own.question)
        if q is not None and q.author != author:
            # The asker may have asked again since: carry on with their latest question.
            latest = questions.asked_by(q.author, seq)
            return (latest if latest is not None and not latest.answered else q), _CONVERSATION
    for other in own.to:
        q = questions.asked_by(other, seq)
        if q is not None and q.author != author and q.seq < seq:
            return q, _CONVERSATION
    return None


def _talking_to_others(window: RoomWindow, author: str, asker: str, t: int, seq: int, rules: LinkRules) -> bool:
    """`author` is in a conversation with someone other than `asker`: their latest message addressed someone
    else, or someone else addressed them lately."""
    floor = seq - rules.conversation_messages
    since = t - rules.conversation_us
    if author not in window.addressed_to:
        # Nobody addressed the author: only their latest message can tell, when times did not go back since.
        own = window.latest_by.get(author)
        if own is None:
            return False
        if window.inversion <= own.seq:
            return own.seq >= floor and own.t >= since and own.addressed and asker not in own.to
    own_seen = False
    for s in window._order:  # newest first
        if s.seq < floor or s.t < since:
            break
        if s.author == author:
            if not own_seen:
                if s.addressed:
                    return asker not in s.to
                own_seen = True
        elif author in s.to and s.author != asker:
            return True
    return False


def _quiet(window: RoomWindow, asker: str, author: str, t: int, seq: int, rules: LinkRules) -> bool:
    """Nobody but `asker` and `author` spoke within the conversation bounds."""
    floor = seq - rules.conversation_messages
    since = t - rules.conversation_us
    for s in window._order:  # newest first
        if s.seq < floor or s.t < since:
            return True
        if s.author != asker and s.author != author:
            return False
    return True


def engaged(window: RoomWindow, author: str, t: int, seq: int, rules: LinkRules) -> bool:
    """True when `author` is in a conversation: they addressed or answered someone, or were addressed, recently.

    A question asked mid-conversation is a turn of that conversation, not a new help request.
    """
    if author not in window.addressed_to and author not in window.latest_by:
        return False
    floor = seq - rules.conversation_messages
    since = t - rules.conversation_us
    for s in window._order:  # newest first
        if s.seq < floor or s.t < since:
            break
        if s.author == author:
            if s.addressed or s.reply_to is not None or s.role is _ANSWER:
                return True
        elif author in s.to:
            return True
    return False
