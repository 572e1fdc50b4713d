"""The issue's scenarios, end to end: real Synapse, real nio clients as members, lien as `lien run --config FILE`.

lien runs in a child process exactly as deployed: a TOML file, the access token in an environment variable, a
SQLite file, stopped with SIGTERM. Nudge delays are a few seconds (fractional minutes), quiet hours are off.
What members see is read through their own clients; what lien decided is read from its database, read-only.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid

import pytest

from adapters.matrix_events import KEY_FIELD
from tests.e2e.matrix.conftest import MakeLien, MakeMember, MakeUser
from tests.e2e.matrix.lien_process import (
    LienProcess,
    keyed,
    lien_messages,
    nudge_key,
    replying_to,
    wait_lien_message,
    wait_until,
)
from tests.e2e.matrix.members import Member
from tests.e2e.matrix.synapse_harness import DEFAULT_MESSAGE_RATE, SynapseServer, TestUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

COMMUNITY = "localhost"  # lien's default community on Matrix: the server name of its user id
NUDGE1 = "This question is still open. Can anyone help?"


async def _community(make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien, names: tuple[str, ...],
                     *, rate_limited: bool = False, **lien_options: object
                     ) -> tuple[str, list[Member], TestUser, LienProcess]:
    """A room created by the first member, the others joined, and lien started, joining it from `matrix.rooms`.

    lien's account is exempt from message rate limits unless `rate_limited` (Synapse's defaults then apply).
    """
    members = [await make_member(n) for n in names]
    lien_user = make_user("lien", rate_limited=rate_limited)
    alias = f"help-{uuid.uuid4().hex[:8]}"
    room = await members[0].create_room(invite=(*(m.user_id for m in members[1:]), lien_user.user_id), alias=alias)
    for m in members[1:]:
        await m.join(room)
    lien = make_lien(lien_user, rooms=(f"#{alias}:localhost",), **lien_options)
    await lien.start()
    await members[0].wait_membership(room, lien_user.user_id, "join")
    return room, members, lien_user, lien


async def _command(member: Member, room: str, text: str, lien_id: str, lien: LienProcess) -> dict:
    """Send a command and return lien's answer to it."""
    cmd = await member.say(room, text)
    return await wait_lien_message(member, room, lien_id, replying_to(cmd), lien=lien)


def _pill(user_id: str) -> str:
    return f'<a href="https://matrix.to/#/{user_id}">'


async def test_unanswered_question_gets_level_1_then_level_2_naming_active_helpers_who_did_not_opt_out(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    room, (alice, bob, carol, dave, erin), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "bob", "carol", "dave", "erin"))
    lien_id = lien_user.user_id
    for helper in (bob, carol, dave, erin):
        await _command(helper, room, "!lien helper on", lien_id, lien)
    # Bob, Carol and Erin are active in the room; Dave volunteered but never spoke here; Erin then opts out.
    await bob.say(room, "Morning all, the bridge release went out last night.")
    await carol.say(room, "Nice, thanks for shipping it.")
    await erin.say(room, "Great, I will upgrade ours this afternoon.")
    await _command(erin, room, "!lien optout", lien_id, lien)

    question = await alice.say(room, "How do I rotate the signing key of the bridge without downtime?")

    level1 = await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, question, 1)), lien=lien)
    level2 = await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, question, 2)), lien=lien)
    asked = (await alice.event(room, question))["origin_server_ts"]
    assert level1["origin_server_ts"] - asked >= 2_900  # level1_floor_minutes = 0.05
    assert level2["origin_server_ts"] > level1["origin_server_ts"]

    c1 = level1["content"]
    assert replying_to(question)(level1)
    assert c1["body"] == NUDGE1
    assert c1["m.mentions"] == {"user_ids": []}

    c2 = level2["content"]
    assert replying_to(question)(level2)
    assert sorted(c2["m.mentions"]["user_ids"]) == sorted([bob.user_id, carol.user_id])
    for helper in (bob, carol):
        assert _pill(helper.user_id) in c2["formatted_body"]
    for left_out in (alice, dave, erin):
        assert left_out.user_id not in c2["body"] and left_out.user_id not in c2["formatted_body"]
    assert "<@" not in c2["body"] and "&lt;@" not in c2["formatted_body"]

    row = lien.question(question)
    assert row is not None and (row["state"], row["nudges"]) == ("open", 2)
    assert await lien.stop() == 0
    assert len([e for e in await lien_messages(alice, room, lien_id) if replying_to(question)(e)]) == 2


