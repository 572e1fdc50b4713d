"""A guard timeout on Matrix, against a real Synapse: a mute by power level that Synapse enforces, then restored.

Rooms are room version 12 (Synapse 1.163's default): alice creates them and so holds unlimited power; she makes
lien an admin (100) or not, as each test needs. The mutes last 0.05 minutes (3 s) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from nio import RoomGetStateEventResponse

from adapters.matrix_adapter import ActionRefused, MatrixAdapter
from bot.actions import Timeout
from bot.clock import SystemClock, VirtualClock
from tests.e2e.matrix.conftest import EventRecorder, MakeAdapter, MakeMember, MakeUser, MemoryKv
from tests.e2e.matrix.members import Member, MemberError
from tests.e2e.matrix.synapse_harness import TestUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SHORT = 0.05  # minutes
_T = TypeVar("_T")


class _Room:
    """A room alice created, with lien (at `lien_level`) and the members in it, and a started adapter."""

    def __init__(self, room_id: str, alice: Member, lien: TestUser, adapter: MatrixAdapter, rec: EventRecorder,
                 kv: MemoryKv, minutes: float) -> None:
        self.id, self.alice, self.lien, self.adapter, self.rec, self.kv = room_id, alice, lien, adapter, rec, kv
        self.minutes = minutes

    async def levels(self) -> dict[str, Any]:
        resp = await self.alice.client.room_get_state_event(self.id, "m.room.power_levels")
        assert isinstance(resp, RoomGetStateEventResponse), resp
        return dict(resp.content)

    async def set_power(self, user_id: str, level: int) -> None:
        """Alice sets a level; returns once lien's adapter has seen it (its tracked state is what it checks)."""
        await self.alice.set_power(self.id, user_id, level)
        marker = await self.alice.say(self.id, f"set {user_id} to {level}")
        await self.rec.wait_for(lambda e: getattr(e, "id", None) == marker)

    def timeout(self, member: Member) -> Timeout:
        return Timeout(ts=datetime.now(UTC), community="localhost", room=self.id, kind="guard", to=member.user_id,
                       reason="flood", minutes=self.minutes)

    def mutes(self) -> list[dict[str, Any]]:
        return json.loads(self.kv.data.get(f"matrix:{self.lien.user_id}:mutes", "[]"))

    async def wait_levels(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return await _poll(self.levels, check)


async def _room(make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter, *members: Member,
                lien_level: int | None = 100, kv: MemoryKv | None = None, minutes: float = 10,
                **options: Any) -> _Room:
    alice = await make_member("alice")
    lien = make_user("lien")
    kv = kv or MemoryKv()
    rec = EventRecorder()
    room_id = await alice.create_room()
    adapter = await make_adapter(lien, on_event=rec, kv=kv, allowed_inviters=[alice.user_id], **options)
    await alice.invite(room_id, lien.user_id)
    await alice.wait_membership(room_id, lien.user_id, "join")
    for member in members:
        await alice.invite(room_id, member.user_id)
        await member.join(room_id)
    room = _Room(room_id, alice, lien, adapter, rec, kv, minutes)
    if lien_level is not None:
        await room.set_power(lien.user_id, lien_level)
    return room


async def _cannot_send(member: Member, room_id: str) -> str:
    with pytest.raises(MemberError) as refused:
        await member.say(room_id, "let me speak")
    return str(refused.value)


def _without_users(levels: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in levels.items() if k != "users"}


async def _poll(read: Callable[[], Awaitable[_T]], check: Callable[[_T], bool], within: float = 20.0) -> _T:
    """`read()` every 0.2 s until `check` accepts its value, which is returned; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while not check(value := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {within}s")
        await asyncio.sleep(0.2)
    return value


async def test_timeout_mutes_the_member_until_it_ends_then_restores_the_level(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    bob, carol = await make_member("bob"), await make_member("carol")
    room = await _room(make_member, make_user, make_adapter, bob, carol, minutes=SHORT)
    await room.set_power(carol.user_id, 20)
    before = await room.levels()
    assert bob.user_id not in before["users"]

    event_id = await room.adapter.deliver(room.timeout(bob))

    muted = await room.levels()
    assert event_id.startswith("$")
    assert muted["users"] == {**before["users"], bob.user_id: -1}  # below events_default 0; nobody else touched
    assert _without_users(muted) == _without_users(before)
    assert "M_FORBIDDEN" in await _cannot_send(bob, room.id)
    await carol.say(room.id, "others still speak")
    [mute] = room.mutes()
    assert (mute["member"], mute["level"], mute["previous"]) == (bob.user_id, -1, None)

    restored = await room.wait_levels(lambda pl: bob.user_id not in pl["users"])
    assert restored == before  # the entry lien added is removed: bob is back at users_default
    await bob.say(room.id, "thanks, I will slow down")
    assert room.mutes() == []


async def test_timeout_is_refused_when_lien_lacks_power_and_nothing_changes(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    bob, carol = await make_member("bob"), await make_member("carol")
    room = await _room(make_member, make_user, make_adapter, bob, carol, lien_level=None, minutes=SHORT)
    before = await room.levels()

    with pytest.raises(ActionRefused) as plain_member:
        await room.adapter.deliver(room.timeout(bob))
    await room.set_power(room.lien.user_id, 50)  # a moderator, but power levels need 100 in Synapse's defaults
    with pytest.raises(ActionRefused) as moderator:
        await room.adapter.deliver(room.timeout(bob))
    await room.set_power(room.lien.user_id, 100)
    await room.set_power(carol.user_id, 100)
    with pytest.raises(ActionRefused) as peer:
        await room.adapter.deliver(room.timeout(carol))

    assert [e.value.reason for e in (plain_member, moderator, peer)] == ["permission"] * 3
    assert "lacks power level 100 to change power levels (it has 0)" in str(plain_member.value)
    assert "lacks power level 100 to change power levels (it has 50)" in str(moderator.value)
    assert f"not above {carol.user_id}'s (100)" in str(peer.value)
    after = await room.levels()
    assert after["users"] == {**before["users"], room.lien.user_id: 100, carol.user_id: 100}  # only alice's changes
    assert _without_users(after) == _without_users(before)
    await bob.say(room.id, "still here")
    assert room.mutes() == []


async def test_a_second_timeout_extends_the_mute_and_keeps_the_level_to_restore(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    bob = await make_member("bob")
    room = await _room(make_member, make_user, make_adapter, bob, minutes=SHORT)
    await room.set_power(bob.user_id, 10)

    await room.adapter.deliver(room.timeout(bob))
    [first] = room.mutes()
    await asyncio.sleep(1.5)
    again = await room.adapter.deliver(room.timeout(bob))

    [second] = room.mutes()
    assert again == ""  # still muted: nothing written
    assert (second["level"], second["previous"]) == (-1, 10)  # not -1, the level bob had while muted
    assert datetime.fromisoformat(second["until"]) >= datetime.fromisoformat(first["until"]) + timedelta(seconds=1)
    assert (await room.levels())["users"][bob.user_id] == -1
    await asyncio.sleep(max(0.0, (datetime.fromisoformat(first["until"]) - datetime.now(UTC)).total_seconds()) + 0.5)
    assert (await room.levels())["users"][bob.user_id] == -1, "restored at the first end, not the extended one"

    await room.wait_levels(lambda pl: pl["users"].get(bob.user_id) == 10)
    await bob.say(room.id, "back at 10")


async def test_mutes_survive_a_restart_and_a_moderator_change_wins(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    bob, carol = await make_member("bob"), await make_member("carol")
    room = await _room(make_member, make_user, make_adapter, bob, carol, minutes=10)
    before = await room.levels()
    await room.adapter.deliver(room.timeout(bob))
    await room.adapter.deliver(room.timeout(carol))
    await room.alice.set_power(room.id, bob.user_id, 20)  # a moderator decides for bob meanwhile
    await room.adapter.stop()
    assert {m["member"] for m in room.mutes()} == {bob.user_id, carol.user_id}  # kept at stop

    # Restarted before the end: the mutes are re-armed, nothing is restored yet.
    resumed = await make_adapter(room.lien, on_event=EventRecorder(), kv=room.kv, clock=SystemClock())
    await asyncio.sleep(1.0)
    assert (await room.levels())["users"][carol.user_id] == -1
    assert len(room.mutes()) == 2
    await resumed.stop()

    # Restarted (on an injected clock) after the end: restored at start, except what the moderator changed.
    later = VirtualClock(datetime.now(UTC) + timedelta(minutes=11))
    await make_adapter(room.lien, on_event=EventRecorder(), kv=room.kv, clock=later)
    restored = await room.wait_levels(lambda pl: carol.user_id not in pl["users"])
    assert restored["users"] == {**before["users"], bob.user_id: 20}
    await _poll(_async(room.mutes), lambda mutes: mutes == [])
    await carol.say(room.id, "I can speak again")


def _async(read: Callable[[], _T]) -> Callable[[], Awaitable[_T]]:
    async def wrapped() -> _T:
        return read()

    return wrapped


async def _second_room(first: _Room, *members: Member, lien_level: int | None = 100) -> _Room:
    """Another room alice creates, with the same lien adapter and the given members."""
    room_id = await first.alice.create_room()
    await first.alice.invite(room_id, first.lien.user_id)
    await first.alice.wait_membership(room_id, first.lien.user_id, "join")
    for member in members:
        await first.alice.invite(room_id, member.user_id)
        await member.join(room_id)
    room = _Room(room_id, first.alice, first.lien, first.adapter, first.rec, first.kv, first.minutes)
    if lien_level is not None:
        await room.set_power(first.lien.user_id, lien_level)
    return room


async def test_a_timeout_mutes_the_member_in_every_room_lien_shares_with_them(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    # As a Discord timeout covers the server: muted in the hit's room and the other shared room, skipped where
    # lien lacks the power (the outcome is the hit room's), untouched where the member is not, restored in all.
    bob, carol = await make_member("bob"), await make_member("carol")
    hit = await _room(make_member, make_user, make_adapter, bob, carol, minutes=SHORT)
    other = await _second_room(hit, bob, carol)
    powerless = await _second_room(hit, bob, carol, lien_level=None)
    without_bob = await _second_room(hit, carol)
    before = {r.id: await r.levels() for r in (other, powerless, without_bob)}

    event_id = await hit.adapter.deliver(hit.timeout(bob))

    assert event_id.startswith("$")
    assert (await other.levels())["users"][bob.user_id] == -1
    assert "M_FORBIDDEN" in await _cannot_send(bob, other.id)
    assert "M_FORBIDDEN" in await _cannot_send(bob, hit.id)
    await bob.say(powerless.id, "lien has no power here")
    assert await powerless.levels() == before[powerless.id]
    assert await without_bob.levels() == before[without_bob.id]
    await carol.say(other.id, "others still speak")
    assert {(m["room"], m["member"]) for m in hit.mutes()} == {(hit.id, bob.user_id), (other.id, bob.user_id)}

    restored = await other.wait_levels(lambda pl: bob.user_id not in pl["users"])
    assert restored == before[other.id]
    await hit.wait_levels(lambda pl: bob.user_id not in pl["users"])
    await bob.say(other.id, "back")
    await _poll(_async(hit.mutes), lambda mutes: mutes == [])
