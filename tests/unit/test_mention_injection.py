"""Member-controlled strings never turn into live mentions, whatever path lien renders them through.

Every string a member controls (display names, ids, command names and arguments) goes through `render.safe`, the
texts of `bot.render`, the outbound gate, the guard's reports and the whole engine. After the gate, the text may
mention nobody but the action's own `mentions`, and no group at all. The oracle below is conservative: it flags
Discord's @everyone/@here anywhere and in any case (Discord parses them without a word boundary), Matrix @room
likewise, any role mention, and any user mention not in `mentions`.
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot import render
from bot.actions import ACTION_TYPES, Action, Refuse
from bot.config import HARD_MAX_RECIPIENTS, Settings
from bot.events import Message
from bot.gate import OutboundGate
from bot.guard_rules import GuardSettings
from bot.guards import Guard
from tests.bot_driver import TestBot
from tests.fakes import FakeStore

T0 = datetime(2026, 3, 4, 10, 0, 0, 250000, tzinfo=UTC)

# Matrix's push rule matches @room as a whole word; Discord parses @everyone/@here anywhere (discord.js:
# /@(everyone|here)/), and case is ignored here to stay on the safe side.
_GROUP = re.compile(r"@(everyone|here)(?!\w)|@room(?!\w)", re.IGNORECASE)
_GLUED = re.compile(r"@(everyone|here)\w", re.IGNORECASE)
_ROLE = re.compile(r"<@&[0-9]+>")
_USER = re.compile(r"<@!?([^&>\s][^>\s]*)>")
# Bidi controls and zero-width characters the gate promises to remove.
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")

# Discord treats "@everyone1" or "@hereby" as live "@everyone"/"@here": the gate defuses those glued forms too,
# so `live` counts them by default (regression: the gate once required a word boundary after them).


def live(text: str, allowed: tuple[str, ...] = (), *, glued: bool = True) -> list[str]:
    """What in `text` could ping someone it should not: group pings, role mentions, users not in `allowed`."""
    found = [m.group(0) for m in _GROUP.finditer(text)]
    if glued:
        found += [m.group(0) for m in _GLUED.finditer(text)]
    found += ["role"] * len(_ROLE.findall(text))
    found += [m.group(0) for m in _USER.finditer(text) if m.group(1) not in allowed]
    return found


PIECES = [
    "@everyone", "@here", "@room", "@channel", "@Everyone", "@HERE", "@everyone1", "@hereby",
    "<@&123>", "<@999>", "<@!999>", "<@", "<@&", "<@!", "&", "123", ">", "<", "@", "!",
    "everyone", "here", "room", "\u202e", "\u202d", "\u2066", "\u2069", "\u200d", "\u200b", "\u200c", "\u2060",
    "\ufeff", "\u00ad", "＠", "＠everyone", "ｅｖｅｒｙｏｎｅ", "＜＠９９９＞", "`", "```", " ", "\n", "!lien",
    "e\u0301", "x", ":", "/", "#", ".", "<link:r/m1>", "<#42>", "@@", "\u0301",
]
hostile = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=10).map("".join),
    st.text(max_size=40),
)
KNOWN_TRICKS = [
    "@everyone", "@here", "@room", "<@&123>", "<@999>", "<@!999>", "\u202e@everyone", "@\u200beveryone",
    "<@\u200d&123>", "<\u200b@999>", "＠everyone", "<@&123\u200b>", "@\u00adhere", "@here: x", "@room!",
]


def _keys() -> Iterator[tuple[str, tuple[str, ...]]]:
    for key, forms in render._TEXTS.items():
        names = {f for form in forms.values() for _, f, _, _ in string.Formatter().parse(form) if f}
        yield key, tuple(sorted(names))


KEYS = list(_keys())


def test_the_oracle_sees_what_it_must() -> None:
    assert live("hi @everyone") and live("x@here") and live("<@&1>") and live("<@5>") and live("@Room")
    assert live("@hereby", glued=True) and not live("@hereby", glued=False)
    assert not live("<@5>", ("5",)) and not live("＠everyone") and not live("<＠5>") and not live("hello")


@pytest.mark.parametrize("text", ["@everyone1 look", "@hereby", "@everyone_x"])
def test_gate_defuses_mass_mentions_glued_to_a_word(text: str) -> None:
    out = OutboundGate(3).check(ACTION_TYPES["post"](ts=T0, community="c", room="r", kind="k", text=text))
    assert live(out.text, glued=True) == []


# -- render.safe and every text ----------------------------------------------------------------------------------


@given(hostile)
def test_safe_yields_no_mention_and_no_hidden_character(value: str) -> None:
    out = render.safe(value)
    assert live(out) == []
    assert not _HIDDEN.search(out)
    assert len(out) <= 200


@pytest.mark.parametrize("trick", KNOWN_TRICKS)
def test_safe_defuses_known_tricks(trick: str) -> None:
    assert live(render.safe(f"a {trick} b")) == []


@given(hostile, st.sampled_from(["en", "fr"]))
def test_every_text_with_member_values_leaves_the_gate_without_mentions(value: str, lang: str) -> None:
    safe = render.safe(value)
    gate = OutboundGate(3)
    for key, names in KEYS:
        text = render.text(key, lang, **{n: safe for n in names})
        action = gate.check(ACTION_TYPES["reply"](ts=T0, community="c", room="r", kind="command", text=text))
        assert live(action.text) == [], key
        assert not _HIDDEN.search(action.text), key


# -- the gate on every action type -------------------------------------------------------------------------------

ids = st.one_of(st.sampled_from(["999", "5", "everyone", "&123", "here", "@room"]), st.text(max_size=6))


@given(st.sampled_from(sorted(ACTION_TYPES)), hostile, st.lists(ids, max_size=8), st.integers(1, 5))
def test_gate_lets_through_only_the_actions_own_mentions(name: str, text: str, mentions: list[str],
                                                         bound: int) -> None:
    gate = OutboundGate(bound)
    out = gate.check(ACTION_TYPES[name](ts=T0, community="c", room="r", kind="nudge", text=text,
                                        mentions=tuple(mentions)))
    wanted = tuple(dict.fromkeys(mentions))
    if len(wanted) > bound:
        assert isinstance(out, Refuse) and out.reason == "mass_mention" and out.mentions == ()
    else:
        assert out.name == name and out.mentions == wanted
    assert len(out.mentions) <= min(bound, HARD_MAX_RECIPIENTS)
    assert live(out.text, out.mentions) == []
    assert not _HIDDEN.search(out.text)


@pytest.mark.parametrize("trick", KNOWN_TRICKS)
@pytest.mark.parametrize("name", sorted(ACTION_TYPES))
def test_gate_defuses_known_tricks_on_every_action_type(name: str, trick: str) -> None:
    out = OutboundGate(3).check(ACTION_TYPES[name](ts=T0, community="c", room="r", kind="k", text=f"hi {trick}!"))
    assert live(out.text) == []


# -- the guard's reports -----------------------------------------------------------------------------------------


class _View:
    guard = GuardSettings()
    language = "en"
    moderators_room = "mods"


platform_ids = st.one_of(st.sampled_from(["@everyone", "<@&1>", "@room:x.org", "r\u202e1"]), st.text(max_size=8))


@given(hostile, hostile, platform_ids, platform_ids)
def test_guard_reports_name_members_without_mentioning_them(name: str, author: str, room: str, mid: str) -> None:
    guard = Guard(lambda c, r: _View())
    m = Message("c", room or "r", mid or "m", T0, author or "a", "@everyone look", author_name=name)
    actions = [OutboundGate(3).check(a) for a in guard.on_message(m, now=T0)]
    assert actions, "the group ping must be reported"
    for a in actions:
        assert live(a.text, a.mentions) == []
        assert not _HIDDEN.search(a.text)


# -- the whole engine, through the console driver ----------------------------------------------------------------


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


def _one_line(value: str) -> str:
    return " ".join(value.split()) or "x"


async def _drive(lines: list[str]) -> list[Action]:
    bot = await TestBot(FakeStore()).start()
    for line in lines:
        await bot.driver.line(line)
    return bot.sent


COMMANDS = ["", "why", "helper on", "unanswered", "dm-all", "solved", "not-a-question", "dms", "config show"]


@given(hostile, hostile, st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=3))
@example("@everyone", "<@&123>", ["", "why", "helper on"])
@example("\u202e@here", "<@999>", ["unanswered", "dm-all", "solved"])
@example("＠room", "@room", ["not-a-question", "dms", "config show"])
def test_commands_with_hostile_input_mention_nobody(runner: asyncio.Runner, name: str, arg: str,
                                                    commands: list[str]) -> None:
    who = _one_line(name).replace("/", "_")
    if who in Settings().lien.self_ids:
        who = f"member {who}"  # lien ignores its own messages: the hostile member must be someone else
    arg = _one_line(arg)
    # An empty command puts `arg` in the command's name, which an unknown-command reply echoes back.
    sent = runner.run(_drive([f"/as {who}", *(f"!lien {c} {arg}".replace("  ", " ") for c in commands)]))
    assert len(sent) >= len(commands), "lien answers every command"
    for a in sent:
        assert live(a.text, a.mentions) == [], a
        assert not _HIDDEN.search(a.text)
        assert len(a.mentions) <= HARD_MAX_RECIPIENTS
