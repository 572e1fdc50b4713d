"""The ports the core needs, owned by the core: a clock, a scheduler and the repositories.

Repositories behave like a unit of work: `add`/`save` calls are buffered and written at commit (so a replay can
batch thousands of events into one transaction), reads are `async` and see what the same transaction wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from bot.actions import Action
from bot.events import Event
from bot.model import (
    Answer,
    HelpEdge,
    MemberPrefs,
    MessageMeta,
    Nudge,
    OutboxItem,
    Question,
    SentPing,
    SentReminder,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...


class Scheduler(Protocol):
    """Only a timer: when `key` is due, the runner calls `engine.fire(key)`. Re-arming a key replaces it."""

    def at(self, when: datetime, key: str) -> None: ...

    def cancel(self, key: str) -> None: ...


class MessageRepo(Protocol):
    def add(self, meta: MessageMeta) -> None:
        """Record a message's metadata; a message already recorded is left as it is."""
        ...

    async def get(self, community: str, id: str) -> MessageMeta | None: ...

    async def recent(self, community: str, room: str, limit: int) -> list[MessageMeta]:
        """The room's latest `limit` messages, oldest first (warm start of the linker)."""
        ...

    async def last_in_room(self, community: str, room: str) -> MessageMeta | None:
        """The newest message processed in a room (catch-up after a restart)."""
        ...

    async def active_authors(self, community: str, room: str, since: datetime) -> dict[str, datetime]:
        """Authors who posted in the room since `since`, with their latest message time."""
        ...


class QuestionRepo(Protocol):
    def save(self, q: Question) -> None:
        """Insert or replace the question's row (answers and credited included)."""
        ...

    async def get(self, community: str, id: str) -> Question | None: ...

    async def live(self, since: datetime) -> list[Question]:
        """Questions still open, or closed at or after `since` (the linker's working set at start)."""
        ...

    async def page(self, after: tuple[str, str] | None, limit: int) -> list[Question]:
        """All questions ordered by (id, community), the `limit` after the key `after` (keyset pagination)."""
        ...

    async def unanswered(self, community: str, room: str | None, limit: int) -> list[Question]:
        """Open and stale questions, oldest first."""
        ...

    async def asked_between(self, community: str, room: str | None, since: datetime, until: datetime
                            ) -> list[Question]:
        """Questions asked in [since, until), oldest first (health metrics; answers/credited may be left empty)."""
        ...

    async def first_seen(self, community: str, members: Sequence[str]) -> dict[str, datetime]:
        """Each member's earliest question asked or help given in the stored history."""
        ...

    async def communities(self) -> list[str]:
        """Every community with stored questions."""
        ...

    async def first_answer_delays(self, community: str, room: str, since: datetime, limit: int) -> list[float]:
        """Seconds from asking to first answer for the `limit` latest questions asked since `since` in the room,
        oldest first."""
        ...


class AnswerRepo(Protocol):
    def add(self, answer: Answer) -> None: ...

    async def for_message(self, community: str, message: str) -> list[Answer]:
        """Links in which `message` is the answer."""
        ...

    async def for_question(self, community: str, question: str) -> list[Answer]:
        """The answers linked to `question`, in time order."""
        ...


class HelpRepo(Protocol):
    def add(self, edge: HelpEdge) -> None: ...

    async def between(self, community: str, helpers: Sequence[str], asker: str, since: datetime) -> list[HelpEdge]:
        """Edges in either direction between `asker` and each of `helpers` since `since`."""
        ...

    async def in_room(self, community: str, room: str, since: datetime) -> list[HelpEdge]: ...

    async def during(self, community: str, room: str | None, since: datetime, until: datetime) -> list[HelpEdge]:
        """Help edges in [since, until), in time order."""
        ...


