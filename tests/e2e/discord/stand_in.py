"""A protocol-level Discord stand-in on loopback, for running the real discord.py client in tests.

It speaks the gateway protocol over a websocket (HELLO, IDENTIFY -> READY + GUILD_CREATE, HEARTBEAT -> ACK,
RESUME -> replay + RESUMED, INVALID_SESSION, dispatches) and serves the REST routes lien uses, shaped as Discord's
API documentation describes them. Every REST request is recorded with its JSON body. Tests can make the next
matching request fail with a 429 (with the `Via` header Discord's edge adds, which discord.py checks before
honouring `retry_after`) or another status, drop the websocket to force a RESUME, and refuse a RESUME.

`route_discord_py_to(stand_in)` (or `route_discord_py_to_url(url)` in another process) is the one place where
discord.py is pointed here (two class attributes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import discord.gateway
import discord.http
import yarl
from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1_420_070_400_000
API_PREFIX = re.compile(r"^/api/v\d+")

# Gateway opcodes (Discord developer documentation, "Gateway Opcodes").
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, RESUME, RECONNECT = 0, 1, 2, 3, 6, 7
REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11
EPHEMERAL_FLAG = 1 << 6
_BODY = web.RequestKey("body", object)
_PATH = web.RequestKey("api_path", str)


@dataclass(slots=True)
class Recorded:
    """One REST request as the stand-in saw it, and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass(slots=True)
class _Injected:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass(slots=True)
class _Session:
    id: str
    shard: tuple[int, int]
    seq: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class _Interaction:
    token: str
    data: dict[str, Any]
    acknowledged: bool = False
    deferred: bool = False


def iso(ts: datetime) -> str:
    """Discord's timestamp format."""
    return ts.isoformat(timespec="microseconds")


