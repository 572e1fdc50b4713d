"""Inbound events, exactly as `spec/events.md` names and shapes them.

Only these values, string ids and tz-aware datetimes cross into the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

#: The times lien reads (`EARLIEST_TS` <= ts < `LATEST_TS`): no chat platform predates Unix time, and its date
#: arithmetic (retention and history lookbacks, the ladder, a replay's run-on) needs room inside datetime's range.
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(9999, 1, 1, tzinfo=UTC)
#: How errors name that range.
TS_RANGE = f"years {EARLIEST_TS.year} to {LATEST_TS.year - 1} in UTC"


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message; `text` is read by the core but never stored."""

    community: str
    room: str
    id: str
    ts: datetime
    author: str
    text: str
    reply_to: str | None = None
    thread: str | None = None
    mentions: tuple[str, ...] = ()
    is_bot: bool = False
    author_name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """`author` reacted with `emoji` to the message `message`."""

    community: str
    room: str
    message: str
    author: str
    emoji: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Edit:
    """The message `id` now reads `text`."""

    community: str
    room: str
    id: str
    text: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Delete:
    """The message `id` was deleted (Discord delete, Matrix redaction)."""

    community: str
    room: str
    id: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class MemberJoin:
    """`author` joined the community."""

    community: str
    author: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class MemberLeave:
    """`author` left the community."""

    community: str
    author: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Command:
    """A lien command, from a slash command or a prefixed message; `is_admin` comes from the platform."""

    community: str
    room: str
    id: str
    author: str
    ts: datetime
    name: str
    args: tuple[str, ...] = field(default=())
    is_admin: bool = False
    #: True when the command arrived in a private conversation with lien (never changes community settings).
    is_dm: bool = False


Event = Message | Reaction | Edit | Delete | MemberJoin | MemberLeave | Command

EVENT_TYPES: dict[str, type] = {
    "message": Message,
    "reaction": Reaction,
    "edit": Edit,
    "delete": Delete,
    "member_join": MemberJoin,
    "member_leave": MemberLeave,
    "command": Command,
}
TYPE_NAMES: dict[type, str] = {cls: name for name, cls in EVENT_TYPES.items()}
