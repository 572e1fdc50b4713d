"""Translation of recorded Discord gateway payloads (tests/data/discord) into lien events, and of actions back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.discord_events import (
    DM_COMMUNITY,
    StaticDirectory,
    TranslationContext,
    compute_guild_permissions,
    neutralise,
    parse_prefixed,
    snowflake_time,
    to_events,
    to_send_chunks,
    to_send_kwargs,
)
from bot.actions import Dm, Post, React, Refuse, Reply
from bot.errors import UnsupportedAction
from bot.events import Command, Delete, Edit, Event, MemberJoin, MemberLeave, Message, Reaction

DATA = Path(__file__).resolve().parents[1] / "data" / "discord"
GUILD = "1196378239795331073"
LIEN = "1378523440742531079"
ALICE, BOB, MOD, CAROL = "838203133132931083", "673679042150531084", "609174002073731085", "1477092940185731088"
OWNER = "419645148364931086"
HELP, GENERAL, SUPPORT_FORUM, NEWS = (
    "1196378743111811078", "1196378994770051080", "1196379246428291081", "1196380001403011082")
THREAD, FORUM_POST, NEW_THREAD = "1476941945241731092", "1477605819678851093", "1477613872742531094"
ROLE_MOD, ROLE_HELPERS = "1196379498086531074", "1196379749744771075"
DM_CHANNEL = "1389395076710531096"
RECEIVED = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def _frame(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _id(name: str) -> str:
    return str(_frame(name)["d"]["id"])


def _ts(minute: int) -> datetime:
    return datetime(2026, 3, 1, 10, minute, tzinfo=UTC)


def _directory() -> StaticDirectory:
    directory = StaticDirectory()
    guild = _frame("guild_create")
    directory.observe(guild["t"], guild["d"])
    return directory


def _translate(name: str, *, ctx: TranslationContext | None = None,
               directory: StaticDirectory | None = None) -> list[Event]:
    frame = _frame(name)
    return to_events(frame["t"], frame["d"], ctx=ctx or TranslationContext(self_id=LIEN),
                     directory=directory or _directory(), received_at=RECEIVED)


def _msg(name: str, **kw: Any) -> Message:
    fields: dict[str, Any] = {"community": GUILD, "platform": "discord", "id": _id(name)}
    fields.update(kw)
    return Message(**fields)


CASES: list[tuple[str, list[Event]]] = [
    ("message_create_question", [_msg(
        "message_create_question", room=HELP, ts=_ts(0), author=ALICE, author_name="Alice",
        text="How do I configure the webhook? It keeps failing with a 403 error.")]),
    # The reply pings the asker, so Discord lists her in `mentions`; reply_to comes from message_reference.
    ("message_create_reply", [_msg(
        "message_create_reply", room=HELP, ts=_ts(12), author=BOB, author_name="Bob",
        text="You need the Manage Webhooks permission on that channel.",
        reply_to=_id("message_create_question"), mentions=(ALICE,))]),
    # Inside a thread the room is the parent channel, so the room's settings apply to its threads.
    ("message_create_in_thread", [_msg(
        "message_create_in_thread", room=HELP, thread=THREAD, ts=_ts(15), author=BOB, author_name="Bob",
        text="Did you regenerate the token after that?")]),
    # A forum post's starter message has the thread's id and lives in the thread.
    ("message_create_forum_starter", [_msg(
        "message_create_forum_starter", room=SUPPORT_FORUM, thread=FORUM_POST,
        ts=datetime(2026, 3, 1, 9, 58, tzinfo=UTC), author=ALICE, author_name="Alice",
        text="The app crashes on start since v2.3, logs attached. Anyone seen this?")]),
    # Regression guard: @everyone, @here and role pings are never counted as mentions, only users.
    ("message_create_mass_mentions", [_msg(
        "message_create_mass_mentions", room=GENERAL, ts=_ts(20), author=ALICE, author_name="Alice",
        text=f"@everyone @here <@&{ROLE_HELPERS}> <@{BOB}> can anyone help?", mentions=(BOB,))]),
    ("message_create_webhook", [_msg(
        "message_create_webhook", room=NEWS, ts=_ts(21), author="1081003003084931095", author_name="GitHub",
        text="[lien] New release v2.4", is_bot=True)]),
    ("message_create_other_bot", [_msg(
        "message_create_other_bot", room=GENERAL, ts=_ts(22), author="926625772339331087", author_name="carl-bot",
        text="Welcome Carol! Please read the rules.", is_bot=True)]),
    # A moderator's role has Manage Server: admin.
    ("message_create_command_admin", [Command(
        community=GUILD, room=HELP, id=_id("message_create_command_admin"), author=MOD, ts=_ts(23),
        name="pause", args=(), is_admin=True)]),
    ("message_create_command_member", [Command(
        community=GUILD, room=HELP, id=_id("message_create_command_member"), author=ALICE, ts=_ts(24),
        name="helper", args=("on",), is_admin=False)]),
    ("message_create_command_dm", [Command(
        community=DM_COMMUNITY, room=DM_CHANNEL, id=_id("message_create_command_dm"), author=ALICE, ts=_ts(25),
        name="forget-me", args=(), is_admin=False, is_dm=True)]),
    # lien keeps nothing of private conversations that are not commands.
    ("message_create_dm_chat", []),
    # "!lienbot" is another bot's prefix, not lien's.
    ("message_create_other_prefix", [_msg(
        "message_create_other_prefix", room=GENERAL, ts=_ts(26), author=ALICE, author_name="Alice",
        text="!lienbot is this a different bot?")]),
    ("message_create_member_join_notice", []),
    ("thread_create", []),
    ("message_update", [Edit(
        community=GUILD, room=HELP, id=_id("message_create_question"), ts=_ts(40),
        text="How do I configure the webhook? It fails with 403 (solved: missing permission)")]),
    ("message_update_embed_only", []),
    ("message_delete", [Delete(community=GUILD, room=HELP, id=_id("message_create_in_thread"), ts=RECEIVED)]),
    ("message_delete_bulk", [
        Delete(community=GUILD, room=GENERAL, id=_id("message_create_mass_mentions"), ts=RECEIVED),
        Delete(community=GUILD, room=GENERAL, id=_id("message_create_reply"), ts=RECEIVED)]),
    ("message_reaction_add", [Reaction(
        community=GUILD, room=HELP, message=_id("message_create_reply"), author=ALICE, emoji="✅", ts=RECEIVED)]),
    ("message_reaction_add_custom", [Reaction(
        community=GUILD, room=HELP, message=_id("message_create_in_thread"), author=ALICE,
        emoji="thanks:1236467397427331097", ts=RECEIVED)]),
    ("message_reaction_add_bot", []),
    ("guild_member_add", [MemberJoin(community=GUILD, author=CAROL, ts=datetime(2026, 3, 1, 10, 26, tzinfo=UTC))]),
    ("guild_member_add_bot", []),
    ("guild_member_remove", [MemberLeave(community=GUILD, author=CAROL, ts=RECEIVED)]),
    ("interaction_create_unanswered", [Command(
        community=GUILD, room=HELP, id=_id("interaction_create_unanswered"), author=ALICE,
        ts=snowflake_time(_id("interaction_create_unanswered")), name="unanswered", args=(), is_admin=False)]),
    ("interaction_create_helper_on", [Command(
        community=GUILD, room=HELP, id=_id("interaction_create_helper_on"), author=BOB,
        ts=snowflake_time(_id("interaction_create_helper_on")), name="helper", args=("on",), is_admin=False)]),
    # Subcommand groups flatten like the text form: "/lien config show" == "!lien config show".
    ("interaction_create_config_show", [Command(
        community=GUILD, room=HELP, id=_id("interaction_create_config_show"), author=MOD,
        ts=snowflake_time(_id("interaction_create_config_show")), name="config", args=("show",), is_admin=True)]),
    ("interaction_create_solved_in_thread", [Command(
        community=GUILD, room=HELP, id=_id("interaction_create_solved_in_thread"), author=ALICE,
        ts=snowflake_time(_id("interaction_create_solved_in_thread")), name="solved", args=(), is_admin=False)]),
    ("interaction_create_dm_mydata", [Command(
        community=DM_COMMUNITY, room=DM_CHANNEL, id=_id("interaction_create_dm_mydata"), author=ALICE,
        ts=snowflake_time(_id("interaction_create_dm_mydata")), name="mydata", args=(), is_admin=False,
        is_dm=True)]),
    ("interaction_create_other_app", []),
]


@pytest.mark.parametrize(("fixture", "expected"), CASES, ids=[c[0] for c in CASES])
def test_recorded_payload_translates_to_lien_events(fixture: str, expected: list[Event]) -> None:
    assert _translate(fixture) == expected


def test_every_recorded_payload_is_covered_by_a_case() -> None:
    covered = {c[0] for c in CASES} | {"guild_create", "message_create_in_new_thread"}
    assert {p.stem for p in DATA.glob("*.json")} == covered


def test_message_in_thread_created_later_maps_to_its_parent_room() -> None:
    directory = _directory()
    created = _frame("thread_create")
    directory.observe(created["t"], created["d"])
    [event] = _translate("message_create_in_new_thread", directory=directory)
    assert isinstance(event, Message)
    assert (event.room, event.thread) == (HELP, NEW_THREAD)


def test_message_in_unknown_channel_keeps_the_channel_as_room() -> None:
    [event] = _translate("message_create_in_new_thread")
    assert isinstance(event, Message)
    assert (event.room, event.thread) == (NEW_THREAD, None)


def test_own_messages_are_marked_bot_even_without_the_bot_flag() -> None:
    frame = _frame("message_create_question")
    data = dict(frame["d"], author=dict(frame["d"]["author"], id=LIEN))
    [event] = to_events("MESSAGE_CREATE", data, ctx=TranslationContext(self_id=LIEN), directory=_directory(),
                        received_at=RECEIVED)
    assert isinstance(event, Message) and event.is_bot


def test_configured_admin_role_makes_a_member_admin() -> None:
    ctx = TranslationContext(self_id=LIEN, admin_roles=frozenset({ROLE_HELPERS}))
    [event] = _translate("interaction_create_helper_on", ctx=ctx)
    assert isinstance(event, Command) and event.is_admin


def test_prefix_is_configurable_and_none_disables_text_commands() -> None:
    [custom] = _translate("message_create_command_member", ctx=TranslationContext(prefix="!help"))
    assert isinstance(custom, Message)
    [off] = _translate("message_create_command_admin", ctx=TranslationContext(prefix=None))
    assert isinstance(off, Message) and off.text == "!lien pause"


def test_history_message_without_guild_id_takes_the_given_guild() -> None:
    data = dict(_frame("message_create_question")["d"])
    del data["guild_id"], data["member"]
    [event] = to_events("MESSAGE_CREATE", data, ctx=TranslationContext(), directory=_directory(),
                        received_at=RECEIVED, guild_id=GUILD)
    assert isinstance(event, Message) and event.community == GUILD


@pytest.mark.parametrize(("user", "roles", "admin"), [
    (OWNER, [], True), (MOD, [ROLE_MOD], True), (BOB, [ROLE_HELPERS], False), (ALICE, [], False),
], ids=["owner", "manage-server-role", "helper-role", "plain-member"])
def test_guild_permissions_follow_owner_and_roles(user: str, roles: list[str], admin: bool) -> None:
    perms = _directory().guild_permissions(GUILD, user, roles)
    assert perms is not None and bool(perms & (1 << 5)) is admin


def test_administrator_bit_grants_every_permission() -> None:
    perms = compute_guild_permissions(owner_id=None, everyone=0, role_permissions={"r": 1 << 3}, user_id="u",
                                      role_ids=["r"])
    assert perms & (1 << 5)


@pytest.mark.parametrize(("text", "parsed"), [
    ("!lien", ("help", ())), ("!lien Unanswered", ("unanswered", ())), ("!lien dms off", ("dms", ("off",))),
    ("!lienx", None), ("hello !lien", None),
], ids=["bare", "case", "args", "longer-word", "not-at-start"])
def test_prefix_parsing(text: str, parsed: tuple[str, tuple[str, ...]] | None) -> None:
    assert parse_prefixed(text, "!lien") == parsed


# -- outbound ---------------------------------------------------------------------------------------------------

def _reply(**kw: Any) -> Reply:
    fields: dict[str, Any] = {"ts": RECEIVED, "community": GUILD, "room": HELP, "kind": "nudge",
                              "reply_to": "1477606322995331102", "text": "Still open: can someone help?"}
    fields.update(kw)
    return Reply(**fields)


def test_send_kwargs_allow_exactly_the_actions_mentions() -> None:
    kwargs = to_send_kwargs(_reply(mentions=(BOB, ALICE)))
    assert kwargs["allowed_mentions"].to_dict() == {"parse": [], "users": [int(BOB), int(ALICE)]}


def test_send_kwargs_without_mentions_allow_no_ping_at_all() -> None:
    kwargs = to_send_kwargs(Post(ts=RECEIVED, community=GUILD, room=HELP, kind="digest", text="Weekly digest"))
    assert kwargs["allowed_mentions"].to_dict() == {"parse": [], "users": []}
    assert "reference" not in kwargs


@pytest.mark.parametrize(("text", "expected"), [
    ("hey @everyone", "hey @\u200beveryone"),
    ("@here look", "@\u200bhere look"),
    (f"ping <@&{ROLE_HELPERS}>", f"ping <@\u200b&{ROLE_HELPERS}>"),
    (f"thanks <@{BOB}>", f"thanks <@{BOB}>"),
], ids=["everyone", "here", "role", "user-kept"])
def test_mass_mentions_are_neutralised_in_text(text: str, expected: str) -> None:
    assert neutralise(text) == expected
    assert to_send_kwargs(_reply(text=text))["content"] == expected


def test_reply_references_the_message_without_pinging_its_author() -> None:
    kwargs = to_send_kwargs(_reply(thread=THREAD))
    ref = kwargs["reference"].to_dict()
    assert (str(ref["message_id"]), str(ref["channel_id"])) == ("1477606322995331102", THREAD)
    assert ref["fail_if_not_exists"] is False
    assert kwargs["allowed_mentions"].replied_user is False


def test_interaction_reply_is_ephemeral_and_unreferenced() -> None:
    kwargs = to_send_kwargs(_reply(kind="command"), interaction=True)
    assert kwargs["ephemeral"] is True and "reference" not in kwargs


def test_refusal_replies_to_the_request() -> None:
    kwargs = to_send_kwargs(Refuse(ts=RECEIVED, community=GUILD, room=HELP, kind="command", reason="mass_dm",
                                   reply_to="1477612111134851108", text="lien does not send mass DMs."))
    assert kwargs["reference"].message_id == 1477612111134851108


def test_more_mentions_than_the_hard_maximum_are_refused() -> None:
    with pytest.raises(UnsupportedAction):
        to_send_kwargs(_reply(mentions=tuple(str(1000 + i) for i in range(6))))


def test_non_message_actions_have_no_send_kwargs() -> None:
    with pytest.raises(UnsupportedAction):
        to_send_kwargs(React(ts=RECEIVED, community=GUILD, room=HELP, kind="guard", reply_to="1", text="👀"))


def test_long_text_is_cut_to_discords_limit() -> None:
    content = to_send_kwargs(Dm(ts=RECEIVED, community=GUILD, room=None, to=ALICE, kind="nudge", text="x" * 2100))
    assert len(content["content"]) == 2000


def test_long_text_is_split_at_line_ends_and_only_the_first_part_replies() -> None:
    text = "\n".join(f"- line {i:04d} " + "y" * 40 for i in range(80))
    chunks = to_send_chunks(_reply(text=text))
    assert len(chunks) == 3 and all(len(c["content"]) <= 2000 for c in chunks)
    assert "\n".join(c["content"] for c in chunks) == text
    assert "reference" in chunks[0] and all("reference" not in c for c in chunks[1:])