class DiscordStandIn:
    """The fake Discord: `async with DiscordStandIn() as d:` serves on a free loopback port."""

    def __init__(self, *, token: str = "stand-in-token", shard_count: int = 1,
                 heartbeat_interval_ms: int = 41_250, echo_own_messages: bool = True) -> None:
        self.token = token
        self.shard_count = shard_count
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.echo_own_messages = echo_own_messages
        self._ids = itertools.count(1)
        self.application_id = "1378523440742531079"
        self.bot_user: dict[str, Any] = {
            "id": self.application_id, "username": "lien", "discriminator": "0", "global_name": None,
            "avatar": None, "bot": True, "public_flags": 0, "flags": 0, "verified": True, "mfa_enabled": False,
        }
        self.guilds: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {self.application_id: self.bot_user}
        self.members: dict[tuple[str, str], dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.identifies = 0
        #: IDENTIFY payloads as received (intents, shard, ...), token removed.
        self.identify_payloads: list[dict[str, Any]] = []
        self.resumes = 0
        self.heartbeats = 0
        self.refuse_resume = False
        self._sessions: dict[str, _Session] = {}
        self._current: dict[int, _Session] = {}
        self._interactions: dict[str, _Interaction] = {}
        self._dm_channels: dict[str, dict[str, Any]] = {}
        self._injected: list[_Injected] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def __aenter__(self) -> DiscordStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a port the OS picks."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        for session in self._sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    # -- world -------------------------------------------------------------------------------------------------

    def new_id(self, when: datetime | None = None) -> str:
        """A fresh snowflake dated `when` (default now)."""
        ms = int((when or datetime.now(UTC)).timestamp() * 1000)
        return str(((ms - DISCORD_EPOCH_MS) << 22) | (next(self._ids) & 0x3FFFFF))

    def add_guild(self, guild: dict[str, Any]) -> None:
        """Add a guild from a GUILD_CREATE payload (channels, threads, roles, members)."""
        gid = str(guild["id"])
        self.guilds[gid] = guild
        for channel in [*guild.get("channels", []), *guild.get("threads", [])]:
            self.channels[str(channel["id"])] = dict(channel, guild_id=gid)
        for member in guild.get("members", []):
            self.users[str(member["user"]["id"])] = member["user"]
            self.members[gid, str(member["user"]["id"])] = member

    def shard_of(self, guild_id: str | None) -> int:
        return 0 if guild_id is None else (int(guild_id) >> 22) % self.shard_count

    def message(self, channel_id: str, author_id: str, content: str, *, reply_to: str | None = None,
                mentions: tuple[str, ...] = (), when: datetime | None = None,
                store: bool = True) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from a member (stored in the channel's history unless `store` is False)."""
        channel = self.channels[channel_id]
        gid = channel.get("guild_id")
        when = when or datetime.now(UTC)
        data: dict[str, Any] = {
            "id": self.new_id(when), "channel_id": channel_id, "type": 19 if reply_to else 0, "content": content,
            "author": self.users[author_id], "timestamp": iso(when), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [self.users[u] for u in mentions], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": False, "flags": 0, "components": [],
        }
        if reply_to:
            data["message_reference"] = {"type": 0, "message_id": reply_to, "channel_id": channel_id,
                                         "guild_id": gid}
        if gid:
            data["guild_id"] = gid
            member = self.members.get((gid, author_id), {})
            data["member"] = {k: v for k, v in member.items() if k != "user"}
        if store:
            self._store(data)
        return data

    def thread_from(self, message: dict[str, Any], owner_id: str, name: str = "thread") -> dict[str, Any]:
        """A THREAD_CREATE payload for a public thread started from `message` (it takes the message's id)."""
        parent = str(message["channel_id"])
        gid = self.channels[parent]["guild_id"]
        created = iso(datetime.now(UTC))
        thread: dict[str, Any] = {
            "id": message["id"], "type": 11, "guild_id": gid, "parent_id": parent, "owner_id": owner_id,
            "name": name, "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
            "total_message_sent": 0, "flags": 0, "applied_tags": [], "newly_created": True,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": created,
                                "locked": False, "create_timestamp": created},
        }
        self.channels[thread["id"]] = dict(thread)
        self.guilds[gid].setdefault("threads", []).append(thread)
        return thread

    def reaction(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> dict[str, Any]:
        """A MESSAGE_REACTION_ADD payload: `user_id` reacted with the unicode `emoji`."""
        gid = self.channels[channel_id]["guild_id"]
        member = self.members[gid, user_id]
        return {"user_id": user_id, "type": 0, "channel_id": channel_id, "message_id": message_id, "guild_id": gid,
                "member": member, "emoji": {"id": None, "name": emoji}, "burst": False, "burst_colors": []}

    def interaction(self, channel_id: str, user_id: str, options: list[dict[str, Any]],
                    *, permissions: int = 0) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for `/lien ...` run by `user_id` in `channel_id`."""
        channel = self.channels[channel_id]
        gid = channel["guild_id"]
        iid = self.new_id()
        token = f"stand-in-interaction-token-{iid}"
        command = next((c for c in [*self.commands.get(gid, []), *self.commands.get("global", [])]
                        if c["name"] == "lien"), {"id": self.new_id()})
        member = dict(self.members[gid, user_id], permissions=str(permissions))
        data = {
            "id": iid, "application_id": self.application_id, "type": 2, "token": token, "version": 1,
            "data": {"id": command["id"], "name": "lien", "type": 1, "options": options, "guild_id": gid},
            "guild_id": gid, "guild": {"id": gid, "locale": "en-US", "features": []},
            "channel_id": channel_id, "channel": {k: v for k, v in channel.items() if k != "guild_id"} | {
                "guild_id": gid},
            "member": member, "app_permissions": "0", "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": gid}, "context": 0,
            "attachment_size_limit": 10_485_760,
        }
        self._interactions[iid] = _Interaction(token=token, data=data)
        return data

    def _store(self, message: dict[str, Any]) -> None:
        self.messages.setdefault(str(message["channel_id"]), []).append(message)

    # -- failure injection -------------------------------------------------------------------------------------

    def rate_limit_next(self, method: str, path: str, *, retry_after: float = 0.3, is_global: bool = False,
                        times: int = 1) -> None:
        """Answer the next `times` requests matching `method` and the `path` regex with a 429."""
        self._injected.append(_Injected(
            method, re.compile(path), 429,
            {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
            {"Via": "1.1 google", "Retry-After": str(max(1, round(retry_after))),
             "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(retry_after),
             "X-RateLimit-Bucket": "stand-in-bucket", "X-RateLimit-Scope": "global" if is_global else "user"}
            | ({"X-RateLimit-Global": "true"} if is_global else {}),
            times,
        ))

    def fail_next(self, method: str, path: str, status: int, *, code: int = 0, message: str = "stand-in failure",
                  times: int = 1) -> None:
        """Answer the next `times` matching requests with `status` (403 Missing Permissions is code 50013)."""
        self._injected.append(_Injected(method, re.compile(path), status, {"message": message, "code": code}, {},
                                        times))

    async def drop(self, shard: int = 0, code: int = 4000) -> None:
        """Close the shard's websocket as a network fault would (4000 is resumable); later events buffer."""
        session = self._current[shard]
        ws, session.ws = session.ws, None
        if ws is not None:
            await ws.close(code=code, message=b"stand-in dropped the connection")

    async def send_op(self, op: int, d: Any = None, shard: int = 0) -> None:
        """Send a bare opcode (e.g. RECONNECT) to the shard's connection."""
        session = self._current[shard]
        assert session.ws is not None
        await session.ws.send_str(json.dumps({"op": op, "d": d, "s": None, "t": None}))

    # -- observation -------------------------------------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests whose method matches and whose path matches the regex `path`."""
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    async def wait_for(self, check: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until `check()` is truthy (re-checked after every request and gateway change); returns it."""
        async def loop() -> Any:
            async with self._changed:
                while not (value := check()):
                    await self._changed.wait()
                return value
        return await asyncio.wait_for(loop(), within)

    async def wait_for_requests(self, method: str, path: str, count: int = 1,
                                within: float = 5.0) -> list[Recorded]:
        """Wait until `count` answered requests match; returns all that match."""
        return await self.wait_for(
            lambda: (found if len(found := [r for r in self.requests_to(method, path) if r.status]) >= count
                     else None), within)

    async def wait_connected(self, shard: int = 0, within: float = 10.0) -> None:
        await self.wait_for(lambda: shard in self._current and self._current[shard].ws is not None, within)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- gateway -----------------------------------------------------------------------------------------------

    async def dispatch(self, name: str, data: dict[str, Any]) -> int:
        """Send a dispatch to the session of the guild's shard; buffered (for RESUME) while disconnected."""
        shard = self.shard_of(data.get("guild_id"))
        session = self._current[shard]
        return await self._send_dispatch(session, name, data)

    async def _send_dispatch(self, session: _Session, name: str, data: dict[str, Any]) -> int:
        async with session.lock:
            session.seq += 1
            frame = {"op": DISPATCH, "t": name, "s": session.seq, "d": data}
            session.frames.append(frame)
            if session.ws is not None and not session.ws.closed:
                await session.ws.send_str(json.dumps(frame))
            return session.seq

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                                      "s": None, "t": None}))
        session: _Session | None = None
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op, d = payload.get("op"), payload.get("d")
                if op == HEARTBEAT:
                    self.heartbeats += 1
                    await ws.send_str(json.dumps({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None}))
                elif op == IDENTIFY:
                    session = await self._identify(ws, d)
                elif op == RESUME:
                    session = await self._resume(ws, d)
                elif op == REQUEST_GUILD_MEMBERS and session is not None:
                    await self._members_chunk(session, d)
                await self._notify()
        finally:
            if session is not None and session.ws is ws:
                session.ws = None
            await self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> _Session | None:
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        self.identifies += 1
        self.identify_payloads.append({k: v for k, v in d.items() if k != "token"})
        shard_id, count = d.get("shard", [0, 1])
        session = _Session(id=f"stand-in-session-{next(self._ids)}", shard=(shard_id, count), ws=ws)
        self._sessions[session.id] = session
        self._current[shard_id] = session
        owned = [g for g in self.guilds if self.shard_of(g) == shard_id]
        await self._send_dispatch(session, "READY", {
            "v": 10, "user": self.bot_user, "guilds": [{"id": g, "unavailable": True} for g in owned],
            "session_id": session.id, "resume_gateway_url": self.gateway_url, "shard": [shard_id, count],
            "application": {"id": self.application_id, "flags": 0},
        })
        for gid in owned:
            await self._send_dispatch(session, "GUILD_CREATE", self.guilds[gid])
        return session

    async def _resume(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> _Session | None:
        session = self._sessions.get(d.get("session_id", ""))
        if d.get("token") != self.token or session is None or self.refuse_resume:
            if session is not None:
                # What the dead session buffered is gone: the client must IDENTIFY and catch up over REST.
                del self._sessions[session.id]
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False, "s": None, "t": None}))
            return None
        self.resumes += 1
        async with session.lock:
            session.ws = ws
            self._current[session.shard[0]] = session
            for frame in session.frames:
                if frame["s"] > int(d.get("seq") or 0):
                    await ws.send_str(json.dumps(frame))
        await self._send_dispatch(session, "RESUMED", {})
        return session

    async def _members_chunk(self, session: _Session, d: dict[str, Any]) -> None:
        gid = str(d["guild_id"])
        members = [m for (g, _), m in self.members.items() if g == gid]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", {
            "guild_id": gid, "members": members, "chunk_index": 0, "chunk_count": 1, "nonce": d.get("nonce")})

    # -- REST --------------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path == "/gateway":
            response: web.StreamResponse = await handler(request)
            return response
        path = API_PREFIX.sub("", request.path)
        body = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        record = Recorded(request.method, path, dict(request.query), body)
        self.requests.append(record)
        try:
            for inj in self._injected:
                if inj.times > 0 and inj.method == request.method and inj.path.fullmatch(path):
                    inj.times -= 1
                    return self._json(record, inj.status, inj.body, headers=inj.headers)
            if request.headers.get("Authorization") != f"Bot {self.token}" and not path.startswith(
                    ("/interactions/", "/webhooks/")):
                return self._json(record, 401, {"message": "401: Unauthorized", "code": 0})
            request[_BODY] = body
            request[_PATH] = path
            response = await handler(request)
            record.status = response.status
            return response
        finally:
            await self._notify()

    @staticmethod
    def _json(record: Recorded | None, status: int, data: Any, headers: dict[str, str] | None = None
              ) -> web.Response:
        if record is not None:
            record.status = status
        if status == 204:
            return web.Response(status=204, headers=headers)
        # Exactly "application/json", no charset: discord.py parses JSON only for that header value.
        return web.Response(status=status, body=json.dumps(data).encode(),
                            headers={"Content-Type": "application/json", **(headers or {})})

    def _not_found(self, what: str, code: int) -> web.Response:
        return self._json(None, 404, {"message": f"Unknown {what}", "code": code})

    async def _rest(self, request: web.Request) -> web.Response:
        path = request[_PATH]
        method = request.method
        body = request[_BODY]
        for route_method, pattern, handler in self._routes:
            if method == route_method and (m := re.fullmatch(pattern, path)):
                return await handler(self, request, body, *m.groups())
        return self._json(None, 404, {"message": "404: Not Found", "code": 0})

    async def _get_gateway(self, request: web.Request, body: Any) -> web.Response:
        return self._json(None, 200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request, body: Any) -> web.Response:
        return self._json(None, 200, {
            "url": self.gateway_url, "shards": self.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000,
                                    "max_concurrency": 1}})

    async def _get_me(self, request: web.Request, body: Any) -> web.Response:
        return self._json(None, 200, self.bot_user)

    async def _get_application(self, request: web.Request, body: Any) -> web.Response:
        return self._json(None, 200, {
            "id": self.application_id, "name": "lien", "icon": None, "description": "", "bot_public": True,
            "bot_require_code_grant": False, "verify_key": "0" * 64, "team": None, "flags": 0,
            "owner": {"id": "419645148364931086", "username": "ownerolivier", "discriminator": "0",
                      "global_name": "Olivier", "avatar": None, "public_flags": 0},
            "bot": self.bot_user, "summary": "", "interactions_endpoint_url": None,
        })

    async def _put_commands(self, request: web.Request, body: Any, *scope: str) -> web.Response:
        key = scope[0] or "global"
        guild_id = key if key != "global" else None
        saved = [dict(c, id=self.new_id(), application_id=self.application_id, version=self.new_id(),
                      guild_id=guild_id, default_member_permissions=c.get("default_member_permissions"))
                 for c in body]
        self.commands[key] = saved
        return self._json(None, 200, saved)

    async def _create_dm(self, request: web.Request, body: Any) -> web.Response:
        uid = str(body["recipient_id"])
        channel = self._dm_channels.get(uid)
        if channel is None:
            channel = self._dm_channels[uid] = {"id": self.new_id(), "type": 1, "last_message_id": None,
                                                "flags": 0, "recipients": [self.users[uid]]}
            self.channels[channel["id"]] = channel
        return self._json(None, 200, channel)

    async def _post_message(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None:
            return self._not_found("Channel", 10003)
        history = self.messages.setdefault(channel_id, [])
        nonce = body.get("nonce")
        if nonce and body.get("enforce_nonce"):
            for existing in history:
                if existing.get("nonce") == nonce and existing["author"]["id"] == self.application_id:
                    return self._json(None, 200, existing)
        message = self._bot_message(channel_id, body)
        history.append(message)
        gid = channel.get("guild_id")
        if self.echo_own_messages and gid and self._current:
            echoed = dict(message, guild_id=gid)
            await self.dispatch("MESSAGE_CREATE", echoed)
        return self._json(None, 200, message)

    def _bot_message(self, channel_id: str, body: dict[str, Any], *, flags: int = 0,
                     interaction: dict[str, Any] | None = None) -> dict[str, Any]:
        content = body.get("content") or ""
        allowed = body.get("allowed_mentions") or {"parse": ["users", "roles", "everyone"]}
        pinged_ids = {str(u) for u in allowed.get("users", [])}
        if "users" in allowed.get("parse", []):
            pinged_ids |= set(re.findall(r"<@!?(\d+)>", content))
        reference = body.get("message_reference")
        message: dict[str, Any] = {
            "id": self.new_id(), "channel_id": channel_id, "type": 19 if reference else 0, "content": content,
            "author": self.bot_user, "timestamp": iso(datetime.now(UTC)), "edited_timestamp": None,
            "tts": bool(body.get("tts")), "mention_everyone": "everyone" in allowed.get("parse", []),
            "mentions": [self.users[u] for u in pinged_ids if u in self.users and f"<@{u}>" in content],
            "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
            "flags": flags | int(body.get("flags") or 0), "components": [], "reactions": [],
        }
        if body.get("nonce"):
            message["nonce"] = body["nonce"]
        if reference:
            message["message_reference"] = dict(reference, type=0)
        if interaction is not None:
            message["interaction_metadata"] = interaction
            message["application_id"] = self.application_id
            message["webhook_id"] = self.application_id
        return message

    async def _get_messages(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        if channel_id not in self.channels:
            return self._not_found("Channel", 10003)
        limit = min(int(request.query.get("limit", 50)), 100)
        history = sorted(self.messages.get(channel_id, []), key=lambda m: int(m["id"]))
        if "after" in request.query:
            after = int(request.query["after"])
            page = [m for m in history if int(m["id"]) > after][:limit]
        elif "before" in request.query:
            before = int(request.query["before"])
            page = [m for m in history if int(m["id"]) < before][-limit:]
        else:
            page = history[-limit:]
        # REST message objects carry no guild_id or member; Discord lists them newest first.
        return self._json(None, 200, [{k: v for k, v in m.items() if k not in ("guild_id", "member")}
                                      for m in reversed(page)])

    def _find_message(self, channel_id: str, message_id: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel_id, []) if m["id"] == message_id), None)

    async def _get_message(self, request: web.Request, body: Any, channel_id: str,
                           message_id: str) -> web.Response:
        message = self._find_message(channel_id, message_id)
        if message is None:
            return self._not_found("Message", 10008)
        return self._json(None, 200, {k: v for k, v in message.items() if k not in ("guild_id", "member")})

    async def _delete_message(self, request: web.Request, body: Any, channel_id: str,
                              message_id: str) -> web.Response:
        message = self._find_message(channel_id, message_id)
        if message is None:
            return self._not_found("Message", 10008)
        self.messages[channel_id].remove(message)
        if channel_id in self.channels and self.channels[channel_id].get("guild_id"):
            await self.dispatch("MESSAGE_DELETE", {"id": message_id, "channel_id": channel_id,
                                                   "guild_id": self.channels[channel_id]["guild_id"]})
        return self._json(None, 204, None)

    async def _put_reaction(self, request: web.Request, body: Any, channel_id: str, message_id: str,
                            emoji: str) -> web.Response:
        message = self._find_message(channel_id, message_id)
        if message is None:
            return self._not_found("Message", 10008)
        reactions = message.setdefault("reactions", [])
        name, _, eid = emoji.partition(":")
        found = next((r for r in reactions if r["emoji"]["name"] == name), None)
        if found is None:
            reactions.append({"count": 1, "count_details": {"burst": 0, "normal": 1}, "me": True,
                              "me_burst": False, "burst_colors": [], "emoji": {"id": eid or None, "name": name}})
        elif not found["me"]:
            found["me"] = True
            found["count"] += 1
        return self._json(None, 204, None)

    async def _get_member(self, request: web.Request, body: Any, guild_id: str, user_id: str) -> web.Response:
        member = self.members.get((guild_id, user_id))
        if member is None:
            return self._not_found("Member", 10007)
        return self._json(None, 200, member)

    async def _patch_member(self, request: web.Request, body: Any, guild_id: str, user_id: str) -> web.Response:
        member = self.members.get((guild_id, user_id))
        if member is None:
            return self._not_found("Member", 10007)
        member.update({k: v for k, v in body.items() if k in ("communication_disabled_until", "nick", "roles")})
        return self._json(None, 200, member)

    async def _interaction_callback(self, request: web.Request, body: Any, interaction_id: str,
                                    token: str) -> web.Response:
        interaction = self._interactions.get(interaction_id)
        if interaction is None or interaction.token != token:
            return self._not_found("interaction", 10062)
        if interaction.acknowledged:
            return self._json(None, 400, {"message": "Interaction has already been acknowledged.",
                                          "code": 40060})
        interaction.acknowledged = True
        kind = body["type"]
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        interaction.deferred = kind == 5
        channel_id = interaction.data["channel_id"]
        message = self._bot_message(channel_id, data if kind == 4 else {"content": ""}, flags=flags,
                                    interaction=self._metadata(interaction))
        if kind == 4 and not flags & EPHEMERAL_FLAG:  # ephemeral messages are in nobody's channel history
            self._store(message)
        return self._json(None, 200, {
            "interaction": {"id": interaction_id, "type": 2, "response_message_id": message["id"],
                            "response_message_loading": kind == 5,
                            "response_message_ephemeral": bool(flags & EPHEMERAL_FLAG)},
            "resource": {"type": kind, "message": message},
        })

    @staticmethod
    def _metadata(interaction: _Interaction) -> dict[str, Any]:
        data = interaction.data
        user = (data.get("member") or {}).get("user") or data.get("user")
        return {"id": data["id"], "type": 2, "user": user,
                "authorizing_integration_owners": data["authorizing_integration_owners"]}

    def _interaction_by_token(self, token: str) -> _Interaction | None:
        return next((i for i in self._interactions.values() if i.token == token), None)

    async def _followup(self, request: web.Request, body: Any, application_id: str, token: str) -> web.Response:
        interaction = self._interaction_by_token(token)
        if interaction is None or not interaction.acknowledged or application_id != self.application_id:
            return self._not_found("Webhook", 10015)
        message = self._bot_message(interaction.data["channel_id"], body, flags=int(body.get("flags") or 0),
                                    interaction=self._metadata(interaction))
        if not message["flags"] & EPHEMERAL_FLAG:
            self._store(message)
        return self._json(None, 200, message)

    async def _edit_original(self, request: web.Request, body: Any, application_id: str,
                             token: str) -> web.Response:
        interaction = self._interaction_by_token(token)
        if interaction is None or not interaction.acknowledged:
            return self._not_found("Webhook", 10015)
        message = self._bot_message(interaction.data["channel_id"], body,
                                    interaction=self._metadata(interaction))
        return self._json(None, 200, message)

    async def _get_channel(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None:
            return self._not_found("Channel", 10003)
        return self._json(None, 200, channel)

    _routes: ClassVar[list[tuple[str, str, Callable[..., Any]]]] = [
        ("GET", r"/gateway", _get_gateway),
        ("GET", r"/gateway/bot", _get_gateway_bot),
        ("GET", r"/users/@me", _get_me),
        ("GET", r"/oauth2/applications/@me", _get_application),
        ("PUT", r"/applications/\d+/commands()", _put_commands),
        ("PUT", r"/applications/\d+/guilds/(\d+)/commands", _put_commands),
        ("POST", r"/users/@me/channels", _create_dm),
        ("GET", r"/channels/(\d+)", _get_channel),
        ("POST", r"/channels/(\d+)/messages", _post_message),
        ("GET", r"/channels/(\d+)/messages", _get_messages),
        ("GET", r"/channels/(\d+)/messages/(\d+)", _get_message),
        ("DELETE", r"/channels/(\d+)/messages/(\d+)", _delete_message),
        ("PUT", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", _put_reaction),
        ("GET", r"/guilds/(\d+)/members/(\d+)", _get_member),
        ("PATCH", r"/guilds/(\d+)/members/(\d+)", _patch_member),
        ("POST", r"/interactions/(\d+)/([^/]+)/callback", _interaction_callback),
        ("POST", r"/webhooks/(\d+)/([^/]+)", _followup),
        ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/@original", _edit_original),
    ]


@contextlib.contextmanager
def route_discord_py_to(stand_in: DiscordStandIn) -> Iterator[None]:
    """Point discord.py at the stand-in for the duration of the block: the ONLY patching the e2e tests do."""
    with route_discord_py_to_url(stand_in.url):
        yield


@contextlib.contextmanager
def route_discord_py_to_url(url: str) -> Iterator[None]:
    """Point discord.py at the stand-in serving on `url` (also used by `launch`, in a `lien run` subprocess).

    discord.py has no public option for its API base or its first gateway URL, so two class attributes change:
    `discord.http.Route.BASE` (REST, interaction callbacks and webhooks alike) and
    `DiscordWebSocket.DEFAULT_GATEWAY` (a plain Client's first connection; AutoShardedClient asks GET
    /gateway/bot, and every RESUME uses READY's `resume_gateway_url`, both served by the stand-in).
    """
    route, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = f"{url}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url.replace("http://", "ws://") + "/gateway")
    try:
        yield
    finally:
        discord.http.Route.BASE = route
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


def monotonic() -> float:
    """Seconds on a monotonic clock (for measuring delays in tests)."""
    return time.monotonic()
