"""lien's Discord edge on discord.py 2.x: subscribe, translate (`discord_events`), hand events on, perform actions.

Events come from the gateway's raw dispatches (`on_socket_raw_receive`, hence `enable_debug_events`), so one pure
function translates live traffic, history and tests alike. One worker feeds them to `on_event` in gateway order.
Slash commands (`/lien ...`) arrive the same way; the CommandTree callback only hands over the `Interaction`, and
the reply actions for that command (reply_to = the command id) go out as its ephemeral response or followups.
`start` returns only once what was posted while lien was away has been read back and handled, so the composition
root can start its timers after it. With sharding, `owns(guild)` says which guilds this process serves; actions
for the others are refused (their own process performs them).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar

import aiohttp
import discord
from discord import app_commands
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.discord_events import (
    HANDLED_DISPATCHES,
    THREAD_TYPES,
    TranslationContext,
    compute_guild_permissions,
    is_message_action,
    target_channel,
    to_events,
    to_send_chunks,
)
from bot.actions import Action, DeleteMessage, Dm, React, Timeout
from bot.errors import ConfigError, UnsupportedAction
from bot.events import Command, Event, Message
from bot.ports import Clock, EventHandler
from bot.tasks import TaskSet

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Given (community, room), the id of the newest message lien processed there, or None if it never saw the room.
LastProcessed = Callable[[str, str], Awaitable[str | None]]

_WANTED = re.compile(r'"t"\s*:\s*"(' + "|".join(sorted(HANDLED_DISPATCHES | {"READY"})) + r')"')
#: Interaction tokens live 15 minutes; after that a reply can no longer use them.
_INTERACTION_TTL = 15 * 60.0
_HISTORY_PAGE = 100
_MAX_SERVER_ERROR_RETRIES = 6
#: Message ids remembered with the thread they were posted in, so that links to them open the thread.
_THREAD_MEMORY = 20_000


class DiscordSettings(BaseModel):
    """The `[discord]` section; the token itself is read by the composition root (env or file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_env: str = "DISCORD_TOKEN"
    token_file: str | None = None
    #: Role ids whose members may run admin commands, besides members with Manage Server.
    admin_roles: tuple[str, ...] = ()
    #: Where `/lien` is registered: "global" (up to an hour to appear), "guilds" (listed guilds, instant), "off".
    command_sync: Literal["global", "guilds", "off"] = "global"
    command_guilds: tuple[str, ...] = ()
    #: Member joins/leaves (join-wave guard); a privileged intent to enable in the developer portal.
    members_intent: bool = True
    #: Sharding: None runs one plain connection; a count runs AutoShardedClient (this process: `shard_ids`).
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: tuple[int, ...] | None = None
    #: Most messages read back per channel when catching up after a restart or a lost session.
    catch_up_limit: int = Field(default=500, ge=0)
    #: An interaction not answered within this many seconds is deferred ("lien is thinking...").
    defer_after_seconds: float = Field(default=2.0, gt=0, lt=3)

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> DiscordSettings:
        """Validate the raw `[discord]` table; errors name the key as `discord.KEY`."""
        try:
            return cls.model_validate(section or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"discord.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ConfigError(problems) from exc


@dataclass(slots=True)
class _Item:
    event: Event
    interaction: bool = False


@dataclass(slots=True)
class _PendingInteraction:
    arrived: asyncio.Future[discord.Interaction]
    created: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _CacheDirectory:
    """`discord_events.Directory` answered from discord.py's cache."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    def parent_of(self, channel_id: str) -> str | None:
        channel = self._client.get_channel(int(channel_id))
        if isinstance(channel, discord.Thread):
            return str(channel.parent_id)
        return None

    def guild_permissions(self, guild_id: str, user_id: str, role_ids: Iterable[str]) -> int | None:
        guild = self._client.get_guild(int(guild_id))
        if guild is None:
            return None
        roles = {str(r.id): r.permissions.value for r in guild.roles}
        return compute_guild_permissions(
            owner_id=str(guild.owner_id) if guild.owner_id else None, everyone=roles.get(guild_id, 0),
            role_permissions=roles, user_id=user_id, role_ids=role_ids,
        )


class _LienGroup(app_commands.Group, name="lien", description="lien: no question left unanswered"):
    """`/lien ...`: each callback only hands the interaction over; the command itself comes from the raw payload."""

    def __init__(self, accept: Callable[[discord.Interaction], None]) -> None:
        super().__init__()
        self._accept = accept

    @app_commands.command(name="unanswered", description="Open questions nobody has answered yet")
    async def unanswered(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="optout", description="lien never mentions or messages you again")
    async def optout(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="optin", description="lien may mention you again")
    async def optin(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="helper", description="Volunteer (or stop) as a helper for this channel")
    @app_commands.describe(state="on to volunteer, off to stop")
    async def helper(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        self._accept(interaction)

    @app_commands.command(name="why", description="Why lien mentioned you about a question")
    @app_commands.describe(message="Link or id of the question (default: the last one lien mentioned you about)")
    async def why(self, interaction: discord.Interaction, message: str | None = None) -> None:
        self._accept(interaction)

    @app_commands.command(name="solved", description="Mark your question as solved")
    @app_commands.describe(message="Link or id of the question (default: your latest one here)")
    async def solved(self, interaction: discord.Interaction, message: str | None = None) -> None:
        self._accept(interaction)

    @app_commands.command(name="not-a-question", description="Tell lien a message was not a question")
    @app_commands.describe(message="Link or id of the message (default: your latest one here)")
    async def not_a_question(self, interaction: discord.Interaction, message: str | None = None) -> None:
        self._accept(interaction)

    @app_commands.command(name="dms", description="Allow or refuse private messages from lien")
    @app_commands.describe(state="on to allow, off to refuse")
    async def dms(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        self._accept(interaction)

    @app_commands.command(name="mydata", description="Everything lien keeps about you")
    async def mydata(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="forget-me", description="Delete everything lien keeps about you")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="policy", description="What lien does, what it keeps, what it refuses")
    async def policy(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="pause", description="(admins) Stop nudges in this server")
    async def pause(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="resume", description="(admins) Resume nudges in this server")
    async def resume(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="health", description="(admins) Is lien well?")
    async def health(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    config = app_commands.Group(name="config", description="(admins) lien's settings for this server")

    @config.command(name="show", description="(admins) Show the settings in force here")
    async def config_show(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @config.command(name="reload", description="(admins) Reload the configuration file")
    async def config_reload(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    # Listed so that asking gets an explanation of why lien refuses growth hacking, not "unknown command".
    @app_commands.command(name="dm-all", description="Refused: lien never sends mass DMs (ask to see why)")
    async def dm_all(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="invite-all", description="Refused: lien never mass-invites (ask to see why)")
    async def invite_all(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)

    @app_commands.command(name="mention-all", description="Refused: lien never mass-mentions (ask to see why)")
    async def mention_all(self, interaction: discord.Interaction) -> None:
        self._accept(interaction)


class _LienTree(app_commands.CommandTree):
    adapter: DiscordAdapter

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
            # A stale registration: the command still reaches the engine, which answers it.
            log.warning("interaction %s for an unregistered command: %s", interaction.id, error)
            self.adapter._accept_interaction(interaction)
            return
        self.adapter._record_error(f"app command in interaction {interaction.id}", error)


class _ClientHooks:
    """Overrides shared by the plain and the sharded client."""

    adapter: DiscordAdapter
    tree: _LienTree

    async def setup_hook(self) -> None:
        await self.adapter._setup(self)  # type: ignore[arg-type]

    async def on_socket_raw_receive(self, msg: str) -> None:
        # No await before the queue: tasks start in dispatch order, so events keep gateway order.
        self.adapter._on_raw(msg)

    async def on_ready(self) -> None:
        self.adapter._on_ready(None)

    async def on_shard_ready(self, shard_id: int) -> None:
        self.adapter._on_ready(shard_id)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        self.adapter._record_error(f"event {event_method}", sys.exc_info()[1])


class _LienClient(_ClientHooks, discord.Client):
    pass


class _LienShardedClient(_ClientHooks, discord.AutoShardedClient):
    pass


def shard_of(guild_id: str, shard_count: int) -> int:
    """The shard that receives a guild's events (Discord's sharding formula)."""
    return (int(guild_id) >> 22) % shard_count


def _nonces(action: Action, count: int) -> list[str]:
    # Same key -> same nonces, so Discord drops a duplicate sent within its nonce window (enforce_nonce).
    seed = action.key or f"{action.name}:{action.room}:{action.reply_to}:{action.ts.isoformat()}:{random.random()}"
    return [hashlib.blake2b(f"{seed}#{i}".encode(), digest_size=12).hexdigest() for i in range(count)]


class DiscordAdapter:
    """`bot.ports.Adapter` for Discord. `start` returns once the gateway session is ready."""

    platform = "discord"

    def __init__(
        self,
        token: str,
        *,
        clock: Clock,
        settings: DiscordSettings | None = None,
        prefix: str | None = "!lien",
        bot_ids: Iterable[str] = (),
        last_processed: LastProcessed | None = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        self._token = token
        self._clock = clock
        self.settings = settings or DiscordSettings()
        self._prefix = prefix
        self._bot_ids = frozenset(bot_ids)
        self._last_processed = last_processed
        self._guild_ready_timeout = guild_ready_timeout
        self._client: _LienClient | _LienShardedClient | None = None
        self._directory: _CacheDirectory | None = None
        self._ctx_cache: TranslationContext | None = None
        self._on_event: EventHandler | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        #: Per shard, live events held back while history since the last processed message is read.
        self._held: dict[int, list[_Item]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._interactions: dict[str, _PendingInteraction] = {}
        self._tasks = TaskSet(self._record_error)
        #: Set once a gateway session is ready (after login); actions wait for it.
        self._ready = asyncio.Event()
        self._catch_ups: list[asyncio.Task[None]] = []
        #: message id -> thread id, for messages seen in a thread (bounded; ids only).
        self._thread_of: OrderedDict[str, str] = OrderedDict()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        #: Errors discord.py or the worker would otherwise only log (tests assert it stays empty).
        self.errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def client(self) -> discord.Client:
        """The running discord.py client (for the composition root's health checks)."""
        if self._client is None:
            raise RuntimeError("the Discord adapter is not started")
        return self._client

    def _intents(self) -> discord.Intents:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True  # "!lien forget-me" in a private conversation
        intents.message_content = True
        intents.guild_reactions = True
        intents.members = self.settings.members_intent
        return intents

    def _make_client(self) -> _LienClient | _LienShardedClient:
        options: dict[str, Any] = {
            "intents": self._intents(),
            "enable_debug_events": True,
            "chunk_guilds_at_startup": False,
            "max_messages": None,
            "guild_ready_timeout": self._guild_ready_timeout,
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        client: _LienClient | _LienShardedClient
        if self.settings.shard_count is not None:
            client = _LienShardedClient(shard_count=self.settings.shard_count,
                                        shard_ids=list(self.settings.shard_ids) if self.settings.shard_ids else None,
                                        **options)
        else:
            client = _LienClient(**options)
        client.adapter = self
        tree = _LienTree(client)
        tree.adapter = self
        tree.add_command(_LienGroup(self._accept_interaction))
        client.tree = tree
        return client

    async def start(self, on_event: EventHandler) -> None:
        """Log in, connect, sync `/lien`; return once the first session is ready and, with `last_processed`, once
        what was posted while lien was away has been read back and handed to `on_event` (so that timers started
        after this see a caught-up state)."""
        self._on_event = on_event
        self._stopping = False
        self._ready.clear()
        self._catch_ups.clear()
        self._client = self._make_client()
        self._directory = _CacheDirectory(self._client)
        self._tasks.spawn(self._worker(), "discord event worker")
        self._runner = asyncio.create_task(self._run(self._client), name="discord client")
        ready = asyncio.create_task(self._ready.wait())
        try:
            done, _ = await asyncio.wait({ready, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()  # no-op once set; on a stop during start-up, no task is left pending
        if ready not in done:
            self._runner.result()  # re-raises LoginFailure, PrivilegedIntentsRequired...
            raise RuntimeError("the Discord client stopped before it was ready")
        await self._settled()

    async def _settled(self) -> None:
        """Wait for the catch-ups started so far, then until `on_event` has handled everything queued."""
        started = asyncio.get_running_loop().time()
        while pending := [t for t in self._catch_ups if not t.done()]:
            await asyncio.wait(pending)
        await self._queue.join()
        log.info("discord adapter settled in %.1fs", asyncio.get_running_loop().time() - started)

    async def _run(self, client: discord.Client) -> None:
        await client.login(self._token)
        await client.connect(reconnect=True)

    async def wait_closed(self) -> None:
        """Wait until the connection ends for good; re-raises what ended it."""
        if self._runner is not None:
            await self._runner

    async def stop(self) -> None:
        """Close the connection, stop the worker and every pending timer."""
        self._stopping = True
        if self._client is not None and not self._client.is_closed():
            await self._client.close()
        if self._runner is not None:
            try:
                await self._runner
            except Exception:  # the close itself is what we wanted
                log.debug("discord client ended with an error while stopping", exc_info=True)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        await self._tasks.stop()
        self._interactions.clear()

    def _record_error(self, where: str, exc: BaseException | None) -> None:
        log.error("discord adapter: error in %s", where, exc_info=exc)
        self.errors.append(f"{where}: {exc!r}")

    async def _setup(self, client: discord.Client) -> None:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        try:
            if self.settings.command_sync == "global":
                await tree.sync()
            elif self.settings.command_sync == "guilds":
                for gid in self.settings.command_guilds:
                    guild = discord.Object(id=int(gid))
                    tree.copy_global_to(guild=guild)
                    await tree.sync(guild=guild)
        except discord.HTTPException as exc:
            # Missing `applications.commands` scope somewhere must not keep lien offline; `!lien` still works.
            log.warning("could not register /lien commands: %s", exc)

    # -- inbound -----------------------------------------------------------------------------------------------

    def _ctx(self) -> TranslationContext:
        if self._ctx_cache is None:
            user = self._client.user if self._client else None
            ctx = TranslationContext(prefix=self._prefix, admin_roles=frozenset(self.settings.admin_roles),
                                     self_id=str(user.id) if user else None, bot_ids=self._bot_ids)
            if user is None:
                return ctx
            self._ctx_cache = ctx
        return self._ctx_cache

    def _on_raw(self, msg: str | bytes) -> None:
        if isinstance(msg, bytes) or not _WANTED.search(msg):
            return
        frame = json.loads(msg)
        name, data = frame.get("t"), frame.get("d")
        if name == "READY":
            if self._last_processed is not None and isinstance(data, dict):
                self._held.setdefault(int((data.get("shard") or [0])[0]), [])
            return
        if name not in HANDLED_DISPATCHES or not isinstance(data, dict) or self._directory is None:
            return
        try:
            events = to_events(name, data, ctx=self._ctx(), directory=self._directory,
                               received_at=self._clock.now())
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipped a malformed %s payload: %r", name, exc)
            return
        for event in events:
            interaction = name == "INTERACTION_CREATE"
            if interaction:
                self._pending(event.id)
            self._remember_thread(event)
            log.debug("discord %s -> %s %s", name, type(event).__name__, getattr(event, "id", ""))
            self._enqueue(_Item(event, interaction=interaction))

    def _shard_of_event(self, event: Event) -> int:
        count = self.settings.shard_count
        community = getattr(event, "community", "")
        return shard_of(community, count) if count and community.isdigit() else 0

    def _enqueue(self, item: _Item) -> None:
        held = None if item.interaction else self._held.get(self._shard_of_event(item.event))
        if held is not None:
            held.append(item)
        else:
            self._queue.put_nowait(item)

    def _on_ready(self, shard_id: int | None) -> None:
        """discord.py's `ready` (all shards; the only one for a plain client) or `shard_ready`."""
        sharded = self.settings.shard_count is not None
        if shard_id is None:
            self._ready.set()
        if sharded != (shard_id is None):
            shard = shard_id or 0
            if shard in self._held:
                catch_up = self._tasks.spawn(self._catch_up_owned(shard), f"discord catch-up of shard {shard}")
                self._catch_ups.append(catch_up)

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                assert self._on_event is not None
                await self._on_event(item.event)
            except Exception as exc:
                self._record_error(f"handling {type(item.event).__name__} {getattr(item.event, 'id', '')}", exc)
            finally:
                # No acknowledgement here: the runtime performs the reply after `on_event` returns (queued per
                # room), so an interaction is deferred only when no answer started within `defer_after_seconds`.
                self._queue.task_done()

    # -- interactions ------------------------------------------------------------------------------------------

    def _pending(self, interaction_id: str) -> _PendingInteraction:
        pending = self._interactions.get(interaction_id)
        if pending is None:
            loop = asyncio.get_running_loop()
            now = loop.time()
            for key in [k for k, p in self._interactions.items() if now - p.created > _INTERACTION_TTL]:
                del self._interactions[key]
            pending = self._interactions[interaction_id] = _PendingInteraction(loop.create_future(), now)
        return pending

    def _accept_interaction(self, interaction: discord.Interaction) -> None:
        pending = self._pending(str(interaction.id))
        if not pending.arrived.done():
            pending.arrived.set_result(interaction)
        def defer() -> None:
            self._timers.discard(handle)
            self._tasks.spawn(self._defer(str(interaction.id)), f"defer interaction {interaction.id}")

        handle = asyncio.get_running_loop().call_later(self.settings.defer_after_seconds, defer)
        self._timers.add(handle)

    async def _defer(self, interaction_id: str) -> None:
        pending = self._interactions.get(interaction_id)
        if pending is None or not pending.arrived.done():
            return
        interaction = pending.arrived.result()
        async with pending.lock:
            if not interaction.response.is_done():
                await interaction.response.defer(ephemeral=True, thinking=True)

    async def _respond(self, pending: _PendingInteraction, action: Action) -> None:
        try:
            interaction = await asyncio.wait_for(asyncio.shield(pending.arrived), timeout=5)
        except TimeoutError as exc:
            raise UnsupportedAction(f"interaction {action.reply_to} never reached the command tree") from exc
        async with pending.lock:
            for kwargs in to_send_chunks(action, interaction=True, channel_of=self._channel_of):
                if not interaction.response.is_done():
                    await interaction.response.send_message(**kwargs)
                else:
                    await self._retrying(lambda kw=kwargs: interaction.followup.send(**kw, wait=True), action)

    # -- outbound ----------------------------------------------------------------------------------------------

    async def perform(self, action: Action) -> None:
        """Carry out `action`; returns once Discord accepted it. Missing permissions raise `UnsupportedAction`,
        and so does a guild another shard process serves (its owner performs the action)."""
        if not self.owns(action.community):
            raise UnsupportedAction(f"guild {action.community} belongs to another shard process")
        await self._ready.wait()  # a timer may fire while the gateway is still connecting: no request unlogged
        client = self.client
        try:
            if is_message_action(action):
                pending = self._interactions.get(action.reply_to) if action.reply_to else None
                if pending is not None:
                    await self._respond(pending, action)
                    return
                channel = await self._channel_for(action)
                chunks = to_send_chunks(action, channel_of=self._channel_of)
                for kwargs, nonce in zip(chunks, _nonces(action, len(chunks)), strict=True):
                    await self._retrying(lambda kw=kwargs, n=nonce: channel.send(**kw, nonce=n), action)
            elif isinstance(action, React):
                message = client.get_partial_messageable(int(target_channel(action))).get_partial_message(
                    int(self._required(action.reply_to, action)))
                await self._retrying(lambda: message.add_reaction(action.text), action)
            elif isinstance(action, DeleteMessage):
                message = client.get_partial_messageable(int(target_channel(action))).get_partial_message(
                    int(self._required(action.reply_to, action)))
                try:
                    await self._retrying(message.delete, action)
                except discord.NotFound:
                    log.info("message %s was already deleted", action.reply_to)
            elif isinstance(action, Timeout):
                await self._timeout(action)
            else:
                raise UnsupportedAction(f"the Discord adapter cannot perform {action.name!r}")
        except discord.Forbidden as exc:
            raise UnsupportedAction(f"{action.name} not permitted in {action.room}: {exc.text}") from exc

    @staticmethod
    def _required(value: str | None, action: Action) -> str:
        if not value:
            raise UnsupportedAction(f"{action.name} action without its target")
        return value

    async def _channel_for(self, action: Action) -> discord.abc.Messageable:
        if isinstance(action, Dm):
            user = discord.Object(id=int(self._required(action.to, action)))
            return await self._retrying(lambda: self.client.create_dm(user), action)
        return self.client.get_partial_messageable(int(target_channel(action)))

    async def _timeout(self, action: Timeout) -> None:
        guild = self.client.get_guild(int(action.community))
        if guild is None:
            raise UnsupportedAction(f"guild {action.community} is not served by this process")
        uid = int(self._required(action.to, action))
        member = guild.get_member(uid) or await self._retrying(lambda: guild.fetch_member(uid), action)
        await self._retrying(
            lambda: member.timeout(timedelta(minutes=action.minutes), reason=action.reason), action)

    async def _retrying(self, call: Callable[[], Awaitable[_T]], action: Action | None = None) -> _T:
        """`call()`, again after rate limits (which discord.py already waits out up to 5 times) and outages."""
        failures = 0
        while True:
            try:
                return await call()
            except discord.HTTPException as exc:
                if exc.status != 429 and exc.status < 500:
                    raise
                failures += 1
                # A 429 never loses an action; server errors give up after a few tries so the caller can report.
                if self._stopping or (exc.status >= 500 and failures >= _MAX_SERVER_ERROR_RETRIES):
                    raise
            except (aiohttp.ClientError, OSError, TimeoutError):
                failures += 1
                if self._stopping or failures >= _MAX_SERVER_ERROR_RETRIES:
                    raise
            delay = min(60.0, 2.0 ** failures) * (0.5 + random.random() / 2)
            log.warning("discord %s failed %d times; retrying in %.1fs", action.name if action else "call",
                        failures, delay)
            await asyncio.sleep(delay)

    async def already_sent(self, action: Action) -> bool:
        """Whether lien's own message (or reaction, or deletion) for `action` is already on Discord."""
        await self._ready.wait()
        client = self.client
        if client.user is None or (action.reply_to and action.reply_to in self._interactions):
            return False
        try:
            if isinstance(action, React | DeleteMessage):
                channel = client.get_partial_messageable(int(target_channel(action)))
                try:
                    message = await channel.fetch_message(int(self._required(action.reply_to, action)))
                except discord.NotFound:
                    return isinstance(action, DeleteMessage)
                if isinstance(action, DeleteMessage):
                    return False
                return any(r.me and str(r.emoji) in (action.text, f"<:{action.text}>") for r in message.reactions)
            if not is_message_action(action):
                return False
            channel = await self._channel_for(action)
            content = to_send_chunks(action, channel_of=self._channel_of)[0]["content"]
            async for message in channel.history(limit=50):
                if message.author.id != client.user.id or message.content != content:
                    continue
                ref = message.reference.message_id if message.reference else None
                if action.reply_to is None or str(ref) == action.reply_to or isinstance(action, Dm):
                    return True
            return False
        except discord.Forbidden:
            return False

    # -- catch-up and sharding ---------------------------------------------------------------------------------

    async def catch_up(self, channel_ids: Iterable[str], after_message_id: str) -> int:
        """Feed, in order, the messages posted in `channel_ids` after `after_message_id`; returns how many."""
        events: list[Event] = []
        for cid in channel_ids:
            channel = self.client.get_channel(int(cid))
            guild_id = str(channel.guild.id) if channel is not None and hasattr(channel, "guild") else None
            events.extend(await self._history(cid, after_message_id, guild_id))
        events.sort(key=lambda e: int(e.id))  # type: ignore[union-attr]
        for event in events:
            self._queue.put_nowait(_Item(event))
        return len(events)

    async def _catch_up_owned(self, shard: int) -> None:
        """After a new session: history since the last processed message of every known room, then live events."""
        fed: list[Event] = []
        try:
            assert self._last_processed is not None
            after_by_room: dict[tuple[str, str], str | None] = {}
            for guild in self.client.guilds:
                if self.settings.shard_count is not None and guild.shard_id != shard:
                    continue
                gid = str(guild.id)
                channels: list[Any] = [*guild.text_channels, *[t for t in guild.threads if t.type.value in
                                                                THREAD_TYPES]]
                for channel in channels:
                    room = str(channel.parent_id) if isinstance(channel, discord.Thread) else str(channel.id)
                    if (gid, room) not in after_by_room:
                        after_by_room[gid, room] = await self._last_processed(gid, room)
                    after = after_by_room[gid, room]
                    if after is not None:
                        fed.extend(await self._history(str(channel.id), after, gid))
            fed.sort(key=lambda e: int(e.id))  # type: ignore[union-attr]
            log.info("discord catch-up: %d events from history", len(fed))
        finally:
            held = self._held.pop(shard, [])
            seen = {e.id for e in fed if isinstance(e, Message)}
            for event in fed:
                self._queue.put_nowait(_Item(event))
            for item in held:
                if not (isinstance(item.event, Message) and item.event.id in seen):
                    self._queue.put_nowait(item)

    async def _history(self, channel_id: str, after: str, guild_id: str | None) -> list[Event]:
        out: list[Event] = []
        cursor = int(after)
        limit = self.settings.catch_up_limit
        assert self._directory is not None
        while len(out) < limit:
            try:
                page = await self._retrying(
                    lambda c=cursor: self.client.http.logs_from(int(channel_id), _HISTORY_PAGE, after=c))
            except (discord.Forbidden, discord.NotFound):
                log.info("no history access to channel %s; not caught up", channel_id)
                break
            if not page:
                break
            page.sort(key=lambda m: int(m["id"]))
            for raw in page:
                for event in to_events("MESSAGE_CREATE", raw, ctx=self._ctx(), directory=self._directory,
                                       received_at=self._clock.now(), guild_id=guild_id):
                    if not isinstance(event, Command):  # a command typed while lien was away is stale
                        self._remember_thread(event)
                        out.append(event)
            cursor = int(page[-1]["id"])
            if len(page) < _HISTORY_PAGE:
                break
        return out[:limit]

    # -- links ---------------------------------------------------------------------------------------------------

    def _remember_thread(self, event: Event) -> None:
        if isinstance(event, Message) and event.thread is not None:
            self._thread_of[event.id] = event.thread
            self._thread_of.move_to_end(event.id)
            while len(self._thread_of) > _THREAD_MEMORY:
                self._thread_of.popitem(last=False)

    def _channel_of(self, message_id: str) -> str | None:
        """The thread a message was posted in, when lien saw it there or it starts a forum post; else None."""
        found = self._thread_of.get(message_id)
        if found is not None or self._client is None or not message_id.isdigit():
            return found
        # A forum post's starter message has the post's (thread's) id and lives in it; a thread started from a
        # message in a text channel has that message's id too, but the message stays in the parent channel.
        channel = self._client.get_channel(int(message_id))
        if isinstance(channel, discord.Thread) and isinstance(channel.parent, discord.ForumChannel):
            return message_id
        return None

    def owned_guild_ids(self) -> frozenset[str]:
        """Guilds whose events this process receives (its shards'); scheduled work should run only for these."""
        return frozenset(str(g.id) for g in self.client.guilds)

    def owns(self, guild_id: str) -> bool:
        """Whether `guild_id` belongs to this process's shards, cached or not (private conversations: always)."""
        count = self.settings.shard_count
        if count is None or not guild_id.isdigit():
            return True
        ids = self.settings.shard_ids if self.settings.shard_ids is not None else range(count)
        return shard_of(guild_id, count) in ids


__all__ = ["DiscordAdapter", "DiscordSettings", "LastProcessed", "shard_of"]
