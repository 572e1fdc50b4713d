"""The real discord.py client against the stand-in: connection, inbound events, RESUME, catch-up, sharding."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import discord
import pytest

from adapters.discord_adapter import DiscordAdapter, DiscordSettings
from bot.actions import Post
from bot.clock import SystemClock
from bot.errors import UnsupportedAction
from bot.events import Command, Event, Message
from tests.e2e.discord.conftest import (
    ALICE,
    BOB,
    GENERAL,
    GUILD,
    HELP,
    LIEN,
    MOD,
    THREAD,
    ErrorWatch,
    Runtime,
    StartAdapter,
    eventually,
    frame,
)
from tests.e2e.discord.stand_in import DiscordStandIn

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

PRESENCES, MEMBERS, MESSAGE_CONTENT = 1 << 8, 1 << 1, 1 << 15


def _messages(runtime: Runtime, room: str = HELP) -> list[str]:
    return [e.id for e in runtime.events if isinstance(e, Message) and e.room == room and not e.is_bot]


async def test_member_message_reaches_on_event_as_a_lien_message(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    question = stand_in.message(HELP, ALICE, "How do I get the webhook to stop failing with 403?")
    await stand_in.dispatch("MESSAGE_CREATE", question)
    event = await runtime.wait_for(lambda e: isinstance(e, Message))
    assert event == Message(community=GUILD, room=HELP, id=question["id"], ts=event.ts, author=ALICE,
                            text="How do I get the webhook to stop failing with 403?", author_name="Alice",
                            platform="discord")


async def test_connection_identifies_with_lean_intents_and_heartbeats(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    await start_adapter()
    [identify] = stand_in.identify_payloads
    assert identify["intents"] & MESSAGE_CONTENT and identify["intents"] & MEMBERS
    assert not identify["intents"] & PRESENCES
    await stand_in.wait_for(lambda: stand_in.heartbeats >= 1)


async def test_members_intent_can_be_left_off(start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    await start_adapter(members_intent=False)
    assert not stand_in.identify_payloads[0]["intents"] & MEMBERS


async def test_thread_messages_and_admin_commands_use_the_clients_cache(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    await stand_in.dispatch("MESSAGE_CREATE", frame("message_create_in_thread")["d"])
    await stand_in.dispatch("MESSAGE_CREATE", frame("message_create_command_admin")["d"])
    await stand_in.dispatch("MESSAGE_CREATE", frame("message_create_command_member")["d"])
    in_thread = await runtime.wait_for(lambda e: isinstance(e, Message))
    assert isinstance(in_thread, Message) and (in_thread.room, in_thread.thread) == (HELP, THREAD)
    commands = await runtime.wait_count(lambda e: isinstance(e, Command), 2)
    assert [(c.author, c.name, c.is_admin) for c in commands if isinstance(c, Command)] == [
        (MOD, "pause", True), (ALICE, "helper", False)]


async def test_thread_created_after_start_maps_its_messages_to_the_parent_room(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    await stand_in.dispatch("THREAD_CREATE", frame("thread_create")["d"])
    await stand_in.dispatch("MESSAGE_CREATE", frame("message_create_in_new_thread")["d"])
    event = await runtime.wait_for(lambda e: isinstance(e, Message))
    assert isinstance(event, Message) and (event.room, event.thread) == (HELP, "1477613872742531094")


async def test_events_keep_gateway_order(start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    sent = []
    for i in range(30):
        message = stand_in.message(HELP, ALICE if i % 2 else BOB, f"message number {i}")
        sent.append(message["id"])
        await stand_in.dispatch("MESSAGE_CREATE", message)
    await runtime.wait_count(lambda e: isinstance(e, Message), 30)
    assert _messages(runtime) == sent


async def test_forced_disconnect_resumes_without_losing_or_duplicating_events(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    _, runtime = await start_adapter()
    before = [stand_in.message(HELP, ALICE, f"before the drop {i}") for i in range(2)]
    for message in before:
        await stand_in.dispatch("MESSAGE_CREATE", message)
    await runtime.wait_count(lambda e: isinstance(e, Message), 2)

    await stand_in.drop(code=4000)
    during = [stand_in.message(HELP, BOB, f"while disconnected {i}") for i in range(3)]
    for message in during:
        await stand_in.dispatch("MESSAGE_CREATE", message)  # buffered by the session, replayed on RESUME
    await stand_in.wait_for(lambda: stand_in.resumes == 1, within=15)
    after = stand_in.message(HELP, ALICE, "after the resume")
    await stand_in.dispatch("MESSAGE_CREATE", after)

    await runtime.wait_for(lambda e: isinstance(e, Message) and e.id == after["id"], within=15)
    assert _messages(runtime) == [m["id"] for m in [*before, *during, after]]
    assert stand_in.identifies == 1


async def test_refused_resume_identifies_again_and_catches_up_from_history(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    runtime = Runtime()
    # A long guild-ready wait leaves room for a live message to arrive before history is read back.
    _, runtime = await start_adapter(runtime=runtime, last_processed=runtime.last_processed(),
                                     guild_ready_timeout=0.5)
    seen = stand_in.message(HELP, ALICE, "a question lien saw live")
    await stand_in.dispatch("MESSAGE_CREATE", seen)
    await runtime.wait_for(lambda e: isinstance(e, Message))

    stand_in.refuse_resume = True
    await stand_in.drop(code=4000)
    missed = [stand_in.message(HELP, BOB, f"posted while lien was away {i}") for i in range(3)]
    for message in missed:
        await stand_in.dispatch("MESSAGE_CREATE", message)  # lost with the session: only history has them
    elsewhere = stand_in.message(GENERAL, BOB, "a room lien never saw: not read back")

    # discord.py waits 5 s (before_identify_hook) before identifying again.
    await stand_in.wait_for(lambda: stand_in.identifies == 2, within=20)
    live = stand_in.message(HELP, ALICE, "live again, before the history is read")
    await stand_in.dispatch("MESSAGE_CREATE", live)  # held until the missed messages are fed
    await runtime.wait_for(lambda e: isinstance(e, Message) and e.id == live["id"], within=10)

    assert _messages(runtime) == [m["id"] for m in [seen, *missed, live]]
    assert elsewhere["id"] not in [e.id for e in runtime.events if isinstance(e, Message)]
    assert stand_in.identifies == 2
    history = stand_in.requests_to("GET", rf"/channels/{HELP}/messages")
    assert history and history[0].query["after"] == seen["id"]


async def test_own_messages_echoed_by_the_gateway_are_marked_bot(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    from datetime import UTC, datetime

    from bot.actions import Post

    adapter, runtime = await start_adapter()
    await adapter.perform(Post(ts=datetime.now(UTC), community=GUILD, room=HELP, kind="digest", text="Digest"))
    event = await runtime.wait_for(lambda e: isinstance(e, Message))
    assert isinstance(event, Message) and event.author == LIEN and event.is_bot


async def test_sharded_client_owns_only_its_shards_guilds(error_watch: ErrorWatch) -> None:
    other = copy.deepcopy(frame("guild_create")["d"])
    other_id = "1196378239799525377"  # on shard 1 of 2; the recorded guild is on shard 0
    other["id"] = other_id
    for channel in [*other["channels"], *other["threads"]]:
        channel["id"] = str(int(channel["id"]) + 7)
        channel["guild_id"] = other_id
    async with DiscordStandIn(shard_count=2) as stand_in:
        stand_in.add_guild(copy.deepcopy(frame("guild_create")["d"]))
        stand_in.add_guild(other)
        from tests.e2e.discord.stand_in import route_discord_py_to

        with route_discord_py_to(stand_in):
            runtime = Runtime()
            adapter = DiscordAdapter(stand_in.token, clock=SystemClock(), guild_ready_timeout=0.05,
                                     settings=DiscordSettings(shard_count=2, shard_ids=(0,), command_sync="off"))
            runtime.adapter = adapter
            await adapter.start(runtime)
            try:
                assert isinstance(adapter.client, discord.AutoShardedClient)
                assert adapter.owned_guild_ids() == {GUILD}
                assert adapter.owns(GUILD) and not adapter.owns(other_id)
                assert [p["shard"] for p in stand_in.identify_payloads] == [[0, 2]]
                await stand_in.dispatch("MESSAGE_CREATE", stand_in.message(HELP, ALICE, "on shard zero"))
                event = await runtime.wait_for(lambda e: isinstance(e, Message))
                assert event.community == GUILD
                with pytest.raises(UnsupportedAction, match="another shard process"):
                    await adapter.perform(Post(ts=datetime.now(UTC), community=other_id,
                                               room=other["channels"][1]["id"], kind="nudge", text="not here"))
                assert stand_in.requests_to("POST", r"/channels/\d+/messages") == []
            finally:
                await adapter.stop()
            assert adapter.errors == []


async def test_wrong_token_makes_start_fail(stand_in: DiscordStandIn) -> None:
    adapter = DiscordAdapter("not-the-token", clock=SystemClock(), settings=DiscordSettings(command_sync="off"))
    with pytest.raises(discord.LoginFailure):
        await adapter.start(Runtime())
    await adapter.stop()


async def test_a_failing_handler_is_recorded_not_swallowed(
        start_adapter: StartAdapter, stand_in: DiscordStandIn, error_watch: ErrorWatch) -> None:
    runtime = Runtime()

    def explode(event: Event) -> list:
        raise RuntimeError("engine bug")

    runtime.respond = explode
    adapter, _ = await start_adapter(runtime=runtime)
    await stand_in.dispatch("MESSAGE_CREATE", stand_in.message(HELP, ALICE, "this will hit the bug"))
    second = stand_in.message(HELP, ALICE, "the worker survives it")
    await stand_in.dispatch("MESSAGE_CREATE", second)
    await runtime.wait_for(lambda e: isinstance(e, Message) and e.id == second["id"])
    await eventually(lambda: len(adapter.errors) == 2)
    assert "engine bug" in adapter.errors[0]
    assert len(error_watch.records) == 2
    adapter.errors.clear()  # seen and asserted here; the fixtures' own checks must not fail the test
    error_watch.records.clear()


async def test_catch_up_feeds_history_after_a_message_in_order(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    adapter, runtime = await start_adapter()
    first = stand_in.message(HELP, ALICE, "seen before the restart")
    later = [stand_in.message(HELP, BOB, f"posted while lien was down {i}") for i in range(3)]
    command = stand_in.message(HELP, ALICE, "!lien unanswered")  # stale by now: not replayed
    assert await adapter.catch_up([HELP], after_message_id=first["id"]) == 3
    await runtime.wait_count(lambda e: isinstance(e, Message), 3)
    assert _messages(runtime) == [m["id"] for m in later]
    assert command["id"] not in [getattr(e, "id", None) for e in runtime.events]


async def test_restart_reads_back_what_was_posted_while_lien_was_down_before_start_returns(
        start_adapter: StartAdapter, stand_in: DiscordStandIn) -> None:
    first, before = await start_adapter()
    seen = stand_in.message(HELP, ALICE, "seen before the restart")
    await stand_in.dispatch("MESSAGE_CREATE", seen)
    await before.wait_for(lambda e: isinstance(e, Message))
    await first.stop()

    missed = [stand_in.message(HELP, BOB, f"posted while lien was down {i}") for i in range(2)]
    after = Runtime()
    after.events.extend(before.events)  # what the message repository kept
    await start_adapter(runtime=after, last_processed=after.last_processed())
    # Already handled when start returns: timers started after it see the caught-up state.
    assert _messages(after) == [m["id"] for m in [seen, *missed]]
