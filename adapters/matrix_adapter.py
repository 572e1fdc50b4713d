"""The Matrix edge on matrix-nio: login, sync loop, invites, and performing actions; translation is elsewhere.

`MatrixAdapter` implements `bot.ports.Adapter`. It keeps the sync token in the injected key-value port, so a
restart resumes exactly where the previous run stopped; the very first start skips all history. Outgoing events go
through one queue per room that waits out 429s (`retry_after_ms`) and network failures and never drops an action;
nio's own retry loops are switched off so that every error response reaches this module and is checked here.
End-to-end encryption is not supported: encrypted events are skipped with one warning per room.
Matrix has no timeout: a `Timeout` mutes the member by lowering their power level below what sending needs, in the
room of the hit and in every other room lien shares with them (a timeout covers the community, as on Discord), and
a task restores it after the action's `minutes`; running mutes are kept in the key-value port, so a restart still
restores them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomResolveAliasResponse,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)
from pydantic import AfterValidator, Field, ValidationError

from adapters.matrix_events import (
    KEY_FIELD,
    creators_of,
    event_type,
    invite_allowed,
    inviter_of,
    plan_mute,
    plan_unmute,
    power_change_refusal,
    power_level,
    thread_root,
    to_content,
    to_event,
)
from bot.actions import Action, DeleteMessage, Dm, Post, Refuse, Reply, Timeout
from bot.clock import SystemClock
from bot.config_file import MatrixSection
from bot.errors import ActionRefused, ConfigError, LienError, UnsupportedAction
from bot.ports import Clock, EventHandler
from bot.tasks import TaskSet

log = logging.getLogger(__name__)

KvGet = Callable[[str], Awaitable[str | None]]
KvSet = Callable[[str, str], Awaitable[None]]

#: Errors of the transport (not of the homeserver): retried with backoff, never surfaced to the caller.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, ConnectionError)
#: Homeserver answers that mean the access token or password is wrong: retrying cannot help.
AUTH_ERRCODES = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN", "M_USER_DEACTIVATED"})
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": True},
             "ephemeral": {"not_types": ["*"]}},
}


#: A room id (`!opaque:server`, or `!opaque` from room version 12 on) or an alias (`#name:server`).
_ROOM_REF = re.compile(r"![^\s:]+(?::\S+)?|#[^\s:]+:\S+")


def _room_ref(value: str) -> str:
    if _ROOM_REF.fullmatch(value):
        return value
    raise ValueError('must be a room id ("!abc:example.org", or "!opaque" in room v12) or alias ("#lien:example.org")')


class MatrixSettings(MatrixSection):
    """The `[matrix]` table as the adapter uses it: the core's schema (`MatrixSection`) and the community id it gives.

    Secrets stay out: the composition root reads `access_token_env`/`_file` or `password_env`/`_file` with
    `bot.config_file.resolve_secret` and hands the adapter the values.
    """

    #: Rooms (ids or aliases) lien joins at start. Room v12 ids carry no server name (`!opaque`).
    rooms: Annotated[tuple[Annotated[str, AfterValidator(_room_ref)], ...], Field(strict=False)] = ()

    @property
    def community_id(self) -> str:
        """`community`, or the server name of lien's user id."""
        return self.community or self.user_id.partition(":")[2]

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> MatrixSettings:
        """Validate the raw `[matrix]` table; errors name the key as `matrix.KEY`."""
        try:
            return cls.model_validate(dict(section or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"matrix.{'.'.join(str(p) for p in e['loc']) or '(table)'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(problems) from None


class _Stopped(Exception):
    """Raised inside the adapter when stop() interrupts a wait; never leaves the module."""


class MatrixError(LienError):
    """The homeserver rejected a request for a reason retrying will not fix; carries its errcode."""

    def __init__(self, problem: str, *, errcode: str | None = None) -> None:
        self.errcode = errcode
        super().__init__(problem)


@dataclass(slots=True)
class _Room:
    """What lien tracks of a joined room to translate its events."""

    power_levels: dict[str, Any] = field(default_factory=dict)
    creators: frozenset[str] = frozenset()
    joined_at: int = 0
    warned_encrypted: bool = False


@dataclass(slots=True)
class _Mute:
    """A member lien muted in a room: their level while muted, their own entry to restore (None: none), and when."""

    room: str
    member: str
    level: int
    previous: int | None
    until: datetime


@dataclass(frozen=True, slots=True)
class _Unchanged:
    """What a queued state update returns when it found nothing to write: done, with no event id."""

    event_id: str = ""
    room_id: str = ""


_UNCHANGED = _Unchanged()
#: What a send-queue item may answer when it succeeded.
_SENT = (RoomSendResponse, RoomRedactResponse, RoomPutStateResponse, _Unchanged)


@dataclass(slots=True)
class _Outgoing:
    send: Callable[[], Awaitable[Any]]
    what: str
    done: asyncio.Future[str]


def backoff_delay(failures: int, *, initial: float, cap: float, rng: Callable[[], float]) -> float:
    """Capped exponential backoff with equal jitter: in [d/2, d] where d = min(cap, initial * 2**failures)."""
    delay = min(cap, initial * (2 ** min(failures, 30)))
    return delay / 2 + rng() * delay / 2


class MatrixAdapter:
    """`bot.ports.Adapter` for Matrix; `start` returns once logged in and synced, the sync loop runs on its own."""

    platform = "matrix"

    def __init__(
        self,
        *,
        homeserver: str,
        user_id: str,
        community: str,
        kv_get: KvGet,
        kv_set: KvSet,
        access_token: str | None = None,
        password: str | None = None,
        device_id: str | None = None,
        device_name: str = "lien",
        allowed_inviters: Collection[str] = (),
        rooms: Collection[str] = (),
        bot_ids: Collection[str] = (),
        command_prefix: str = "!lien",
        sync_timeout_ms: int = 30_000,
        backfill_pages: int = 20,
        backoff_initial: float = 1.0,
        backoff_cap: float = 300.0,
        rng: Callable[[], float] = random.random,
        stop_grace: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if not access_token and not password:
            raise ConfigError("matrix: set access_token (preferred) or password")
        self.homeserver = homeserver
        self.user_id = user_id
        self.community = community
        self._kv_get = kv_get
        self._kv_set = kv_set
        self._access_token = access_token
        self._password = password
        self._device_id = device_id
        self._device_name = device_name
        self._allowed = frozenset(allowed_inviters)
        self._join_at_start = tuple(dict.fromkeys(rooms))
        self._bot_ids = frozenset(bot_ids)
        self._prefix = command_prefix
        self._sync_timeout_ms = sync_timeout_ms
        self._backfill_pages = backfill_pages
        self._backoff_initial = backoff_initial
        self._backoff_cap = backoff_cap
        self._rng = rng
        self._stop_grace = stop_grace
        self._clock: Clock = clock or SystemClock()

        self._client: AsyncClient | None = None
        self._on_event: EventHandler | None = None
        self._next_batch: str | None = None
        self._rooms: dict[str, _Room] = {}
        self._thread_of: OrderedDict[str, str | None] = OrderedDict()
        self._handled_invites: set[str] = set()
        self._queues: dict[str, asyncio.Queue[_Outgoing]] = {}
        self._dm_locks: dict[str, asyncio.Lock] = {}
        self._sent_keys: set[str] = set()
        self._tasks = TaskSet(logger=log)
        self._sync_task: asyncio.Task[None] | None = None
        self._poll: asyncio.Future[Any] | None = None
        self._stopping = asyncio.Event()
        self._mutes: dict[tuple[str, str], _Mute] = {}
        self._mute_timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._mutes_saving = asyncio.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: MatrixSettings,
        *,
        kv_get: KvGet,
        kv_set: KvSet,
        access_token: str | None,
        password: str | None,
        bot_ids: Collection[str] = (),
        default_prefix: str = "!lien",
        clock: Clock | None = None,
    ) -> MatrixAdapter:
        """The adapter a validated `[matrix]` table describes, with its secrets already resolved."""
        return cls(
            homeserver=settings.homeserver, user_id=settings.user_id, community=settings.community_id,
            kv_get=kv_get, kv_set=kv_set, access_token=access_token, password=password,
            device_id=settings.device_id, allowed_inviters=settings.invite_allow, rooms=settings.rooms,
            bot_ids=bot_ids, command_prefix=settings.command_prefix or default_prefix,
            clock=clock,
        )

    # -- kv keys ---------------------------------------------------------------------------------------------

    def _kv(self, name: str) -> str:
        return f"matrix:{self.user_id}:{name}"

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def start(self, on_event: EventHandler) -> None:
        """Log in, run the first sync and start the sync loop; returns once caught up.

        On a first start all history is skipped; on a restart every event since the stored sync token has been
        handed to `on_event` (and awaited) before this returns, so timers started afterwards see caught-up state.
        Rooms listed in `rooms` are joined last.
        """
        self._on_event = on_event
        self._stopping.clear()
        try:
            self._client = await self._connect()
            self._next_batch = await self._kv_get(self._kv("next_batch"))
            first = self._next_batch is None
            # With a stored token the first sync asks for full state: lien keeps no room state across restarts.
            resp = await self._sync_until_ok(full_state=True)
        except _Stopped:
            return
        await self._handle_sync(resp, emit=not first)
        await self._commit_token(resp.next_batch)
        log.info("matrix %s synced (%s)", self.user_id, "first start, history skipped" if first else "resumed")
        await self._join_configured()
        await self._resume_mutes()
        self._sync_task = self._tasks.spawn(self._sync_loop(), "matrix sync loop")

    async def stop(self) -> None:
        """Stop syncing after the batch in hand, let queued sends finish (up to a grace period), close."""
        self._stopping.set()
        if self._poll is not None:
            self._poll.cancel()
        if self._sync_task is not None:
            done, _ = await asyncio.wait({self._sync_task}, timeout=self._stop_grace)
            if not done:
                log.warning("matrix: event handling did not finish within %.0fs; cancelled", self._stop_grace)
        drained = [asyncio.ensure_future(q.join()) for q in self._queues.values()]
        if drained:
            _, pending = await asyncio.wait(drained, timeout=self._stop_grace)
            for waiter in pending:
                waiter.cancel()
        await self._tasks.stop()
        for room_id, queue in self._queues.items():
            while not queue.empty():
                item = queue.get_nowait()
                log.warning("matrix: stopped before sending %s in %s", item.what, room_id)
                if not item.done.done():
                    item.done.set_exception(MatrixError(f"matrix: stopped before sending {item.what}"))
        self._queues.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the adapter is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _retry_delay(self, failures: int, resp: object) -> float:
        """The server's `retry_after_ms` when it gave one (a 429), else capped backoff with jitter."""
        retry_ms = getattr(resp, "retry_after_ms", None)
        if isinstance(retry_ms, int | float) and retry_ms > 0:
            return retry_ms / 1000 + self._rng() * 0.05
        return backoff_delay(failures, initial=self._backoff_initial, cap=self._backoff_cap, rng=self._rng)

    # -- login ------------------------------------------------------------------------------------------------

    async def _connect(self) -> AsyncClient:
        device_id = self._device_id or await self._kv_get(self._kv("device_id"))
        # max_limit_exceeded/max_timeouts 0: nio hands every 429 and network error back instead of looping.
        config = AsyncClientConfig(encryption_enabled=False, max_limit_exceeded=0, max_timeouts=0,
                                   request_timeout=self._sync_timeout_ms / 1000 + 30)
        client = AsyncClient(self.homeserver, self.user_id, device_id=device_id, config=config)
        try:
            return await self._login(client, device_id)
        except asyncio.CancelledError:
            await client.close()  # stopped while the homeserver was still being reached
            raise

    async def _login(self, client: AsyncClient, device_id: str | None) -> AsyncClient:
        """Log in, or check the access token, retrying with backoff until the homeserver answers; `client`."""
        failures = 0
        while True:
            try:
                if self._access_token:
                    client.restore_login(self.user_id, device_id or "", self._access_token)
                    resp: Any = await client.whoami()
                    if isinstance(resp, WhoamiResponse):
                        if resp.user_id != self.user_id:
                            await client.close()
                            raise ConfigError(f"matrix.access_token: belongs to {resp.user_id}, not {self.user_id}")
                        client.device_id = resp.device_id or device_id or ""
                        break
                else:
                    resp = await client.login(self._password, device_name=self._device_name)
                    if isinstance(resp, LoginResponse):
                        break
                if isinstance(resp, ErrorResponse) and resp.status_code in AUTH_ERRCODES:
                    await client.close()
                    which = "access_token" if self._access_token else "password"
                    raise ConfigError(f"matrix.{which}: rejected by {self.homeserver} ({resp.status_code})")
            except TRANSPORT_ERRORS as exc:
                resp = exc
            delay = self._retry_delay(failures, resp)
            log.warning("matrix login to %s failed (%s); retry %d in %.1fs", self.homeserver, _described(resp),
                        failures + 1, delay)
            failures += 1
            if await self._pause(delay):
                await client.close()
                raise _Stopped
        if client.device_id and client.device_id != device_id:
            await self._kv_set(self._kv("device_id"), client.device_id)
        log.info("matrix logged in as %s on device %s", self.user_id, client.device_id)
        return client

    # -- sync -------------------------------------------------------------------------------------------------

    async def _sync_once(self, *, full_state: bool = False) -> Any:
        assert self._client is not None
        self._poll = asyncio.ensure_future(self._client.sync(
            timeout=0 if full_state else self._sync_timeout_ms, since=self._next_batch,
            sync_filter=SYNC_FILTER, full_state=full_state or None))
        try:
            return await self._poll
        finally:
            self._poll = None

    async def _sync_until_ok(self, *, full_state: bool = False) -> SyncResponse:
        failures = 0
        while True:
            try:
                resp = await self._sync_once(full_state=full_state)
            except TRANSPORT_ERRORS as exc:
                resp = exc
            if isinstance(resp, SyncResponse):
                return resp
            delay = self._retry_delay(failures, resp)
            level = logging.ERROR if getattr(resp, "status_code", None) in AUTH_ERRCODES else logging.WARNING
            log.log(level, "matrix sync failed (%s); retry %d in %.1fs", _described(resp), failures + 1, delay)
            failures += 1
            if await self._pause(delay):
                raise _Stopped

    async def _sync_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                resp = await self._sync_until_ok()
            except _Stopped:
                return
            except asyncio.CancelledError:
                if self._stopping.is_set():  # stop() cancelled the long poll, not this task
                    return
                raise
            await self._handle_sync(resp, emit=True)
            await self._commit_token(resp.next_batch)

    async def _commit_token(self, token: str) -> None:
        # Saved only after every event of the batch went to the core: a crash replays a batch, never skips one.
        self._next_batch = token
        await self._kv_set(self._kv("next_batch"), token)

    async def _handle_sync(self, resp: SyncResponse, *, emit: bool) -> None:
        since = self._next_batch
        for room_id, info in resp.rooms.join.items():
            room = self._rooms.setdefault(room_id, _Room())
            for ev in info.state:
                self._track_state(room, ev.source)
            timeline = [ev.source for ev in info.timeline.events]
            # A limited timeline skipped events since the last sync: fetch them, unless lien only just joined.
            if not self._note_own_join(room, timeline) and emit and since and info.timeline.limited:
                timeline = [*await self._backfill(room_id, info.timeline.prev_batch, since), *timeline]
                self._note_own_join(room, timeline)
            await self._emit_all(room_id, room, timeline, emit)
        for room_id, info in resp.rooms.leave.items():
            room = self._rooms.get(room_id, _Room())
            await self._emit_all(room_id, room, [ev.source for ev in info.timeline.events], emit)
            self._left(room_id, [ev.source for ev in info.timeline.events])
        for room_id, info in resp.rooms.invite.items():
            if room_id not in self._handled_invites:
                self._handled_invites.add(room_id)
                await self._consider_invite(room_id, info.invite_state)

    def _track_state(self, room: _Room, ev: Mapping[str, Any]) -> None:
        if ev.get("state_key") != "":
            return
        if ev.get("type") == "m.room.power_levels" and isinstance(ev.get("content"), Mapping):
            room.power_levels = dict(ev["content"])
        elif ev.get("type") == "m.room.create":
            room.creators = creators_of(ev)

    def _note_own_join(self, room: _Room, timeline: list[Mapping[str, Any]]) -> bool:
        """A (re)join in these events: everything older is backlog from before lien was in the room."""
        found = False
        for ev in timeline:
            if (ev.get("type") == "m.room.member" and ev.get("state_key") == self.user_id
                    and (ev.get("content") or {}).get("membership") == "join"
                    and ((ev.get("unsigned") or {}).get("prev_content") or {}).get("membership") != "join"):
                room.joined_at = max(room.joined_at, int(ev.get("origin_server_ts", 0)))
                found = True
        return found

    async def _emit_all(self, room_id: str, room: _Room, events: list[Mapping[str, Any]], emit: bool) -> None:
        for raw in events:
            if "state_key" in raw:
                self._track_state(room, raw)
            if not emit:
                continue
            if raw.get("type") == "m.room.encrypted" and not room.warned_encrypted:
                room.warned_encrypted = True
                log.warning("matrix room %s is encrypted: lien cannot read it (event %s skipped)",
                            room_id, raw.get("event_id"))
            event = to_event(
                room_id, raw, own_user_id=self.user_id, community=self.community, bot_ids=self._bot_ids,
                joined_at_ts=room.joined_at, power_levels=room.power_levels, creators=room.creators,
                command_prefix=self._prefix, is_dm=self._is_dm(room_id),
            )
            if isinstance(raw.get("event_id"), str):
                self._remember_thread(raw["event_id"], thread_root(raw))
            if event is None:
                continue
            assert self._on_event is not None
            try:
                await self._on_event(event)
            except Exception:
                log.exception("matrix: handling event %s in %s failed", raw.get("event_id"), room_id)

    async def _backfill(self, room_id: str, prev_batch: str | None, since: str) -> list[Mapping[str, Any]]:
        """Events between the last sync and a limited timeline, oldest first, so none is missed."""
        assert self._client is not None
        found: list[Mapping[str, Any]] = []
        token = prev_batch
        for _ in range(self._backfill_pages):
            try:
                resp = await self._client.room_messages(room_id, start=token, end=since,
                                                        direction=MessageDirection.back, limit=100)
            except TRANSPORT_ERRORS as exc:
                log.warning("matrix: backfill of %s failed: %r", room_id, exc)
                break
            if not isinstance(resp, RoomMessagesResponse):
                log.warning("matrix: backfill of %s failed: %s", room_id, resp)
                break
            found.extend(ev.source for ev in resp.chunk)
            if not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        else:
            log.warning("matrix: gap in %s longer than %d pages; older events skipped", room_id, self._backfill_pages)
        found.reverse()
        log.info("matrix: backfilled %d events in %s", len(found), room_id)
        return found

    def _remember_thread(self, event_id: str, root: str | None) -> None:
        self._thread_of[event_id] = root
        self._thread_of.move_to_end(event_id)
        while len(self._thread_of) > 10_000:
            self._thread_of.popitem(last=False)

    def _is_dm(self, room_id: str) -> bool:
        room = self._client.rooms.get(room_id) if self._client else None
        return room is not None and room.member_count <= 2

    def _left(self, room_id: str, timeline: list[Mapping[str, Any]]) -> None:
        self._rooms.pop(room_id, None)
        self._handled_invites.discard(room_id)
        for ev in reversed(timeline):
            if ev.get("type") == "m.room.member" and ev.get("state_key") == self.user_id:
                content = ev.get("content") or {}
                how = "left" if ev.get("sender") == self.user_id else f"removed by {ev.get('sender')}"
                log.info("matrix: lien %s room %s (%s)", how, room_id, content.get("reason") or "no reason")
                return
        log.info("matrix: lien is no longer in room %s", room_id)

    async def _join_configured(self) -> None:
        """Join the configured rooms lien is not in yet; a room it may not join is logged and skipped."""
        assert self._client is not None
        for room in self._join_at_start:
            room_id = room if room.startswith("!") else await self._resolve_alias(room)
            if room_id is not None and room_id in self._client.rooms:
                continue
            if await self._join(room, "it is listed in matrix.rooms"):
                log.info("matrix: joined %s (listed in matrix.rooms)", room)

    async def _resolve_alias(self, alias: str) -> str | None:
        """The room id of an alias, or None when it cannot be resolved now (joining will then say why)."""
        assert self._client is not None
        try:
            resp: Any = await self._client.room_resolve_alias(alias)
        except TRANSPORT_ERRORS:
            return None
        return resp.room_id if isinstance(resp, RoomResolveAliasResponse) else None

    async def _join(self, room: str, why: str) -> bool:
        """Join a room (id or alias), waiting out 429s and network errors; False when the server refuses."""
        assert self._client is not None
        failures = 0
        while True:
            try:
                resp: Any = await self._client.join(room)
            except TRANSPORT_ERRORS as exc:
                resp = exc
            if isinstance(resp, JoinResponse):
                return True
            if isinstance(resp, ErrorResponse) and not _retryable(resp):
                log.warning("matrix: could not join %s, although %s: %s", room, why, resp)
                return False
            delay = self._retry_delay(failures, resp)
            failures += 1
            if await self._pause(delay):
                return False

    async def _consider_invite(self, room_id: str, invite_state: list[Any]) -> None:
        inviter = inviter_of(invite_state, self.user_id)
        if not invite_allowed(inviter, self._allowed):
            log.warning("matrix: ignoring invite to %s from %s (not allow-listed)", room_id, inviter)
            return
        if await self._join(room_id, f"{inviter} invited lien"):
            log.info("matrix: joined %s on invite from %s", room_id, inviter)
        else:
            self._handled_invites.discard(room_id)

    # -- actions ----------------------------------------------------------------------------------------------

    async def perform(self, action: Action) -> None:
        """Carry out one action; returns once the homeserver accepted it (429s and network errors are retried)."""
        await self.deliver(action)

    async def deliver(self, action: Action) -> str:
        """Like `perform`, returning the id of the event lien sent."""
        if isinstance(action, Timeout):
            event_id = await self._mute(action)  # the room of the hit: a refusal there reaches the moderators
            await self._mute_elsewhere(action)
            return event_id
        if isinstance(action, DeleteMessage):
            return await self._redact(action)
        room_id = await self._dm_room(action.to) if isinstance(action, Dm) else action.room
        if not room_id:
            raise UnsupportedAction(f"{action.name} action without a room")
        reply_event = None
        if action.reply_to and not action.thread and isinstance(action, Post | Reply | Refuse):
            reply_event = await self._reply_target(room_id, action.reply_to)
        content = to_content(action, reply_event=reply_event)
        etype = event_type(action)
        txn = _txn_id(action.key)
        assert self._client is not None
        client = self._client
        event_id = await self._enqueue(room_id, lambda: client.room_send(room_id, etype, content, tx_id=txn),
                                       f"{action.name} {action.key}" if action.key else action.name)
        if action.key:
            self._sent_keys.add(action.key)
        return event_id

    async def already_sent(self, action: Action) -> bool:
        """True when lien's own recent messages in the action's room carry the action's idempotency key."""
        if not action.key:
            return False
        if action.key in self._sent_keys:
            return True
        room_id = action.room
        if isinstance(action, Dm):
            room_id = await self._kv_get(self._kv(f"dm:{action.to}")) if action.to else None
        if not room_id or self._client is None:
            return False
        flt = {"senders": [self.user_id], "types": [event_type(action)]}
        failures = 0
        while True:
            try:
                resp: Any = await self._client.room_messages(room_id, direction=MessageDirection.back, limit=100,
                                                             message_filter=flt)
            except TRANSPORT_ERRORS as exc:
                resp = exc
            if isinstance(resp, RoomMessagesResponse):
                return any((ev.source.get("content") or {}).get(KEY_FIELD) == action.key for ev in resp.chunk)
            if isinstance(resp, ErrorResponse) and not _retryable(resp):
                raise MatrixError(f"matrix: cannot read {room_id}: {resp}", errcode=resp.status_code)
            failures += 1
            if failures > 5 or await self._pause(self._retry_delay(failures, resp)):
                raise MatrixError(f"matrix: cannot read {room_id}: {resp!r}")

    async def _reply_target(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        if event_id in self._thread_of:
            root = self._thread_of[event_id]
            return {"event_id": event_id, "content": {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
                    if root else {}}
        assert self._client is not None
        try:
            resp = await self._client.room_get_event(room_id, event_id)
        except TRANSPORT_ERRORS:
            return None
        return dict(resp.event.source) if isinstance(resp, RoomGetEventResponse) else None

    def _joined(self, room_id: str) -> _Room:
        """The room lien is in, or ActionRefused (`not_in_room`): lien cannot act where it is not."""
        room = self._rooms.get(room_id)
        if room is None:
            raise ActionRefused(f"matrix: lien is not in {room_id}", reason="not_in_room")
        return room

    async def _redact(self, action: DeleteMessage) -> str:
        room_id, target = action.room, action.reply_to
        if not room_id or not target:
            raise UnsupportedAction("delete action needs room and reply_to")
        room = self._joined(room_id)
        needed = int(room.power_levels.get("redact", 50)) if room.power_levels else 50
        if power_level(self.user_id, room.power_levels, room.creators) < needed:
            raise ActionRefused(f"matrix: lien lacks power level {needed} to redact in {room_id}",
                                reason="permission")
        assert self._client is not None
        client = self._client
        txn = _txn_id(action.key)
        return await self._enqueue(room_id, lambda: client.room_redact(room_id, target, reason=action.reason,
                                                                       tx_id=txn), f"redact {target}")

    # -- mutes (Matrix's timeout) -----------------------------------------------------------------------------

    async def _mute(self, action: Timeout) -> str:
        """Mute `action.to` in `action.room` for `action.minutes` by power level; returns the state event id.

        A member lien already muted keeps the level to restore and gets a later end. The event id is "" when
        nothing had to be written (still muted, or already unable to send).
        """
        room_id, member = action.room, action.to
        if not room_id or not member:
            raise UnsupportedAction("timeout action needs room and to")
        room = self._joined(room_id)
        creators = room.creators
        # As for redactions: refuse at once on the state lien tracks; the write re-checks on the latest state.
        self._refuse_power_change(room_id, member, room.power_levels, creators)
        key = (room_id, member)
        until = self._clock.now() + timedelta(minutes=action.minutes)
        assert self._client is not None
        client = self._client

        async def attempt() -> Any:
            # Re-read on every attempt (retries too): a moderator's change since the last sync is kept.
            resp = await client.room_get_state_event(room_id, "m.room.power_levels")
            if not isinstance(resp, RoomGetStateEventResponse):
                return resp
            latest = resp.content
            self._refuse_power_change(room_id, member, latest, creators)
            earlier = self._mutes.get(key)
            plan = plan_mute(latest, member, creators=creators,
                             earlier=(earlier.level, earlier.previous) if earlier else None)
            if plan.level is None:
                log.info("matrix: %s already cannot send in %s; no mute needed", member, room_id)
                return _UNCHANGED
            end = max(until, earlier.until) if earlier and plan.content is None else until
            self._mutes[key] = _Mute(room_id, member, plan.level, plan.previous, end)
            # Saved before the write: a crash just after it still finds, at the next start, the mute to undo.
            await self._save_mutes()
            log.info("matrix: %s %s in %s until %s (level %d; restores %s)",
                     "extending the mute of" if plan.content is None else "muting", member, room_id,
                     end.isoformat(timespec="seconds"), plan.level,
                     "no entry" if plan.previous is None else plan.previous)
            if plan.content is None:
                return _UNCHANGED
            return await client.room_put_state(room_id, "m.room.power_levels", plan.content)

        try:
            return await self._enqueue(room_id, attempt, f"mute {member}")
        finally:
            if key in self._mutes:  # also after a failed write: the restore checks what the room really says
                self._arm_mute(key)

    async def _mute_elsewhere(self, action: Timeout) -> None:
        """Mute the member in the other rooms lien shares with them (not direct chats): a timeout covers the
        community. A room where lien may not is logged and skipped; the room of the hit decided the outcome."""
        assert self._client is not None
        member = action.to
        for room_id, room in list(self._client.rooms.items()):
            if room_id == action.room or self._is_dm(room_id):
                continue
            # The sync loads members lazily (only recent senders): ask the room when the member is not known.
            if member not in room.users:
                resp = await self._client.room_get_state_event(room_id, "m.room.member", member or "")
                if not isinstance(resp, RoomGetStateEventResponse) or resp.content.get("membership") != "join":
                    continue
            try:
                await self._mute(replace(action, room=room_id))
            except (UnsupportedAction, MatrixError) as exc:
                log.info("matrix: %s not muted in %s as well: %s", member, room_id, exc)

    def _refuse_power_change(self, room_id: str, member: str, power_levels: Mapping[str, Any],
                             creators: Collection[str], new_level: int | None = None) -> None:
        problem = power_change_refusal(self.user_id, member, power_levels, creators, new_level=new_level)
        if problem is not None:
            raise ActionRefused(f"matrix: cannot change {member}'s power level in {room_id}: {problem}",
                                reason="permission")

    async def _unmute(self, key: tuple[str, str]) -> None:
        """Restore the level of a mute that has ended, unless a moderator changed it meanwhile."""
        room_id, member = key
        room = self._rooms.get(room_id)
        creators = room.creators if room is not None else frozenset()
        assert self._client is not None
        client = self._client

        async def attempt() -> Any:
            mute = self._mutes.get(key)
            if mute is None or mute.until > self._clock.now():
                return _UNCHANGED  # extended while this waited in the queue
            resp = await client.room_get_state_event(room_id, "m.room.power_levels")
            if not isinstance(resp, RoomGetStateEventResponse):
                return resp
            content = plan_unmute(resp.content, member, level=mute.level, previous=mute.previous)
            if content is None:
                log.info("matrix: %s's power level in %s is no longer lien's mute level; left as it is",
                         member, room_id)
                await self._forget_mute(key, mute)
                return _UNCHANGED
            self._refuse_power_change(room_id, member, resp.content, creators, new_level=mute.previous)
            put = await client.room_put_state(room_id, "m.room.power_levels", content)
            if isinstance(put, RoomPutStateResponse):
                log.info("matrix: mute of %s in %s ended", member, room_id)
                await self._forget_mute(key, mute)
            return put

        await self._enqueue(room_id, attempt, f"unmute {member}")

    def _arm_mute(self, key: tuple[str, str]) -> None:
        task = self._mute_timers.get(key)
        if task is None or task.done():
            self._mute_timers[key] = self._tasks.spawn(self._mute_timer(key), f"matrix unmute {key[1]} in {key[0]}")

    async def _mute_timer(self, key: tuple[str, str]) -> None:
        """Wait for the mute's end (which a new timeout may push back), then restore; one task per mute."""
        try:
            while (mute := self._mutes.get(key)) is not None:
                delay = (mute.until - self._clock.now()).total_seconds()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                try:
                    await self._unmute(key)
                except LienError as exc:
                    if self._stopping.is_set():
                        return  # kept for the next start
                    log.warning("matrix: could not restore %s's power level in %s (%s); it stays as it is until a "
                                "moderator changes it", key[1], key[0], exc)
                    await self._forget_mute(key, mute)
        finally:
            if self._mute_timers.get(key) is asyncio.current_task():
                del self._mute_timers[key]

    async def _forget_mute(self, key: tuple[str, str], mute: _Mute) -> None:
        if self._mutes.get(key) is mute:
            del self._mutes[key]
            await self._save_mutes()

    async def _save_mutes(self) -> None:
        async with self._mutes_saving:
            # Serialised inside the lock, so the last write always holds the latest mutes.
            await self._kv_set(self._kv("mutes"), _dump_mutes(self._mutes.values()))

    async def _resume_mutes(self) -> None:
        """At start: restore the mutes that ended while lien was away, re-arm the others."""
        self._mutes = _load_mutes(await self._kv_get(self._kv("mutes")))
        for key in self._mutes:
            self._arm_mute(key)
        if self._mutes:
            log.info("matrix: %d running mute(s) resumed", len(self._mutes))

    async def _dm_room(self, user_id: str | None) -> str:
        if not user_id:
            raise UnsupportedAction("dm action without `to`")
        lock = self._dm_locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            key = self._kv(f"dm:{user_id}")
            known = await self._kv_get(key)
            if known and self._client is not None and known in self._client.rooms:
                return known
            assert self._client is not None
            client = self._client
            room_id = await self._retrying(
                lambda: client.room_create(is_direct=True, invite=[user_id], preset=RoomPreset.private_chat),
                RoomCreateResponse, f"create DM room with {user_id}",
            )
            await self._kv_set(key, room_id)
            self._rooms.setdefault(room_id, _Room(creators=frozenset({self.user_id})))
            log.info("matrix: created DM room %s with %s", room_id, user_id)
            return room_id

    async def _retrying(self, call: Callable[[], Awaitable[Any]], ok: type | tuple[type, ...], what: str) -> str:
        """Run a request until it succeeds, waiting out 429s and transport errors; returns its room/event id."""
        failures = 0
        while True:
            try:
                resp: Any = await call()
            except TRANSPORT_ERRORS as exc:
                resp = exc
            if isinstance(resp, ok):
                return str(getattr(resp, "event_id", None) or resp.room_id)
            if isinstance(resp, ErrorResponse) and not _retryable(resp):
                if resp.status_code == "M_FORBIDDEN":
                    raise ActionRefused(f"matrix: {what}: {resp}", reason="permission")
                raise MatrixError(f"matrix: {what}: {resp}", errcode=resp.status_code)
            delay = self._retry_delay(failures, resp)
            log.log(logging.INFO if getattr(resp, "retry_after_ms", None) else logging.WARNING,
                    "matrix: %s failed (%s); retry %d in %.1fs", what, resp, failures + 1, delay)
            failures += 1
            # A plain sleep, not _pause: stopping does not drop a queued action (stop() bounds the wait).
            await asyncio.sleep(delay)

    async def _enqueue(self, room_id: str, send: Callable[[], Awaitable[Any]], what: str) -> str:
        queue = self._queues.get(room_id)
        if queue is None:
            queue = self._queues[room_id] = asyncio.Queue()
            self._tasks.spawn(self._send_worker(room_id, queue), f"matrix send queue {room_id}")
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await queue.put(_Outgoing(send=send, what=what, done=done))
        return await done

    async def _send_worker(self, room_id: str, queue: asyncio.Queue[_Outgoing]) -> None:
        """Sends one room's events in order; each waits out rate limits before the next goes."""
        while True:
            item = await queue.get()
            try:
                event_id = await self._retrying(item.send, _SENT, f"{item.what} in {room_id}")
            except asyncio.CancelledError:
                if not item.done.done():
                    item.done.set_exception(MatrixError(f"matrix: stopped before sending {item.what}"))
                raise
            except Exception as exc:
                if not item.done.done():
                    item.done.set_exception(exc)
            else:
                if not item.done.done():
                    item.done.set_result(event_id)
            finally:
                queue.task_done()


def _described(resp: object) -> str:
    """A failed request in one short line: an exception's type and message (aiohttp's reprs run to 300
    characters of connection keys), a Matrix error's code and text."""
    if isinstance(resp, BaseException):
        return f"{type(resp).__name__}: {resp}"
    if isinstance(resp, ErrorResponse):
        return f"{resp.status_code or 'error'}: {resp.message}"
    return repr(resp)


def _retryable(resp: ErrorResponse) -> bool:
    """A 429, a 5xx or an unparsable answer: worth retrying; other errors will not change."""
    if resp.retry_after_ms or resp.status_code == "M_LIMIT_EXCEEDED":
        return True
    status = getattr(resp.transport_response, "status", None)
    return (isinstance(status, int) and (status >= 500 or status == 429)) or resp.status_code is None


def _dump_mutes(mutes: Collection[_Mute]) -> str:
    return json.dumps([{"room": m.room, "member": m.member, "level": m.level, "previous": m.previous,
                        "until": m.until.isoformat()} for m in mutes])


def _load_mutes(raw: str | None) -> dict[tuple[str, str], _Mute]:
    """The mutes `_dump_mutes` wrote; a malformed entry is logged and skipped (its member stays as they are)."""
    mutes: dict[tuple[str, str], _Mute] = {}
    try:
        entries = json.loads(raw) if raw else []
    except ValueError:
        log.warning("matrix: stored mutes are not JSON; ignored")
        return mutes
    for entry in entries if isinstance(entries, list) else []:
        try:
            previous = entry["previous"]
            mute = _Mute(room=str(entry["room"]), member=str(entry["member"]), level=int(entry["level"]),
                         previous=None if previous is None else int(previous),
                         until=datetime.fromisoformat(entry["until"]))
            if mute.until.tzinfo is None:
                raise ValueError("naive end time")
        except (KeyError, TypeError, ValueError):
            log.warning("matrix: stored mute %r is malformed; ignored", entry)
            continue
        mutes[(mute.room, mute.member)] = mute
    return mutes


def _txn_id(key: str | None) -> str:
    # The same key gives the same transaction id, so a retried send is deduplicated by the homeserver.
    if key:
        return "lien." + hashlib.sha256(key.encode()).hexdigest()[:32]
    return "lien." + uuid.uuid4().hex


