"""Matrix translation, fed from event payloads recorded from Synapse 1.163 (tests/data/matrix/).

The payloads were produced by real clients against a throwaway Synapse (room version 12) and captured from the
bot account's /sync, so server-side fields (unsigned, prev_content, redacts at top level) are as a homeserver
sends them. Each case names the Matrix quirk it pins.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.matrix_adapter import backoff_delay
from adapters.matrix_events import (
    HTML_FORMAT,
    KEY_FIELD,
    creators_of,
    event_type,
    invite_allowed,
    inviter_of,
    is_admin,
    pill_mentions,
    strip_reply_fallback,
    to_content,
    to_event,
)
from bot.actions import DeleteMessage, Dm, Post, React, Refuse, Reply, Report, Timeout
from bot.errors import UnsupportedAction
from bot.events import Command, Delete, Edit, MemberJoin, MemberLeave, Message, Reaction

DATA = Path(__file__).resolve().parents[1] / "data" / "matrix"
ROOM = "!2OtxvStijjrRUebSYbqxCbWG04hi_DtYJzxhQYJymwc"
LIEN = "@lien:localhost"
ALICE, BOB, CAROL, HELPERBOT = "@alice:localhost", "@bob:localhost", "@carol:localhost", "@helperbot:localhost"
QUESTION = "$lQ5nxERMgM01mpFhLBFMJmkNihGZnIQ5yKKZBkRYWDE"
THREAD_ROOT = "$mPNspweb2hA5ucD_jClYNQwLiRXNqjiyPRwgAGJyBzU"
THREAD_FIRST = "$EA6J-mwSZLyzWwaWeh8_xJK-kuvcnyIR4WWLhng3wOQ"
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def translate(name: str, **overrides: Any) -> Any:
    case = load(name)
    options: dict[str, Any] = {
        "own_user_id": LIEN, "community": "localhost", "bot_ids": (HELPERBOT,),
        "power_levels": load("power_levels")["event"]["content"],
        "creators": creators_of(load("room_create_v12")["event"]),
    }
    return to_event(case["room_id"], case["event"], **(options | overrides))


# (file, expected type, expected fields, why)
CASES: list[tuple[str, type | None, dict[str, Any], str]] = [
    ("message_question", Message, {"author": ALICE, "text": "How do I configure the bridge for two rooms?",
                                   "reply_to": None, "thread": None, "mentions": (), "is_bot": False,
                                   "platform": "matrix"}, "plain m.text"),
    ("reply_with_fallback", Message, {"reply_to": QUESTION, "text": "Use one [[rooms]] block per room.",
                                      "mentions": (ALICE,)}, "quoted fallback stripped, reply kept"),
    ("thread_root", Message, {"thread": None, "reply_to": None}, "a thread root is not in a thread itself"),
    ("thread_message_falling_back", Message, {"thread": THREAD_ROOT, "reply_to": None},
     "is_falling_back: the in_reply_to is not a real reply"),
    ("thread_reply", Message, {"thread": THREAD_ROOT, "reply_to": THREAD_FIRST, "mentions": (BOB,)},
     "a real reply inside a thread"),
    ("edit", Edit, {"id": QUESTION, "text": "How do I configure the bridge for three rooms?"},
     "m.replace carries the new text in m.new_content, not the '* ' body"),
    ("reaction", Reaction, {"message": QUESTION, "author": BOB, "emoji": "👍️"}, "m.annotation key is the emoji"),
    ("redaction", Delete, {"id": "$vRNa49v4UUsBG4DRqFfZPMpjhox24G_75asQUJ31M6A"}, "redaction -> delete"),
    ("redacted_message", None, {}, "an already-redacted message has no content: nothing to track"),
    ("legacy_pill_mentions", Message, {"mentions": (BOB, CAROL)},
     "pills without m.mentions, one of them percent-encoded"),
    ("intentional_mentions", Message, {"mentions": (BOB, CAROL)}, "m.mentions.user_ids, deduplicated with pills"),
    ("notice_from_other_bot", Message, {"author": HELPERBOT, "is_bot": True}, "configured bot id"),
    ("own_message", Message, {"author": LIEN, "is_bot": True, "text": "!lien help shows the commands"},
     "lien's own text starting with the prefix is never a command"),
    ("command_from_moderator", Command, {"author": BOB, "name": "unanswered",
                                         "args": ("--room", "general help", "7"), "is_admin": True},
     "shell-like split; power level 50 = admin"),
    ("command_from_member", Command, {"author": CAROL, "name": "config", "args": ("nudges", "off"),
                                      "is_admin": False}, "power level 0 is not admin"),
    ("emote", Message, {"author": CAROL, "text": "waves"}, "m.emote is a message"),
    ("image_reply", Message, {"text": "", "reply_to": QUESTION}, "a screenshot answering a question counts"),
    ("encrypted", None, {}, "lien has no keys: encrypted events are skipped"),
    ("member_join", MemberJoin, {"author": CAROL, "community": "localhost"}, "invite -> join"),
    ("member_leave", MemberLeave, {"author": CAROL}, "join -> leave by themselves"),
    ("member_kick", None, {}, "members events of configured bots are ignored (helperbot was kicked)"),
    ("member_displayname_change", None, {}, "join -> join is a profile change, not a join"),
    ("power_levels", None, {}, "state changes are not core events"),
    ("room_create_v12", None, {}, "state changes are not core events"),
]


@pytest.mark.parametrize(("name", "kind", "fields", "why"), CASES, ids=[c[0] for c in CASES])
def test_recorded_event_translates_to_the_expected_core_event(
        name: str, kind: type | None, fields: dict[str, Any], why: str) -> None:
    event = translate(name)
    if kind is None:
        assert event is None, why
        return
    assert isinstance(event, kind), why
    case = load(name)["event"]
    assert event.ts == datetime.fromtimestamp(case["origin_server_ts"] / 1000, UTC)
    if hasattr(event, "room"):
        assert event.room == ROOM
    for field, value in fields.items():
        assert getattr(event, field) == value, f"{field}: {why}"


def test_kick_of_a_member_is_a_leave_of_the_kicked_member_not_the_kicker() -> None:
    event = translate("member_kick", bot_ids=())
    assert isinstance(event, MemberLeave)
    assert event.author == HELPERBOT


def test_events_older_than_the_join_are_backlog() -> None:
    ts = load("message_question")["event"]["origin_server_ts"]
    assert translate("message_question", joined_at_ts=ts + 1) is None
    assert translate("message_question", joined_at_ts=ts) is not None


def test_room_creator_is_admin_in_room_v12_without_being_in_power_levels() -> None:
    creators = creators_of(load("room_create_v12")["event"])
    levels = load("power_levels")["event"]["content"]
    assert creators == {ALICE}
    assert ALICE not in levels["users"]
    assert is_admin(ALICE, levels, creators)


@pytest.mark.parametrize(("levels", "admin"), [
    ({"users": {BOB: 50}, "state_default": 50}, True),
    ({"users": {BOB: 49}, "state_default": 50}, False),
    ({"users": {BOB: 50}, "state_default": 75}, False),  # the room asks more than 50 for state changes
    ({"users": {BOB: 10}, "state_default": 0}, False),  # never below 50, whatever state_default says
    ({"users_default": 50}, True),
    (None, False),
], ids=["moderator", "below-50", "state-default-75", "floor-50", "users-default", "no-power-levels"])
def test_admin_is_power_level_at_least_max_of_state_default_and_50(levels: dict | None, admin: bool) -> None:
    assert is_admin(BOB, levels) is admin


def test_creators_of_older_room_versions_have_no_special_power() -> None:
    event = {"type": "m.room.create", "sender": ALICE, "content": {"room_version": "10"}}
    assert creators_of(event) == frozenset()
    v12 = {"type": "m.room.create", "sender": ALICE, "content": {"room_version": "12",
                                                                 "additional_creators": [BOB]}}
    assert creators_of(v12) == {ALICE, BOB}


def test_command_in_a_dm_is_marked_and_bare_prefix_gives_an_empty_name() -> None:
    case = load("command_from_member")
    event = dict(case["event"], content={"msgtype": "m.text", "body": "!lien"})
    got = to_event(ROOM, event, own_user_id=LIEN, community="localhost", is_dm=True)
    assert isinstance(got, Command) and (got.name, got.args, got.is_dm) == ("", (), True)
    word = dict(case["event"], content={"msgtype": "m.text", "body": "!lienzzz is not a command"})
    assert isinstance(to_event(ROOM, word, own_user_id=LIEN, community="localhost"), Message)


def test_custom_prefix_and_unbalanced_quotes_still_parse() -> None:
    event = dict(load("command_from_member")["event"], content={"msgtype": "m.text", "body": '?l ask "oops'})
    got = to_event(ROOM, event, own_user_id=LIEN, community="localhost", command_prefix="?l")
    assert isinstance(got, Command) and (got.name, got.args) == ("ask", ('"oops',))


def test_nio_event_objects_are_read_through_their_source() -> None:
    class NioLike:
        source = load("reaction")["event"]

    assert isinstance(to_event(ROOM, NioLike(), own_user_id=LIEN, community="localhost"), Reaction)


@pytest.mark.parametrize(("body", "text"), [
    ("> <@alice:localhost> question\n\nanswer", "answer"),
    ("> <@alice:localhost> line one\n> line two\n\nanswer\nmore", "answer\nmore"),
    ("> * <@alice:localhost> waves\n\nhi", "hi"),
    ("> a quote I wrote myself\n\nmy point", "> a quote I wrote myself\n\nmy point"),
], ids=["one-line", "multi-line", "emote-fallback", "own-quote-kept"])
def test_reply_fallback_is_stripped_but_a_user_quote_is_kept(body: str, text: str) -> None:
    assert strip_reply_fallback(body) == text


def test_pills_inside_the_reply_block_are_not_mentions() -> None:
    html = ('<mx-reply><blockquote><a href="https://matrix.to/#/@alice:localhost">alice</a></blockquote>'
            '</mx-reply>thanks <a href="matrix:u/bob:localhost">bob</a>')
    assert pill_mentions(html) == [BOB]


def test_inviter_is_read_from_recorded_invite_state() -> None:
    state = load("invite_state")["invite_state"]
    assert inviter_of(state, LIEN) == BOB
    assert inviter_of(state, ALICE) is None


@pytest.mark.parametrize(("inviter", "allowed", "ok"), [
    (ALICE, {ALICE}, True),
    (BOB, {ALICE}, False),
    ("@eve:evil.example", {"localhost"}, False),
    (BOB, {"localhost"}, True),
    (None, {"localhost"}, False),
], ids=["user-listed", "user-not-listed", "other-server", "server-listed", "unknown-inviter"])
def test_invites_are_allowed_by_user_id_or_server_name(inviter: str | None, allowed: set[str], ok: bool) -> None:
    assert invite_allowed(inviter, allowed) is ok


# -- outbound ---------------------------------------------------------------------------------------------------


def test_reply_content_mentions_exactly_the_actions_mentions_as_pills() -> None:
    action = Reply(ts=NOW, community="localhost", room=ROOM, kind="nudge", reply_to=QUESTION,
                   mentions=(BOB, CAROL), text=f"{BOB} could you help?", key="q:localhost:1:2")
    content = to_content(action, reply_event=load("message_question")["event"])
    assert content["m.mentions"] == {"user_ids": [BOB, CAROL]}
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": QUESTION}}
    assert content["format"] == HTML_FORMAT
    assert content["formatted_body"].count('href="https://matrix.to/#/') == 2
    assert content["body"] == f"{CAROL}: {BOB} could you help?"  # a mention missing from the text goes first
    assert content[KEY_FIELD] == "q:localhost:1:2"
    assert content["msgtype"] == "m.text"  # m.notice would silence the mentions (push rule suppress_notices)


@pytest.mark.parametrize("text", ["@room please help", "hey @ROOM!", "mail @room.", "x @room"],
                         ids=["start", "upper", "punctuation", "end"])
def test_room_pings_in_the_text_are_neutralised(text: str) -> None:
    content = to_content(Post(ts=NOW, community="c", room=ROOM, kind="digest", text=text))
    assert "@room" not in content["body"].lower()
    assert "@room" not in content["formatted_body"].lower()
    assert content["m.mentions"] == {"user_ids": []}
    assert "room" not in content["m.mentions"]


def test_reply_to_a_thread_message_goes_into_that_thread() -> None:
    action = Reply(ts=NOW, community="c", room=ROOM, kind="nudge", reply_to=THREAD_FIRST, text="still open")
    content = to_content(action, reply_event=load("thread_message_falling_back")["event"])
    assert content["m.relates_to"] == {"rel_type": "m.thread", "event_id": THREAD_ROOT, "is_falling_back": False,
                                       "m.in_reply_to": {"event_id": THREAD_FIRST}}


def test_post_into_a_thread_without_a_reply_uses_the_thread_fallback() -> None:
    action = Post(ts=NOW, community="c", room=ROOM, kind="digest", thread=THREAD_ROOT, text="summary")
    assert to_content(action)["m.relates_to"] == {"rel_type": "m.thread", "event_id": THREAD_ROOT,
                                                  "is_falling_back": True,
                                                  "m.in_reply_to": {"event_id": THREAD_ROOT}}


def test_reports_and_dms_never_carry_a_reply_relation_to_another_room() -> None:
    for action in (Report(ts=NOW, community="c", room="!mods:localhost", kind="guard", reply_to=QUESTION, text="x"),
                   Dm(ts=NOW, community="c", room=None, kind="nudge", to=ALICE, reply_to=QUESTION, text="tip")):
        assert "m.relates_to" not in to_content(action)


def test_refusal_replies_to_the_command() -> None:
    action = Refuse(ts=NOW, community="c", room=ROOM, kind="command", reply_to=QUESTION, text="no",
                    reason="permission")
    assert to_content(action)["m.relates_to"] == {"m.in_reply_to": {"event_id": QUESTION}}


def test_reaction_is_an_annotation() -> None:
    action = React(ts=NOW, community="c", room=ROOM, kind="ack", reply_to=QUESTION, text="✅", key="k")
    assert event_type(action) == "m.reaction"
    assert to_content(action) == {"m.relates_to": {"rel_type": "m.annotation", "event_id": QUESTION, "key": "✅"},
                                  KEY_FIELD: "k"}


def test_html_in_the_text_is_escaped_and_ids_inside_longer_ids_do_not_split() -> None:
    action = Post(ts=NOW, community="c", room=ROOM, kind="x", mentions=("@al:x", "@alice:x"),
                  text="<b>hi</b> @alice:x and @al:x\nbye")
    html = to_content(action)["formatted_body"]
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<br>" in html
    assert '<a href="https://matrix.to/#/@alice:x">@alice:x</a>' in html
    assert '<a href="https://matrix.to/#/@al:x">@al:x</a>' in html


def test_deletes_and_timeouts_are_not_content() -> None:
    for action in (DeleteMessage(ts=NOW, community="c", room=ROOM, kind="guard", reply_to=QUESTION),
                   Timeout(ts=NOW, community="c", room=ROOM, kind="guard", to=BOB)):
        with pytest.raises(UnsupportedAction):
            to_content(action)


def test_content_round_trips_into_the_same_mentions_and_reply() -> None:
    action = Reply(ts=NOW, community="c", room=ROOM, kind="nudge", reply_to=QUESTION, mentions=(BOB,),
                   text=f"{BOB}, any idea?")
    raw = {"type": "m.room.message", "sender": ALICE, "event_id": "$new", "origin_server_ts": 1,
           "content": to_content(action)}
    got = to_event(ROOM, raw, own_user_id=LIEN, community="c")
    assert isinstance(got, Message)
    assert (got.mentions, got.reply_to, got.text) == ((BOB,), QUESTION, f"{BOB}, any idea?")


@pytest.mark.parametrize(("failures", "low", "high"), [(0, 0.5, 1.0), (3, 4.0, 8.0), (10, 150.0, 300.0),
                                                       (1000, 150.0, 300.0)],
                         ids=["first", "fourth", "capped", "huge-count"])
def test_reconnect_backoff_is_capped_exponential_with_jitter(failures: int, low: float, high: float) -> None:
    for jitter in (0.0, 0.5, 1.0):
        delay = backoff_delay(failures, initial=1.0, cap=300.0, rng=lambda j=jitter: j)
        assert low <= delay <= high
    assert backoff_delay(failures, initial=1.0, cap=300.0, rng=lambda: 0.0) < backoff_delay(
        failures, initial=1.0, cap=300.0, rng=lambda: 1.0)


# -- lien's neutral tokens ---------------------------------------------------------------------------------------


def test_mention_tokens_become_pills_and_m_mentions_lists_exactly_the_actions_mentions() -> None:
    # The level-2 nudge text as bot/render.py writes it: each helper named twice, as `<@ID>`.
    text = f"<@{BOB}> <@{CAROL}>: you may be able to help (<@{BOB}> you helped before; <@{CAROL}> you help often)."
    action = Reply(ts=NOW, community="localhost", room=ROOM, kind="nudge", level=2, reply_to=QUESTION,
                   mentions=(BOB, CAROL), text=text)
    content = to_content(action)
    assert content["m.mentions"] == {"user_ids": [BOB, CAROL]}
    assert content["body"] == (f"{BOB} {CAROL}: you may be able to help ({BOB} you helped before; "
                               f"{CAROL} you help often).")
    assert content["formatted_body"].count(f'<a href="https://matrix.to/#/{BOB}">{BOB}</a>') == 2
    assert content["formatted_body"].count(f'<a href="https://matrix.to/#/{CAROL}">{CAROL}</a>') == 2
    assert "&lt;@" not in content["formatted_body"]


@pytest.mark.parametrize("token", [f"<@{ALICE}>", f"<\uff20{ALICE}>"], ids=["raw-token", "gate-neutralised"])
def test_mention_token_of_someone_not_mentioned_stays_inert_text(token: str) -> None:
    content = to_content(Post(ts=NOW, community="c", room=ROOM, kind="x", mentions=(BOB,),
                              text=f"asked by {token}, {BOB} may know"))
    assert content["m.mentions"] == {"user_ids": [BOB]}
    assert f"matrix.to/#/{ALICE}" not in content["formatted_body"]
    assert content["formatted_body"].count("<a href=") == 1


def test_question_link_token_becomes_a_matrix_to_permalink() -> None:
    action = Reply(ts=NOW, community="c", room=ROOM, kind="command", reply_to=QUESTION,
                   text=f"Oldest open questions:\n- <link:{ROOM}/{QUESTION}> (5 min)")
    content = to_content(action)
    url = f"https://matrix.to/#/{ROOM}/{QUESTION}"
    assert content["body"] == f"Oldest open questions:\n- {url} (5 min)"
    assert f'<a href="{url}">{url}</a>' in content["formatted_body"]
    assert content["formatted_body"].startswith("Oldest open questions:<br>- ")
    assert content["m.mentions"] == {"user_ids": []}


def test_link_to_an_old_event_id_with_a_slash_is_percent_encoded() -> None:
    content = to_content(Post(ts=NOW, community="c", room="!old:example.org", kind="x",
                              text="see <link:!old:example.org/$ab/c+d:example.org>"))
    assert content["body"] == "see https://matrix.to/#/!old:example.org/$ab%2Fc+d:example.org"
