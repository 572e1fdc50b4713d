"""lien's neutral text conventions rendered for Discord, and Discord message links read back into commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.discord_events import (
    DM_COMMUNITY,
    StaticDirectory,
    TranslationContext,
    interaction_to_command,
    message_ref,
    parse_prefixed,
    render_links,
    to_send_chunks,
)
from bot import render
from bot.actions import Reply

GUILD, HELP, THREAD = "1196378239795331073", "1196378743111811078", "1476941945241731092"
BOB, QUESTION = "673679042150531084", "1477606322995331102"
TS = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def _reply(text: str, **kw: Any) -> Reply:
    return Reply(ts=TS, community=GUILD, room=HELP, kind="command", reply_to="1477612111134851108", text=text, **kw)


def test_question_link_becomes_a_jump_link_into_the_guild() -> None:
    text = f"Oldest open questions:\n- {render.question_link(HELP, QUESTION)} (12 min)"
    [chunk] = to_send_chunks(_reply(text))
    assert chunk["content"] == (f"Oldest open questions:\n- https://discord.com/channels/{GUILD}/{HELP}/{QUESTION}"
                                " (12 min)")


def test_link_to_a_message_posted_in_a_thread_opens_the_thread() -> None:
    rendered = render_links(render.question_link(HELP, QUESTION), GUILD, {QUESTION: THREAD}.get)
    assert rendered == f"https://discord.com/channels/{GUILD}/{THREAD}/{QUESTION}"


def test_link_in_a_private_conversation_uses_discords_at_me_path() -> None:
    assert render_links("<link:1389395076710531096/42>", DM_COMMUNITY) == (
        "https://discord.com/channels/@me/1389395076710531096/42")


def test_member_mention_is_already_discord_syntax_and_pings_only_the_actions_mentions() -> None:
    [chunk] = to_send_chunks(_reply(f"{render.mention(BOB)}: you may be able to help", mentions=(BOB,)))
    assert chunk["content"] == f"<@{BOB}>: you may be able to help"
    assert chunk["allowed_mentions"].to_dict() == {"parse": [], "users": [int(BOB)]}


@pytest.mark.parametrize("text", ["<link:nope>", "<link:a/b/c>", "see <link: 1/2>", "https://example.org/1/2"],
                         ids=["no-slash", "three-parts", "space", "plain-url"])
def test_text_that_is_not_a_link_token_is_left_alone(text: str) -> None:
    assert render_links(text, GUILD) == text


@pytest.mark.parametrize("link", [
    f"https://discord.com/channels/{GUILD}/{HELP}/{QUESTION}",
    f"https://ptb.discord.com/channels/{GUILD}/{HELP}/{QUESTION}/",
    f"https://discordapp.com/channels/{GUILD}/{THREAD}/{QUESTION}",
    f"https://discord.com/channels/@me/1389395076710531096/{QUESTION}",
], ids=["plain", "ptb-trailing-slash", "old-domain", "private"])
def test_pasted_message_link_is_read_as_the_message_id(link: str) -> None:
    assert message_ref(link) == QUESTION
    assert parse_prefixed(f"!lien solved {link}", "!lien") == ("solved", (QUESTION,))


def test_values_that_are_not_message_links_are_kept() -> None:
    assert message_ref(QUESTION) == QUESTION
    assert message_ref(f"https://discord.com/channels/{GUILD}/{HELP}") == f"https://discord.com/channels/{GUILD}/{HELP}"


def test_slash_option_with_a_pasted_link_reaches_the_core_as_the_message_id() -> None:
    data = {
        "id": "1477612111134851108", "type": 2, "guild_id": GUILD, "channel_id": HELP,
        "data": {"name": "lien", "type": 1, "options": [{"name": "why", "type": 1, "options": [
            {"name": "message", "type": 3, "value": f"https://discord.com/channels/{GUILD}/{HELP}/{QUESTION}"}]}]},
        "member": {"user": {"id": BOB}, "roles": [], "permissions": "0"},
    }
    command = interaction_to_command(data, ctx=TranslationContext(), directory=StaticDirectory())
    assert command is not None and (command.name, command.args) == ("why", (QUESTION,))
