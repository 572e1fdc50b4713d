"""Actions performed through the real discord.py client, as the stand-in records them on the wire."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.actions import Action, DeleteMessage, Dm, Post, React, Refuse, Reply, Timeout
from bot.errors import UnsupportedAction
from bot.events import Command, Event, Message
from bot.render import question_link
from tests.e2e.discord.conftest import (
    ALICE,
    BOB,
    GUILD,
    HELP,
    LIEN,
    ROLE_HELPERS,
    THREAD,
    StartAdapter,
    eventually,
)
from tests.e2e.discord.stand_in import EPHEMERAL_FLAG, DiscordStandIn, monotonic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

MESSAGES = r"/channels/\d+/messages"


def _now() -> datetime:
    return datetime.now(UTC)


def _bot_messages(stand_in: DiscordStandIn, channel: str) -> list[dict[str, Any]]:
    return [m for m in stand_in.messages.get(channel, []) if m["author"]["id"] == LIEN]


async def test_reply_posts_with_exactly_the_actions_mentions_and_no_mass_ping(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    question = stand_in.message(HELP, ALICE, "Anyone know why the build fails?")
    await adapter.perform(Reply(
        ts=_now(), community=GUILD, room=HELP, kind="nudge", level=2, reply_to=question["id"],
        question=question["id"], mentions=(BOB,),
        text=f"@everyone @here <@&{ROLE_HELPERS}> <@{BOB}>, could you have a look?"))
    [post] = stand_in.requests_to("POST", rf"/channels/{HELP}/messages")
    assert post.status == 200
    assert post.body["allowed_mentions"] == {"parse": [], "users": [int(BOB)]}
    assert "@everyone" not in post.body["content"] and "@here" not in post.body["content"]
    assert f"<@&{ROLE_HELPERS}>" not in post.body["content"]
    assert post.body["message_reference"]["message_id"] == int(question["id"])
    assert post.body["message_reference"]["fail_if_not_exists"] is False
    [sent] = _bot_messages(stand_in, HELP)
    assert [u["id"] for u in sent["mentions"]] == [BOB]


async def test_reply_in_a_thread_goes_to_the_thread(start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    await adapter.perform(Reply(ts=_now(), community=GUILD, room=HELP, thread=THREAD, kind="nudge",
                                reply_to=THREAD, text="Still open here."))
    [post] = stand_in.requests_to("POST", MESSAGES)
    assert post.path == f"/channels/{THREAD}/messages"
    assert post.body["allowed_mentions"] == {"parse": [], "users": []}


async def test_slash_command_reaches_on_event_and_its_reply_is_an_ephemeral_response(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()

    def answer(event: Event) -> list[Action]:
        assert isinstance(event, Command)
        return [Reply(ts=_now(), community=event.community, room=event.room, kind="command", reply_to=event.id,
                      text="No open question here. Thanks for checking!")]

    runtime.respond = answer
    [sync] = stand_in.requests_to("PUT", rf"/applications/{LIEN}/guilds/{GUILD}/commands")
    [lien] = sync.body
    assert lien["name"] == "lien"
    assert {o["name"] for o in lien["options"]} >= {"unanswered", "helper", "config", "forget-me", "dm-all"}

    interaction = stand_in.interaction(HELP, ALICE, [{"name": "unanswered", "type": 1, "options": []}])
    await stand_in.dispatch("INTERACTION_CREATE", interaction)
    command = await runtime.wait_for(lambda e: isinstance(e, Command))
    assert command == Command(community=GUILD, room=HELP, id=interaction["id"], author=ALICE, ts=command.ts,
                              name="unanswered", args=(), is_admin=False)
    [callback] = await stand_in.wait_for_requests(
        "POST", rf"/interactions/{interaction['id']}/{interaction['token']}/callback")
    assert callback.status == 200
    assert callback.body["type"] == 4
    assert callback.body["data"]["flags"] & EPHEMERAL_FLAG
    assert callback.body["data"]["content"] == "No open question here. Thanks for checking!"
    assert callback.body["data"]["allowed_mentions"] == {"parse": [], "users": []}
    assert stand_in.requests_to("POST", MESSAGES) == []


async def test_slow_command_is_deferred_then_answered_by_an_ephemeral_followup(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter(defer_after_seconds=0.1)

    async def slow_answer(event: Event) -> list[Action]:
        await asyncio.sleep(0.5)
        return [Reply(ts=_now(), community=GUILD, room=HELP, kind="command", reply_to=event.id, text="Done.")]

    runtime.respond = slow_answer
    interaction = stand_in.interaction(
        HELP, BOB, [{"name": "helper", "type": 1, "options": [{"name": "state", "type": 3, "value": "on"}]}])
    await stand_in.dispatch("INTERACTION_CREATE", interaction)
    command = await runtime.wait_for(lambda e: isinstance(e, Command))
    assert isinstance(command, Command) and (command.name, command.args) == ("helper", ("on",))
    [followup] = await stand_in.wait_for_requests("POST", rf"/webhooks/{LIEN}/{interaction['token']}")
    [defer] = stand_in.requests_to("POST", rf"/interactions/{interaction['id']}/.*/callback")
    assert defer.body["type"] == 5 and defer.body["data"]["flags"] & EPHEMERAL_FLAG
    assert followup.body["content"] == "Done." and followup.body["flags"] & EPHEMERAL_FLAG


async def test_command_without_a_reply_is_still_acknowledged(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    await start_adapter()
    interaction = stand_in.interaction(HELP, ALICE, [{"name": "policy", "type": 1, "options": []}])
    await stand_in.dispatch("INTERACTION_CREATE", interaction)
    [defer] = await stand_in.wait_for_requests("POST", rf"/interactions/{interaction['id']}/.*/callback")
    assert defer.body["type"] == 5


async def test_refused_mass_dm_command_is_answered_to_the_caller_only(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    runtime.respond = lambda e: [Refuse(ts=_now(), community=GUILD, room=HELP, kind="command", reason="mass_dm",
                                        reply_to=e.id, text="lien never sends mass DMs: here is why...")]
    interaction = stand_in.interaction(HELP, ALICE, [{"name": "dm-all", "type": 1, "options": []}])
    await stand_in.dispatch("INTERACTION_CREATE", interaction)
    [callback] = await stand_in.wait_for_requests("POST", rf"/interactions/{interaction['id']}/.*/callback")
    assert callback.body["type"] == 4 and callback.body["data"]["flags"] & EPHEMERAL_FLAG


async def test_a_429_delays_the_send_without_losing_it(start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    stand_in.rate_limit_next("POST", MESSAGES, retry_after=0.5)
    started = monotonic()
    await adapter.perform(Post(ts=_now(), community=GUILD, room=HELP, kind="digest", text="Weekly digest"))
    assert monotonic() - started >= 0.5
    assert [r.status for r in stand_in.requests_to("POST", MESSAGES)] == [429, 200]
    assert [m["content"] for m in _bot_messages(stand_in, HELP)] == ["Weekly digest"]


async def test_more_429s_than_discord_py_retries_still_deliver_once(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    stand_in.rate_limit_next("POST", MESSAGES, retry_after=0.05, times=6)
    await adapter.perform(Post(ts=_now(), community=GUILD, room=HELP, kind="digest", text="Still delivered"))
    assert [r.status for r in stand_in.requests_to("POST", MESSAGES)] == [429] * 6 + [200]
    assert len(_bot_messages(stand_in, HELP)) == 1


async def test_a_global_429_also_waits(start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    stand_in.rate_limit_next("POST", MESSAGES, retry_after=0.3, is_global=True)
    await adapter.perform(Post(ts=_now(), community=GUILD, room=HELP, kind="digest", text="After global limit"))
    assert [r.status for r in stand_in.requests_to("POST", MESSAGES)] == [429, 200]


async def test_a_retried_server_error_does_not_duplicate_the_message(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    stand_in.fail_next("POST", MESSAGES, 502)
    await adapter.perform(Post(ts=_now(), community=GUILD, room=HELP, kind="digest", text="Once", key="digest:1"))
    first, second = stand_in.requests_to("POST", MESSAGES)
    assert (first.status, second.status) == (502, 200)
    assert first.body["nonce"] == second.body["nonce"] and second.body["enforce_nonce"] is True


async def test_react_dm_delete_and_timeout_reach_their_routes(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    question = stand_in.message(HELP, ALICE, "Is there a way to export my data?")
    spam = stand_in.message(HELP, BOB, "free nitro here")
    await adapter.perform(React(ts=_now(), community=GUILD, room=HELP, kind="command", reply_to=question["id"],
                                text="✅"))
    await adapter.perform(Dm(ts=_now(), community=GUILD, room=None, to=ALICE, kind="nudge", level=3,
                             text="Your question is still open; adding details often helps."))
    await adapter.perform(DeleteMessage(ts=_now(), community=GUILD, room=HELP, kind="guard", reason="flood",
                                        reply_to=spam["id"]))
    await adapter.perform(Timeout(ts=_now(), community=GUILD, room=HELP, kind="guard", reason="flood", to=BOB,
                                  minutes=25))

    assert stand_in.requests_to("PUT", rf"/channels/{HELP}/messages/{question['id']}/reactions/✅/@me")
    [dm_channel] = stand_in.requests_to("POST", r"/users/@me/channels")
    assert dm_channel.body == {"recipient_id": int(ALICE)}
    [dm] = [r for r in stand_in.requests_to("POST", MESSAGES) if r.path != f"/channels/{HELP}/messages"]
    assert dm.body["allowed_mentions"] == {"parse": [], "users": []}
    assert stand_in.requests_to("DELETE", rf"/channels/{HELP}/messages/{spam['id']}")
    [patch] = stand_in.requests_to("PATCH", rf"/guilds/{GUILD}/members/{BOB}")
    until = datetime.fromisoformat(patch.body["communication_disabled_until"])
    assert timedelta(minutes=24) < until - _now() <= timedelta(minutes=25)  # the length the guard decided


async def test_missing_permission_raises_so_the_caller_can_report(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    spam = stand_in.message(HELP, BOB, "spam")
    stand_in.fail_next("DELETE", rf"/channels/{HELP}/messages/\d+", 403, code=50013, message="Missing Permissions")
    with pytest.raises(UnsupportedAction, match="not permitted"):
        await adapter.perform(DeleteMessage(ts=_now(), community=GUILD, room=HELP, kind="guard", reason="flood",
                                            reply_to=spam["id"]))


async def test_already_sent_finds_lien_s_own_earlier_reply(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    question = stand_in.message(HELP, ALICE, "How do I reset my password?")
    nudge = Reply(ts=_now(), community=GUILD, room=HELP, kind="nudge", level=1, reply_to=question["id"],
                  text="Nobody answered yet: could someone help?")
    assert not await adapter.already_sent(nudge)
    await adapter.perform(nudge)
    assert await adapter.already_sent(nudge)
    level2 = Reply(ts=_now(), community=GUILD, room=HELP, kind="nudge", level=2, reply_to=question["id"],
                   text="Still open: pinging helpers")
    assert not await adapter.already_sent(level2)


async def test_already_sent_knows_reactions_and_deletions(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    question = stand_in.message(HELP, ALICE, "Why does the CLI hang?")
    react = React(ts=_now(), community=GUILD, room=HELP, kind="command", reply_to=question["id"], text="✅")
    assert not await adapter.already_sent(react)
    await adapter.perform(react)
    assert await adapter.already_sent(react)
    delete = DeleteMessage(ts=_now(), community=GUILD, room=HELP, kind="guard", reply_to=question["id"])
    assert not await adapter.already_sent(delete)
    await adapter.perform(delete)
    assert await adapter.already_sent(delete)


async def test_stop_ends_the_connection(start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    await adapter.stop()
    assert adapter.client.is_closed()
    await eventually(lambda: all(s.ws is None for s in stand_in._current.values()))


async def test_private_answer_to_a_slash_command_stays_in_the_interaction(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    runtime.respond = lambda e: [Dm(ts=_now(), community=GUILD, room=None, to=ALICE, kind="command",
                                    reply_to=e.id, text="Everything lien keeps about you: ...")]
    interaction = stand_in.interaction(HELP, ALICE, [{"name": "mydata", "type": 1, "options": []}])
    await stand_in.dispatch("INTERACTION_CREATE", interaction)
    [callback] = await stand_in.wait_for_requests("POST", rf"/interactions/{interaction['id']}/.*/callback")
    assert callback.body["type"] == 4 and callback.body["data"]["flags"] & EPHEMERAL_FLAG
    assert stand_in.requests_to("POST", r"/users/@me/channels") == []


async def test_long_reply_is_sent_in_parts_and_only_the_first_replies(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, _ = await start_adapter()
    question = stand_in.message(HELP, ALICE, "What are all the open questions?")
    text = "\n".join(f"- question {i:03d}: " + "details " * 6 for i in range(60))
    await adapter.perform(Reply(ts=_now(), community=GUILD, room=HELP, kind="command", reply_to=question["id"],
                                text=text, key="unanswered:1"))
    posts = stand_in.requests_to("POST", MESSAGES)
    assert len(posts) == 2 and all(len(p.body["content"]) <= 2000 for p in posts)
    assert "message_reference" in posts[0].body and "message_reference" not in posts[1].body
    assert posts[0].body["nonce"] != posts[1].body["nonce"]


async def test_question_links_open_the_channel_thread_or_forum_post_the_question_is_in(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, runtime = await start_adapter()
    in_thread = stand_in.message(THREAD, ALICE, "Does the webhook retry on 403 as well?")
    await stand_in.dispatch("MESSAGE_CREATE", in_thread)
    await runtime.wait_for(lambda e: isinstance(e, Message) and e.id == in_thread["id"])
    in_channel = stand_in.message(HELP, ALICE, "How do I rotate the signing keys?")
    support, forum_post = "1196379246428291081", "1477605819678851093"
    links = [question_link(HELP, in_thread["id"]), question_link(support, forum_post),
             question_link(HELP, in_channel["id"]), question_link(HELP, THREAD)]
    await adapter.perform(Reply(ts=_now(), community=GUILD, room=HELP, kind="command", reply_to=in_channel["id"],
                                text="\n".join(links)))
    [post] = stand_in.requests_to("POST", MESSAGES)
    base = f"https://discord.com/channels/{GUILD}"
    assert post.body["content"].split("\n") == [
        f"{base}/{THREAD}/{in_thread['id']}",  # seen in the thread
        f"{base}/{forum_post}/{forum_post}",  # a forum post's starter message lives in the post
        f"{base}/{HELP}/{in_channel['id']}",
        f"{base}/{HELP}/{THREAD}",  # a thread started from a message: that message stays in the channel
    ]
