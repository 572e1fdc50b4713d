"""Outbound actions, exactly as `spec/events.md` names and shapes them.

The core returns these; the edge (an adapter, or `simulate`) performs or records them. Every action passes the
outbound gate (`bot.gate`) before it leaves the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """Fields common to every action; `name` is the spec's `action` value."""

    name: ClassVar[str] = ""
    ts: datetime
    community: str
    room: str | None
    kind: str
    text: str = ""
    reply_to: str | None = None
    question: str | None = None
    level: int | None = None
    mentions: tuple[str, ...] = ()
    to: str | None = None
    reason: str | None = None
    #: Idempotency key for restart-safe delivery (e.g. "q:<community>:<id>:2"); not part of the JSONL output.
    key: str | None = None
    #: Thread to post into, when the platform has threads; not part of the JSONL output.
    thread: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Post(Action):
    """A new message in a room."""

    name: ClassVar[str] = "post"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Action):
    """A message answering `reply_to` (in its thread where there is one)."""

    name: ClassVar[str] = "reply"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dm(Action):
    """A private message to `to`; only to members who allowed DMs."""

    name: ClassVar[str] = "dm"


@dataclass(frozen=True, slots=True, kw_only=True)
class React(Action):
    """An emoji reaction (in `text`) on `reply_to`."""

    name: ClassVar[str] = "react"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteMessage(Action):
    """Delete the message `reply_to` (guard)."""

    name: ClassVar[str] = "delete"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout(Action):
    """Time out the member `to` for `minutes` (guard); never a ban.

    `minutes` comes from the guard's escalation settings of the room, the length the member is told; it is not a
    spec field (the spec's `timeout` has none), so `lien simulate` output is unchanged.
    """

    name: ClassVar[str] = "timeout"
    minutes: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse(Action):
    """A kind refusal of a request lien will not carry out, with `reason`."""

    name: ClassVar[str] = "refuse"


@dataclass(frozen=True, slots=True, kw_only=True)
class Report(Action):
    """A note to the moderators' room."""

    name: ClassVar[str] = "report"


ACTION_TYPES: dict[str, type[Action]] = {
    cls.name: cls for cls in (Post, Reply, Dm, React, DeleteMessage, Timeout, Refuse, Report)
}

#: Order of fields in a JSONL action line (spec order); `None`/empty values are still written for stability.
SPEC_FIELDS = ("ts", "action", "community", "room", "to", "reply_to", "question", "kind", "level", "mentions",
               "text", "reason")


def to_record(action: Action) -> dict[str, object]:
    """A JSON-ready record of the action (for the outbox); `from_record` reverses it."""
    rec: dict[str, object] = {"action": action.name}
    for f in ("community", "room", "kind", "text", "reply_to", "question", "level", "to", "reason", "key", "thread"):
        rec[f] = getattr(action, f)
    rec["mentions"] = list(action.mentions)
    rec["ts"] = action.ts.isoformat()
    return rec


def from_record(rec: dict[str, object]) -> Action:
    """The action a `to_record` record describes."""
    from datetime import datetime

    cls = ACTION_TYPES[str(rec["action"])]
    fields = {k: v for k, v in rec.items() if k not in ("action", "ts", "mentions")}
    mentions = rec.get("mentions") or []
    assert isinstance(mentions, list)
    return cls(ts=datetime.fromisoformat(str(rec["ts"])), mentions=tuple(str(m) for m in mentions), **fields)  # type: ignore[arg-type]
