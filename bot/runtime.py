"""The live runtime: events from adapters go through the engine; actions are delivered, paced and exactly once.

Keyed actions (nudges) were written to the outbox by the engine in the same transaction as the decision. The
runtime performs them and marks them sent; after a restart it delivers what was left unsent, first asking the
adapter whether lien's own message is already there (a crash between send and mark must not ping twice).
Each room gets at most one lien message per `room_pace_seconds`; later ones wait in the room's queue, never
dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot import render
from bot.actions import Action, DeleteMessage, Report, Timeout, from_record
from bot.engine import Engine
from bot.errors import UnsupportedAction
from bot.events import Event
from bot.ports import Adapter, Clock
from bot.tasks import TaskSet

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
#: A refused guard action of one kind is reported to the moderators at most this often per community.
REFUSAL_NOTE_EVERY = timedelta(minutes=10)


class Runtime:
    """Wires adapters to the engine; owns the delivery queues and their tasks."""

    def __init__(self, engine: Engine, adapters: list[Adapter], clock: Clock, *, sleep: Sleep = asyncio.sleep) -> None:
        if not adapters:
            raise ValueError("the runtime needs at least one adapter")
        self.engine, self.adapters, self.clock, self._sleep = engine, adapters, clock, sleep
        self._route: dict[str, Adapter] = {}
        self._queues: dict[tuple[str, str | None], asyncio.Queue[Action]] = {}
        self._free_at: dict[tuple[str, str | None], datetime] = {}
        self._refusal_noted: dict[tuple[str, str], datetime] = {}
        self._tasks = TaskSet(logger=log)
        self._lock = asyncio.Lock()

    # -- inputs ------------------------------------------------------------------------------------------------

    def handler_for(self, adapter: Adapter) -> Callable[[Event], Awaitable[None]]:
        """The `on_event` callback to give `adapter`: it learns which adapter serves which community."""

        async def on_event(event: Event) -> None:
            self._route.setdefault(event.community, adapter)
            await self.dispatch(event)

        return on_event

    async def dispatch(self, event: Event) -> None:
        """Process one event and queue its actions; engine errors are logged, never raised into the adapter."""
        try:
            async with self._lock:
                actions = await self.engine.handle(event)
        except Exception:
            log.exception("engine failed on %s %s in %s", type(event).__name__, getattr(event, "id", ""),
                          event.community)
            return
        await self.deliver(actions)

    async def on_timer(self, key: str) -> None:
        """A timer fired: run the job and queue its actions."""
        try:
            async with self._lock:
                if key == "reconcile":
                    await self.engine.reconcile()
                    return
                actions = await self.engine.fire(key)
        except Exception:
            log.exception("timer %s failed", key)
            return
        await self.deliver(actions)

    # -- delivery ----------------------------------------------------------------------------------------------

    def adapter_for(self, community: str) -> Adapter:
        return self._route.get(community) or self.adapters[0]

    async def deliver(self, actions: list[Action]) -> None:
        for action in actions:
            key = (action.community, action.room)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = asyncio.Queue()
                self._tasks.spawn(self._drain(key, queue), f"deliver:{action.community}:{action.room}")
            queue.put_nowait(action)

    async def deliver_unsent(self) -> int:
        """At start: deliver outbox entries a previous run decided but did not mark sent; returns how many.

        An entry decided more than `catch_up_hours` ago is given up (marked done, never sent), as an overdue
        pending nudge is skipped: a nudge days late, after a long outage, is noise about a stale conversation.
        """
        now = self.clock.now()
        actions: list[Action] = []
        async with self.engine.store.transaction() as tx:
            for item in await tx.outbox.unsent(10_000):  # type: ignore[attr-defined]
                if not self.engine.owns(item.community):
                    continue
                action = from_record(item.payload)
                ns = self.engine.settings.room(item.community, action.room).nudges
                if item.created < now - timedelta(hours=ns.catch_up_hours):
                    log.warning("%s not delivered: decided at %s, more than catch_up_hours ago", item.key,
                                item.created.isoformat())
                    tx.outbox.mark_sent(item.key, now)  # type: ignore[attr-defined]
                    continue
                actions.append(action)
        await self.deliver(actions)
        return len(actions)

    async def drained(self) -> None:
        """Wait until every queued action was delivered (tests, shutdown)."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def _drain(self, key: tuple[str, str | None], queue: asyncio.Queue[Action]) -> None:
        while True:
            action = await queue.get()
            try:
                await self._pace(key, action)
                await self._perform(action)
            except Exception:
                log.exception("delivery of %s %s failed", action.name, action.key or "")
            finally:
                queue.task_done()

    async def _pace(self, key: tuple[str, str | None], action: Action) -> None:
        if action.room is None:
            return
        pace = self.engine.settings.room(action.community, action.room).nudges.room_pace_seconds
        now = self.clock.now()
        free = self._free_at.get(key, now)
        if free > now:
            await self._sleep((free - now).total_seconds())
        self._free_at[key] = max(free, now) + timedelta(seconds=pace)

    async def _perform(self, action: Action) -> None:
        adapter = self.adapter_for(action.community)
        if action.key is not None:
            async with self.engine.store.transaction() as tx:
                item = await tx.outbox.get(action.key)  # type: ignore[attr-defined]
            if item is not None and item.sent_at is not None:
                return  # delivered before
            if await adapter.already_sent(action):
                log.info("%s was already on the platform; marking it sent", action.key)
            else:
                await adapter.perform(action)
            async with self.engine.store.transaction() as tx:
                tx.outbox.mark_sent(action.key, self.clock.now())  # type: ignore[attr-defined]
            return
        try:
            await adapter.perform(action)
        except UnsupportedAction as exc:
            log.warning("%s cannot perform %s: %s", adapter.platform, action.name, exc)
            if isinstance(action, DeleteMessage | Timeout) and self._first_refusal(action):
                # The guard's report already told the moderators what lien did: they must learn it did not.
                await self.deliver([self._not_done(action, exc)])

    def _first_refusal(self, action: Action) -> bool:
        """Is this the first refusal of its kind in the community for `REFUSAL_NOTE_EVERY`? A missing permission
        refuses every delete of a flood: the moderators need to hear it once, not once per message."""
        key, now = (action.community, action.name), self.clock.now()
        last = self._refusal_noted.get(key)
        if last is not None and now - last < REFUSAL_NOTE_EVERY:
            return False
        self._refusal_noted[key] = now
        return True

    def _not_done(self, action: DeleteMessage | Timeout, exc: UnsupportedAction) -> Action:
        """A note to the moderators' room (else the action's room) that a guard action was refused, and why."""
        rs = self.engine.settings.room(action.community, action.room)
        why = render.safe(str(exc), 300)
        if isinstance(action, Timeout):
            text = render.text("not_done_timeout", rs.language, who=render.safe(action.to or "?", 80), why=why)
        else:
            link = render.question_link(render.safe(action.room or "?", 100), render.safe(action.reply_to or "?", 100))
            text = render.text("not_done_delete", rs.language, message=link, why=why)
        note = Report(ts=self.clock.now(), community=action.community, room=rs.moderators_room or action.room,
                      kind="guard", reason=getattr(exc, "reason", None) or "permission", text=text)
        return self.engine.gate.check(note)

    async def stop(self) -> None:
        """Cancel the delivery tasks (undelivered keyed actions stay in the outbox for the next start)."""
        await self._tasks.stop()