async def test_thread_reply_rich_reply_and_check_reaction_each_cancel_the_nudges(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    # Level 1 after 6 s: room for lien to read each answer first, even on a loaded machine.
    room, (alice, bob, carol, dave, erin), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "bob", "carol", "dave", "erin"),
        nudges={"level1_floor_minutes": 0.1, "level2_floor_minutes": 0.2})
    lien_id = lien_user.user_id

    q1 = await alice.say(room, "How do I make the bridge relay message edits?")
    in_thread = await bob.in_thread(room, q1, "Set relay_edits = true in its config and restart it.")
    q2 = await carol.say(room, "Where does the bridge keep its state database?")
    rich_reply = await bob.reply(room, q2, "In /var/lib/bridge, next to the registration file.")
    q3 = await dave.say(room, "Can someone explain how to turn on debug logging for the bridge?")
    await lien.wait_question(q3, lambda row: row is not None)
    await dave.react(room, q3, "✅")
    q4 = await erin.say(room, "Why does the bridge drop my images larger than 10 MB?")  # nobody answers this one

    # q4 was asked last: once its level 1 is out, the level-1 times of q1..q3 have passed too. Level 2 is only
    # ever planned when level 1 fires, so a cancelled level 1 (checked below) means no level 2 either.
    await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, q4, 1)), lien=lien)

    sent = await lien_messages(alice, room, lien_id)
    for q in (q1, q2, q3):
        assert not [e for e in sent if replying_to(q)(e)], f"lien nudged {q} although it was answered"
    rows = {q: lien.question(q) for q in (q1, q2, q3, q4)}
    assert rows[q1] is not None and (rows[q1]["state"], rows[q1]["answers"]) == ("answered", [in_thread])
    assert rows[q2] is not None and (rows[q2]["state"], rows[q2]["answers"]) == ("answered", [rich_reply])
    assert rows[q3] is not None and (rows[q3]["state"], rows[q3]["nudges"]) == ("resolved", 0)
    assert rows[q4] is not None and (rows[q4]["state"], rows[q4]["nudges"]) == ("open", 1)
    for q in (q1, q2, q3):
        assert lien.query("SELECT level, state FROM nudges WHERE question = ?", q) == [(1, "cancelled")]

    listing = await _command(alice, room, "!lien unanswered", lien_id, lien)
    assert f"https://matrix.to/#/{room}/{q4}" in listing["content"]["body"]
    assert f'href="https://matrix.to/#/{room}/{q4}"' in listing["content"]["formatted_body"]
    assert not [q for q in (q1, q2, q3) if q in listing["content"]["body"]]
    assert "<link:" not in listing["content"]["body"]


async def test_mass_dm_and_room_ping_requests_are_refused_and_message_nobody(
        synapse: SynapseServer, make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    room, (_alice, mallory), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "mallory"))
    lien_id = lien_user.user_id

    dm_all = await _command(mallory, room, "!lien dm-all Join my server, free nitro inside", lien_id, lien)
    room_ping = await _command(mallory, room, "!lien announce @room giveaway tonight", lien_id, lien)

    for refusal in (dm_all, room_ping):
        content = refusal["content"]
        assert content["body"].startswith("lien does not"), content["body"]
        assert content["m.mentions"] == {"user_ids": []}
    assert "private messages to everyone" in dm_all["content"]["body"]
    assert "@room" not in room_ping["content"]["body"] and "@room" not in room_ping["content"]["formatted_body"]
    quoted = urllib.parse.quote(lien_id)
    rooms = synapse.request("GET", f"/_synapse/admin/v1/users/{quoted}/joined_rooms", token=_admin_token(synapse))
    assert rooms["joined_rooms"] == [room]  # no DM room was opened for anyone
    assert len(await lien_messages(mallory, room, lien_id)) == 2  # the two refusals, nothing else
    assert await lien.stop() == 0


def _admin_token(synapse: SynapseServer) -> str:
    assert synapse.admin is not None
    return synapse.admin.access_token


async def test_pause_is_refused_to_power_level_0_and_honoured_for_power_level_100(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    room, (alice, bob, dave, erin), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "bob", "dave", "erin"))
    lien_id = lien_user.user_id
    await alice.set_power(room, dave.user_id, 100)

    refused = await _command(bob, room, "!lien pause", lien_id, lien)
    assert refused["content"]["body"] == "Only the community's admins can do that."
    paused = await _command(dave, room, "!lien pause", lien_id, lien)
    assert paused["content"]["body"].startswith("Nudges are paused")

    question = await erin.say(room, "How do I reset a portal that is stuck on an old name?")
    await lien.wait_question(question, lambda row: row is not None)
    await asyncio.sleep(5)  # past level 1 (3 s): paused, so nothing may come
    assert not [e for e in await lien_messages(alice, room, lien_id) if replying_to(question)(e)]

    resumed = await _command(dave, room, "!lien resume", lien_id, lien)
    assert resumed["content"]["body"] == "Nudges are back on."
    level1 = await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, question, 1)), lien=lien)
    assert level1["origin_server_ts"] > resumed["origin_server_ts"]


