"""Domain records the core keeps and the repositories store: ids, authors, timestamps, links. Never message text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class QState(StrEnum):
    """A tracked question's state (spec: open / answered / resolved / stale / withdrawn)."""

    OPEN = "open"
    ANSWERED = "answered"
    RESOLVED = "resolved"
    STALE = "stale"
    WITHDRAWN = "withdrawn"


#: States in which nudges may still fire.
NUDGEABLE = frozenset({QState.OPEN})


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What lien keeps of a message: who, where, when, and what it replies to. No text."""

    community: str
    room: str
    id: str
    author: str
    ts: datetime
    reply_to: str | None = None
    thread: str | None = None


@dataclass(slots=True)
class Question:
    """A tracked question. `answers` and `credited` are in time order."""

    community: str
    id: str
    room: str
    author: str
    asked_ts: datetime
    thread: str | None = None
    state: QState = QState.OPEN
    answered_by: str | None = None
    first_answer_ts: datetime | None = None
    resolved_ts: datetime | None = None
    answers: list[str] = field(default_factory=list)
    credited: list[str] = field(default_factory=list)
    nudges: int = 0
    #: Highest nudge level already sent (0 = none).
    level: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """A message linked to a question as an answer; `how` says why (reply, thread, mention, position)."""

    community: str
    question: str
    message: str
    author: str
    ts: datetime
    how: str


@dataclass(frozen=True, slots=True)
class HelpEdge:
    """`helper` helped `asker` on `question` (`kind`: answer or credit); the raw material of reciprocity."""

    community: str
    room: str
    helper: str
    asker: str
    question: str
    kind: str
    ts: datetime


class NudgeState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    CANCELLED = "cancelled"
    SKIPPED_OVERDUE = "skipped_overdue"


@dataclass(slots=True)
class Nudge:
    """One rung of the ladder for one question; the row is the truth, the scheduler only a timer.

    Once sent, `due` is when it was sent: ping budgets and asker cooldowns are rebuilt from it after a restart.
    """

    community: str
    question: str
    level: int
    due: datetime
    state: NudgeState = NudgeState.PENDING
    #: Members mentioned at level 2 and why (one line each), for `!lien why` and the ping budgets.
    mentioned: tuple[str, ...] = ()
    why: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return nudge_key(self.community, self.question, self.level)


@dataclass(frozen=True, slots=True)
class SentPing:
    """A sent level-2 nudge read back from its row: whom it pinged, when, and whether they helped."""

    community: str
    question: str
    ts: datetime
    mentioned: tuple[str, ...]
    #: The question is no longer open, so each pinged member either helped or let the ping pass.
    settled: bool
    #: Members who answered the question or were credited on it.
    helpers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SentReminder:
    """The latest level-1 nudge sent about an asker's questions in a room (the asker cooldown)."""

    community: str
    room: str
    asker: str
    ts: datetime


def nudge_key(community: str, question: str, level: int) -> str:
    """Deterministic timer and idempotency key of a nudge."""
    return f"nudge|{community}|{question}|{level}"


@dataclass(slots=True)
class MemberPrefs:
    """A member's consent and preferences; defaults mean: never pinged as helper, no DMs."""

    community: str
    member: str
    helper: bool = False
    #: Rooms the member helps in when `helper` is on; empty means the whole community.
    helper_rooms: tuple[str, ...] = ()
    optout: bool = False
    dms: bool = False
    language: str | None = None
    #: May lien thank this member by name in digests?
    named_thanks: bool = False


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An action decided and waiting for (or past) delivery, keyed by its idempotency key."""

    key: str
    community: str
    created: datetime
    payload: dict[str, object]
    sent_at: datetime | None = None