class NudgeRepo(Protocol):
    def save(self, nudge: Nudge) -> None:
        """Insert or replace the nudge row (by community, question, level)."""
        ...

    async def pending(self) -> list[Nudge]:
        """Every pending nudge (to re-arm timers at start and in the reconcile pass)."""
        ...

    async def due(self, before: datetime, limit: int) -> list[Nudge]:
        """Pending nudges due before `before`, earliest first (indexed; never a scan)."""
        ...

    async def for_question(self, community: str, question: str) -> list[Nudge]: ...

    async def pings_since(self, since: datetime) -> list[SentPing]:
        """Sent level-2 nudges that mentioned someone, sent at or after `since`, oldest first (ping budgets)."""
        ...

    async def reminders_since(self, since: datetime) -> list[SentReminder]:
        """Per (community, room, asker), the latest level-1 nudge sent at or after `since` (asker cooldowns)."""
        ...


class MemberRepo(Protocol):
    def save(self, prefs: MemberPrefs) -> None: ...

    async def get(self, community: str, member: str) -> MemberPrefs | None: ...

    async def in_community(self, community: str) -> list[MemberPrefs]:
        """Every member of the community who set a preference (a minority: most members never do)."""
        ...

    async def helpers(self, community: str, room: str) -> list[MemberPrefs]:
        """Members who opted in as helpers for this room (or the whole community) and did not opt out."""
        ...


class OutboxRepo(Protocol):
    """Actions decided in a transaction, delivered exactly once by the runtime."""

    def put(self, key: str, community: str, payload: dict[str, object], created: datetime) -> None:
        """Queue an entry; a key already put is left as it is."""
        ...

    def mark_sent(self, key: str, ts: datetime) -> None: ...

    async def get(self, key: str) -> OutboxItem | None: ...

    async def unsent(self, limit: int) -> list[OutboxItem]:
        """Entries not yet delivered, oldest first."""
        ...


class KvRepo(Protocol):
    """Small named values kept between runs (an adapter's sync token, a direct room id)."""

    async def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class SeenRepo(Protocol):
    """Idempotency keys of handled events that leave no other row (commands), purged with retention."""

    async def first(self, community: str, key: str, ts: datetime) -> bool:
        """Record `key`; True the first time it is seen, False on every later call (in this or any transaction)."""
        ...


class StrikeRepo(Protocol):
    """The guard's strikes (member and time only), so that its ladder survives a restart."""

    def add(self, community: str, member: str, ts: datetime) -> None:
        """Record a strike."""
        ...

    async def clear(self, community: str, member: str) -> int:
        """Delete the member's strikes (a pardon); returns how many there were."""
        ...

    async def since(self, since: datetime) -> list[tuple[str, str, datetime]]:
        """(community, member, ts) of every strike at or after `since`, oldest first."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete strikes older than `before` (no ladder looks that far back); returns how many."""
        ...


class Tx(Protocol):
    """One unit of work; committed when its context exits without error."""

    messages: MessageRepo
    questions: QuestionRepo
    answers: AnswerRepo
    edges: HelpRepo
    nudges: NudgeRepo
    members: MemberRepo
    outbox: OutboxRepo
    kv: KvRepo
    seen: SeenRepo
    strikes: StrikeRepo

    async def forget_member(self, community: str, member: str) -> dict[str, int]:
        """Delete every row naming the member; returns rows deleted per table."""
        ...

    async def member_data(self, community: str, member: str) -> dict[str, list[dict[str, object]]]:
        """Every row naming the member, per table, as plain values (for `!lien mydata`)."""
        ...

    async def purge(self, before: datetime) -> dict[str, int]:
        """Delete rows older than `before` (retention), folding help edges into aggregates first."""
        ...


class Store(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...


class EventHandler(Protocol):
    """What an adapter calls for each translated event; the runtime runs the engine and performs the actions."""

    async def __call__(self, event: Event) -> None: ...


class Adapter(Protocol):
    """A platform edge: translates platform events into `Event`s and performs `Action`s, nothing more.

    `perform` raises `bot.errors.UnsupportedAction` for an action type it cannot carry out, and returns only once
    the platform accepted the action (it retries rate limits itself, never drops). `already_sent(action)` lets
    restart-safe delivery check for lien's own earlier message where the platform allows it.
    """

    platform: str

    async def start(self, on_event: EventHandler) -> None: ...

    async def perform(self, action: Action) -> None: ...

    async def already_sent(self, action: Action) -> bool: ...

    async def stop(self) -> None: ...