async def test_nudge_due_while_lien_is_stopped_is_delivered_once_and_downtime_questions_are_tracked(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    room, (alice, bob, carol), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "bob", "carol"))
    lien_id = lien_user.user_id
    q1 = await alice.say(room, "How do I limit the bridge to one space?")
    await lien.wait_question(q1, lambda row: row is not None and row["state"] == "open")

    assert await lien.stop() == 0
    down_at = time.monotonic()
    # Small talk first: in a quiet room a question straight after another reads as a question back to the asker.
    await carol.say(room, "lol")
    q2 = await bob.say(room, "Which port does the bridge listen on by default?")
    await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - down_at)))  # q1's level 1 (3 s) falls due while down
    assert not [e for e in await lien_messages(alice, room, lien_id) if replying_to(q1)(e)]

    await lien.start()
    await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, q1, 1)), lien=lien)
    await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, q2, 1)), lien=lien)
    # A second restart must find those nudges marked sent and deliver nothing again.
    await _marked_sent(lien, nudge_key(COMMUNITY, q1, 1), nudge_key(COMMUNITY, q2, 1))
    assert await lien.stop() == 0
    await lien.start()
    # lien's messages in a room leave in order: anything resumed at start would come before this answer.
    await _command(carol, room, "!lien help", lien_id, lien)
    assert await lien.stop() == 0

    keys = [e["content"].get(KEY_FIELD) for e in await lien_messages(alice, room, lien_id)]
    for q in (q1, q2):
        assert keys.count(nudge_key(COMMUNITY, q, 1)) == 1, keys
    assert lien.query("SELECT key FROM outbox WHERE sent_at IS NULL AND key LIKE '%|1'") == []


async def test_answer_sent_while_lien_is_stopped_cancels_the_nudge_that_fell_due_meanwhile(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    room, (alice, bob, carol), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "bob", "carol"))
    lien_id = lien_user.user_id
    control = await alice.say(room, "How do I limit the bridge to one space?")
    await bob.say(room, "lol")  # not a quiet room: carol's question is a new one, not a question back
    question = await carol.say(room, "Why are my bridged messages arriving twice?")
    for q in (control, question):
        await lien.wait_question(q, lambda row: row is not None and row["state"] == "open")

    assert await lien.stop() == 0
    down_at = time.monotonic()
    answer = await bob.reply(room, question, "You run two bridge instances on the same registration.")
    await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - down_at)))  # both level-1 times pass while down

    await lien.start()
    # The control question's overdue nudge shows that lien has caught up on its timers.
    await wait_lien_message(alice, room, lien_id, keyed(nudge_key(COMMUNITY, control, 1)), lien=lien)
    await lien.wait_question(question, lambda row: row is not None and row["state"] == "answered")
    await asyncio.sleep(1)
    assert lien.question(question) == {"state": "answered", "answers": [answer], "credited": [], "nudges": 0}
    assert lien.query("SELECT level, state FROM nudges WHERE question = ?", question) == [(1, "cancelled")]
    assert not [e for e in await lien_messages(alice, room, lien_id) if replying_to(question)(e)]
    assert await lien.stop() == 0


