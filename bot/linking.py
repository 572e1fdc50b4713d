"""Answer linking without explicit structure: a room's recent window, nick resolution and positional rules.

Where people neither reply nor use threads (IRC, Gitter, many busy channels), an answer is recognised by who
talks to whom and when: a message addressed to the asker, the asker addressing someone who just spoke, a
helper carrying on a conversation, or the first message by someone else shortly after an unanswered question.
Everything here is pure and bounded: a window holds the last `size` messages of one room, never their text.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = ["Candidate", "Link", "LinkRules", "Role", "RoomWindow", "Seen", "engaged", "positional_link"]


class Role(StrEnum):
    """What a remembered message is to the question it belongs to."""

    NONE = ""
    QUESTION = "question"
    FOLLOW = "follow"
    ANSWER = "answer"


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the positional rules need to know about a live question."""

    id: str
    author: str
    seq: int
    answered: bool


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


class RoomWindow:
    """The last `size` messages of one room, with a case-insensitive index of their authors' nicks."""

    __slots__ = ("_items", "_nicks", "seq", "size", "structured")

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Seen] = OrderedDict()
        self._nicks: dict[str, dict[str, int]] = {}
        #: Number of messages pushed so far; a message's `seq` is its position in the room.
        self.seq = 0
        #: True once the room has shown replies or threads.
        self.structured = False

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
        self._items[seen.id] = seen
        self._count(seen.author, 1)
        while len(self._items) > self.size:
            _, old = self._items.popitem(last=False)
            self._count(old.author, -1)

    def newest(self) -> Seen | None:
        """The latest remembered message."""
        return next(reversed(self._items.values()), None) if self._items else None

    def forget(self, author: str) -> None:
        """Drop the author's messages from the window (their ids stay out of reach, their text was never kept)."""
        for id in [id for id, s in self._items.items() if s.author == author]:
            self._count(self._items.pop(id).author, -1)
        for s in self._items.values():
            if author in s.to:
                s.to = tuple(a for a in s.to if a != author)

    def newest_first(self) -> Iterator[Seen]:
        """Remembered messages, newest first."""
        return reversed(self._items.values())

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

    def _count(self, author: str, delta: int) -> None:
        low = author.lower()
        authors = self._nicks.setdefault(low, {})
        n = authors.get(author, 0) + delta
        if n > 0:
            authors[author] = n
        else:
            authors.pop(author, None)
            if not authors:
                del self._nicks[low]


def positional_link(
    window: RoomWindow,
    author: str,
    ts: datetime,
    seq: int,
    thread: str | None,
    live: Callable[[str], Candidate | None],
    asked_by: Callable[[str], Candidate | None],
    rules: LinkRules,
    *,
    first_reply: bool = True,
    asks: bool = False,
) -> tuple[Candidate, Link] | None:
    """Which live question an unaddressed message by `author` most plausibly answers, and why; or None.

    `live(question_id)` gives a linkable question, `asked_by(author)` the author's latest linkable question in
    this room. In order: the author carries on a conversation they were having with an asker; an asker
    addressed the author; the author is the first to speak after an unanswered question (`first_reply`). When
    the message is itself a question (`asks`), that last rule holds only in a quiet room, where nobody but the
    asker spoke lately: in a busy room it is more likely a new question than a question back.
    """
    conv_floor = seq - rules.conversation_messages
    conv_since = ts - rules.conversation_time
    for s in window.newest_first():
        if s.seq < conv_floor or s.ts < conv_since:
            break
        if s.thread != thread:
            continue
        if s.author == author:
            # The author's own latest message says whom they were talking to.
            if s.role is Role.ANSWER and s.question is not None:
                q = live(s.question)
                if q is not None and q.author != author:
                    # The asker may have asked again since: carry on with their latest question.
                    latest = asked_by(q.author)
                    return (latest if latest is not None and not latest.answered else q), Link.CONVERSATION
            for other in s.to:
                q = asked_by(other)
                if q is not None and q.author != author and q.seq < seq:
                    return q, Link.CONVERSATION
            break
        if author in s.to:
            # Someone who asked something addressed this author: the author now answers them.
            q = asked_by(s.author)
            if q is not None and q.author != author:
                return q, Link.TURN
    if not first_reply:
        return None
    floor = seq - rules.first_reply_messages
    since = ts - max(rules.first_reply_time, rules.silent_reply_time)
    between: set[str] = set()
    for s in window.newest_first():
        if s.seq < floor or s.ts < since:
            break
        if s.thread != thread or s.author == author:
            continue
        if s.role is not Role.QUESTION or s.question is None:
            between.add(s.author)
            continue
        q = live(s.question)
        if q is not None and not q.answered:
            allowed = 0 if window.structured else rules.max_between
            if s.ts < ts - rules.first_reply_time:
                if asks:
                    return None  # a question long after another one is a new question
                allowed = 0  # a late first reply counts only if nobody else spoke in between
            if allowed >= 0 and len(between - {q.author}) > allowed:
                return None
            if asks and not _quiet(window, q.author, author, ts, seq, rules):
                return None
            return q, Link.POSITION
        between.add(s.author)
    return None


def _quiet(window: RoomWindow, asker: str, author: str, ts: datetime, seq: int, rules: LinkRules) -> bool:
    """Nobody but `asker` and `author` spoke within the conversation bounds."""
    floor = seq - rules.conversation_messages
    since = ts - rules.conversation_time
    for s in window.newest_first():
        if s.seq < floor or s.ts < since:
            return True
        if s.author != asker and s.author != author:
            return False
    return True


def engaged(window: RoomWindow, author: str, ts: datetime, seq: int, rules: LinkRules) -> bool:
    """True when `author` is in a conversation: they addressed or answered someone, or were addressed, recently.

    A question asked mid-conversation is a turn of that conversation, not a new help request.
    """
    floor = seq - rules.conversation_messages
    since = ts - rules.conversation_time
    for s in window.newest_first():
        if s.seq < floor or s.ts < since:
            break
        if s.author == author:
            if s.addressed or s.reply_to is not None or s.role is Role.ANSWER:
                return True
        elif author in s.to:
            return True
    return False
