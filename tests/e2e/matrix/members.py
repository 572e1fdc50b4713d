"""Human test members: a real nio client per registered user, sending events the way Element shapes them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    MessageDirection,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomMessagesResponse,
)

from tests.e2e.matrix.synapse_harness import SynapseServer, TestUser


class MemberError(AssertionError):
    """A test member's request failed; the homeserver's answer is in the message."""


def _ok(resp: Any, what: str) -> Any:
    if isinstance(resp, ErrorResponse):
        raise MemberError(f"{what}: {resp}")
    return resp


class Member:
    """One person in the tests; every method checks the homeserver's answer and raises MemberError on errors."""

    def __init__(self, server: SynapseServer, user: TestUser) -> None:
        self.user = user
        self.client = AsyncClient(server.base_url, user.user_id, device_id=user.device_id,
                                  config=AsyncClientConfig(encryption_enabled=False))
        self.client.restore_login(user.user_id, user.device_id, user.access_token)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    async def close(self) -> None:
        await self.client.close()

    async def create_room(self, *, invite: tuple[str, ...] = (), name: str = "test room",
                          alias: str | None = None) -> str:
        """A new private room (this member its creator), with a local `alias` (`#alias:server`) if given."""
        resp = await self.client.room_create(name=name, invite=list(invite), alias=alias)
        if not isinstance(resp, RoomCreateResponse):
            raise MemberError(f"create room: {resp}")
        return resp.room_id

    async def invite(self, room_id: str, user_id: str) -> None:
        _ok(await self.client.room_invite(room_id, user_id), f"invite {user_id}")

    async def join(self, room_id: str) -> None:
        _ok(await self.client.join(room_id), f"join {room_id}")

    async def leave(self, room_id: str) -> None:
        _ok(await self.client.room_leave(room_id), f"leave {room_id}")

    async def kick(self, room_id: str, user_id: str, reason: str = "test") -> None:
        _ok(await self.client.room_kick(room_id, user_id, reason=reason), f"kick {user_id}")

    async def set_power(self, room_id: str, user_id: str, level: int) -> None:
        resp = _ok(await self.client.room_get_state_event(room_id, "m.room.power_levels"), "read power levels")
        content = dict(resp.content)
        content["users"] = {**content.get("users", {}), user_id: level}
        _ok(await self.client.room_put_state(room_id, "m.room.power_levels", content), "set power levels")

    async def send(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        resp = _ok(await self.client.room_send(room_id, event_type, content), f"send {event_type}")
        return str(resp.event_id)

    async def say(self, room_id: str, body: str) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": body, "m.mentions": {}})

    async def reply(self, room_id: str, to: str, body: str) -> str:
        """A reply with the quoted fallback that older clients still send."""
        original = await self.event(room_id, to)
        quoted = original["content"].get("body", "")
        sender = original["sender"]
        return await self.send(room_id, {
            "msgtype": "m.text",
            "body": f"> <{sender}> {quoted}\n\n{body}",
            "format": "org.matrix.custom.html",
            "formatted_body": f'<mx-reply><blockquote><a href="https://matrix.to/#/{room_id}/{to}">In reply to</a>'
                              f' <a href="https://matrix.to/#/{sender}">{sender}</a><br>{quoted}</blockquote>'
                              f"</mx-reply>{body}",
            "m.relates_to": {"m.in_reply_to": {"event_id": to}},
            "m.mentions": {"user_ids": [sender]},
        })

    async def in_thread(self, room_id: str, root: str, body: str, *, reply_to: str | None = None) -> str:
        """A thread message; with `reply_to` a real reply inside the thread, else a fallback to the root."""
        relates: dict[str, Any] = {"rel_type": "m.thread", "event_id": root}
        relates |= ({"is_falling_back": False, "m.in_reply_to": {"event_id": reply_to}} if reply_to
                    else {"is_falling_back": True, "m.in_reply_to": {"event_id": root}})
        return await self.send(room_id, {"msgtype": "m.text", "body": body, "m.relates_to": relates})

    async def react(self, room_id: str, target: str, key: str) -> str:
        return await self.send(room_id, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target,
                                                          "key": key}}, "m.reaction")

    async def edit(self, room_id: str, target: str, body: str) -> str:
        return await self.send(room_id, {
            "msgtype": "m.text", "body": f" * {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        })

    async def redact(self, room_id: str, target: str) -> str:
        resp = _ok(await self.client.room_redact(room_id, target, reason="test"), f"redact {target}")
        return str(resp.event_id)

    async def event(self, room_id: str, event_id: str) -> dict[str, Any]:
        resp = await self.client.room_get_event(room_id, event_id)
        if not isinstance(resp, RoomGetEventResponse):
            raise MemberError(f"get event {event_id}: {resp}")
        return dict(resp.event.source)

    async def messages(self, room_id: str, *, limit: int = 200, sender: str | None = None) -> list[dict[str, Any]]:
        """The room's latest events (optionally one sender's), oldest first."""
        flt = {"senders": [sender]} if sender else None
        resp = await self.client.room_messages(room_id, direction=MessageDirection.back, limit=limit,
                                               message_filter=flt)
        if not isinstance(resp, RoomMessagesResponse):
            raise MemberError(f"messages in {room_id}: {resp}")
        return [dict(ev.source) for ev in reversed(resp.chunk)]

    async def membership(self, room_id: str, user_id: str) -> str | None:
        resp = await self.client.room_get_state_event(room_id, "m.room.member", user_id)
        return resp.content.get("membership") if isinstance(resp, RoomGetStateEventResponse) else None

    async def wait_membership(self, room_id: str, user_id: str, want: str, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while (got := await self.membership(room_id, user_id)) != want:
            if time.monotonic() > deadline:
                raise MemberError(f"{user_id} is {got!r} in {room_id}, not {want!r} after {within}s")
            await asyncio.sleep(0.1)