async def test_sigterm_while_a_due_nudge_waits_out_a_rate_limit_still_delivers_it_exactly_once(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    room, (alice, *others), lien_user, lien = await _community(
        make_member, make_user, make_lien, ("alice", "bob", "carol", "dave", "erin", "frank"), rate_limited=True,
        nudges={"room_pace_seconds": 0})
    lien_id = lien_user.user_id
    question = await alice.say(room, "How do I run the bridge behind a reverse proxy?")
    key = nudge_key(COMMUNITY, question, 1)
    # Eleven command replies overrun lien's burst (Synapse's default: 10, then one per 5 s), so the nudge, due
    # right after them, has to wait out a 429 whatever the machine's speed.
    commands = [*(["!lien help", "!lien policy"] * len(others)), "!lien help"]
    await asyncio.gather(*(others[i % len(others)].say(room, text) for i, text in enumerate(commands)))
    await wait_until(lambda: f"{key} in {room} failed" in lien.log_text(), within=30,
                     problem=lambda: f"the nudge never waited on a rate limit\n{lien.log_tail()}")
    assert lien.query("SELECT sent_at FROM outbox WHERE key = ?", key) == [(None,)]

    assert await lien.stop() == 0
    await lien.start()
    await _marked_sent(lien, key)
    await asyncio.sleep(1)  # a second copy, if any, would be on its way by now
    keys = [e["content"].get(KEY_FIELD) for e in await lien_messages(alice, room, lien_id)]
    assert keys.count(key) == 1, lien.log_tail()
    assert await lien.stop() == 0


async def _marked_sent(lien: LienProcess, *keys: str) -> None:
    """Wait until lien has recorded each keyed action as delivered (it records right after the send)."""
    marks = ", ".join("?" * len(keys))
    await wait_until(
        lambda: lien.query(f"SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL AND key IN ({marks})", *keys)
        == [(len(keys),)], within=10, problem=lambda: f"{keys} not all marked sent\n{lien.log_tail()}")


@pytest.mark.timeout(180)
async def test_burst_of_200_member_messages_is_all_processed_and_every_nudge_survives_default_rate_limits(
        make_member: MakeMember, make_user: MakeUser, make_lien: MakeLien) -> None:
    askers = [await make_member(f"asker{i}") for i in range(ASKERS)]
    chatters = [await make_member(f"chatter{i}") for i in range(4)]
    everyone = [*askers, *chatters]
    lien_user = make_user("lien", rate_limited=True)  # Synapse's default rc_message: 0.2/s, burst 10
    alias = f"busy-{uuid.uuid4().hex[:8]}"
    owner = chatters[0]
    room = await owner.create_room(invite=(*(m.user_id for m in everyone if m is not owner), lien_user.user_id),
                                   alias=alias)
    await asyncio.gather(*(m.join(room) for m in everyone if m is not owner))
    # Only level 1 within the test: each open question costs lien exactly one message.
    # The burst is a flood by design; the guard's own reports are tested elsewhere and would only add lien
    # messages competing for the same rate limit, so it is off here.
    lien = make_lien(lien_user, rooms=(f"#{alias}:localhost",),
                     nudges={"level2_floor_minutes": 60, "level3_minutes": 120}, guard={"enabled": False})
    await lien.start()
    await owner.wait_membership(room, lien_user.user_id, "join")
    lien_id = lien_user.user_id

    script: list[tuple[Member, str]] = []
    for i in range(BURST):
        if i % (BURST // ASKERS) == 0 and i // (BURST // ASKERS) < ASKERS:
            n = i // (BURST // ASKERS)
            script.append((askers[n], f"How do I configure bridge number {n} to relay read receipts?"))
        else:
            script.append((chatters[i % 4], SMALL_TALK[i % len(SMALL_TALK)]))
    ids: list[str] = []
    for chunk in range(0, BURST, 50):  # 50 at a time: lien's syncs may outgrow the timeline limit and backfill
        ids += await asyncio.gather(*(m.say(room, text) for m, text in script[chunk:chunk + 50]))

    assert len(set(ids)) == BURST
    await wait_until(lambda: _stored(lien, room, lien_id) == set(ids), within=30,
                     problem=lambda: f"{len(_stored(lien, room, lien_id))} of {BURST} messages processed")

    open_questions = [q for (q,) in lien.query("SELECT id FROM questions WHERE room = ? AND state = 'open'", room)]
    _, burst = DEFAULT_MESSAGE_RATE
    assert len(open_questions) > burst, f"{len(open_questions)} open questions: too few to exceed the rate limit"
    for q in open_questions:
        await wait_lien_message(owner, room, lien_id, keyed(nudge_key(COMMUNITY, q, 1)), within=120, lien=lien)
    keys = [e["content"].get(KEY_FIELD) for e in await lien_messages(owner, room, lien_id)]
    for q in open_questions:
        assert keys.count(nudge_key(COMMUNITY, q, 1)) == 1
    assert lien.query("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
    # More nudges than the burst Synapse allows: lien met 429s, waited them out, and lost none.
    assert "M_LIMIT_EXCEEDED" in lien.log_text(), "no 429 was met: the rate limit under test was not in force"
    assert await lien.stop() == 0


BURST = 200
#: Synapse allows a burst of 10 then 0.2 messages/s: 20 nudges meet a 429 unless lien takes over 50 s to send
#: them (13 did not, once, on a loaded machine: the sends were slow enough to stay under the limit).
ASKERS = 20
SMALL_TALK = ("lol", "nice", "haha", "ok", "+1", "cool", "brb", "wow", "yay", "hmm", "great", "back")


def _stored(lien: LienProcess, room: str, lien_id: str) -> set[str]:
    """Ids of the members' messages lien has processed (it stores ids and authors, never text)."""
    return {mid for (mid,) in lien.query("SELECT id FROM messages WHERE room = ? AND author != ?", room, lien_id)}
