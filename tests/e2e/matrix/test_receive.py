"""The adapter, against a real Synapse, turns what members do into the right core events."""

from __future__ import annotations

import pytest

from adapters.matrix_adapter import MatrixAdapter
from bot.actions import Post
from bot.events import Command, Delete, Edit, MemberJoin, MemberLeave, Message, Reaction
from tests.e2e.matrix.conftest import EventRecorder, MakeAdapter, MakeMember, MakeUser, MemoryKv
from tests.e2e.matrix.members import Member
from tests.e2e.matrix.synapse_harness import TestUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


async def _room_with_lien(alice: Member, lien: TestUser, make_adapter: MakeAdapter,
                          rec: EventRecorder) -> tuple[str, MatrixAdapter]:
    """Alice's room, with lien invited by Alice (allow-listed) and joined."""
    room = await alice.create_room()
    adapter = await make_adapter(lien, on_event=rec, allowed_inviters=[alice.user_id])
    await alice.invite(room, lien.user_id)
    await alice.wait_membership(room, lien.user_id, "join")
    return room, adapter


def _id(event_id: str):
    return lambda e: getattr(e, "id", None) == event_id


async def test_members_activity_arrives_as_core_events(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    alice, bob = await make_member("alice"), await make_member("bob")
    rec = EventRecorder()
    room, adapter = await _room_with_lien(alice, make_user("lien"), make_adapter, rec)

    await alice.invite(room, bob.user_id)
    await bob.join(room)
    joined = await rec.wait_for(lambda e: isinstance(e, MemberJoin) and e.author == bob.user_id)
    assert joined.community == "localhost"

    q = await alice.say(room, "How do I configure the bridge for two rooms?")
    got = await rec.wait_for(_id(q))
    assert isinstance(got, Message)
    assert (got.room, got.author, got.text, got.reply_to, got.thread, got.is_bot) == (
        room, alice.user_id, "How do I configure the bridge for two rooms?", None, None, False)

    answer = await bob.reply(room, q, "Use one [[rooms]] block per room.")
    got = await rec.wait_for(_id(answer))
    assert isinstance(got, Message)
    assert got.reply_to == q
    assert got.text == "Use one [[rooms]] block per room."  # the quoted fallback is gone
    assert got.mentions == (alice.user_id,)

    root = await alice.say(room, "Release checklist for 2.0")
    in_thread = await bob.in_thread(room, root, "Changelog is done.")
    thread_reply = await alice.in_thread(room, root, "Who tags it?", reply_to=in_thread)
    got_root, got_in, got_reply = [await rec.wait_for(_id(i)) for i in (root, in_thread, thread_reply)]
    assert isinstance(got_root, Message) and got_root.thread is None
    assert isinstance(got_in, Message) and (got_in.thread, got_in.reply_to) == (root, None)  # fallback: no reply
    assert isinstance(got_reply, Message) and (got_reply.thread, got_reply.reply_to) == (root, in_thread)

    await bob.react(room, q, "👍")
    got = await rec.wait_for(lambda e: isinstance(e, Reaction))
    assert (got.message, got.author, got.emoji) == (q, bob.user_id, "👍")

    await alice.edit(room, q, "How do I configure the bridge for three rooms?")
    got = await rec.wait_for(lambda e: isinstance(e, Edit))
    assert (got.id, got.text) == (q, "How do I configure the bridge for three rooms?")

    await bob.redact(room, answer)
    got = await rec.wait_for(lambda e: isinstance(e, Delete))
    assert got.id == answer

    await bob.leave(room)
    got = await rec.wait_for(lambda e: isinstance(e, MemberLeave))
    assert got.author == bob.user_id

    own = await adapter.deliver(Post(ts=got.ts, community="localhost", room=room, kind="test", text="hello"))
    got = await rec.wait_for(_id(own))
    assert isinstance(got, Message) and got.is_bot


async def test_prefixed_message_becomes_command_with_admin_from_power_levels(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    alice, bob, carol = await make_member("alice"), await make_member("bob"), await make_member("carol")
    rec = EventRecorder()
    room, _ = await _room_with_lien(alice, make_user("lien"), make_adapter, rec)
    for m in (bob, carol):
        await alice.invite(room, m.user_id)
        await m.join(room)
    await alice.set_power(room, bob.user_id, 50)

    expected = {
        await alice.say(room, "!lien unanswered"): True,  # the room's creator (room v12: unlimited power)
        await bob.say(room, '!lien config "quiet hours" off'): True,  # moderator, power level 50
        await carol.say(room, "!lien config nudges off"): False,  # ordinary member
    }
    for event_id, admin in expected.items():
        got = await rec.wait_for(_id(event_id))
        assert isinstance(got, Command)
        assert got.is_admin is admin, got
    bob_cmd = next(e for e in rec.events if isinstance(e, Command) and e.author == bob.user_id)
    assert (bob_cmd.name, bob_cmd.args) == ("config", ("quiet hours", "off"))


async def test_history_from_before_lien_joined_is_not_delivered(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    alice = await make_member("alice")
    room = await alice.create_room()
    before = [await alice.say(room, f"old message {i}") for i in range(3)]
    rec = EventRecorder()
    lien = make_user("lien")
    await make_adapter(lien, on_event=rec, allowed_inviters=[alice.user_id])
    await alice.invite(room, lien.user_id)
    await alice.wait_membership(room, lien.user_id, "join")
    after = await alice.say(room, "new message")
    await rec.wait_for(_id(after))
    assert not [e for e in rec.events if getattr(e, "id", None) in before]


async def test_first_start_skips_history_of_rooms_already_joined(
        make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter) -> None:
    alice = await make_member("alice")
    lien = make_user("lien")
    room = await alice.create_room(invite=(lien.user_id,))
    await (await make_member(lien)).join(room)  # lien joined before it ever ran
    old = await alice.say(room, "said before lien ever started")
    rec = EventRecorder()
    await make_adapter(lien, on_event=rec, kv=MemoryKv())
    new = await alice.say(room, "said after")
    await rec.wait_for(_id(new))
    assert old not in [getattr(e, "id", None) for e in rec.events]
