"""The guard's rules, one table per rule, driven through `Guard` in observe mode (reports name the rule that hit).

Regression note: the thresholds are the defaults of `GuardSettings`; a case that starts failing after a change of
defaults means the change punishes someone these tables say must be left alone (a fast typist, a moderator).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.actions import Action
from bot.events import MemberJoin, Message
from bot.guard_rules import (
    RULES,
    TS,
    Duplicate,
    Features,
    Flood,
    GuardContext,
    GuardSettings,
    Seen,
    features_of,
    resolution,
    seen,
)
from bot.guards import Guard

#: Millisecond stamps, as Discord and Matrix give them (minute stamps are a case of their own below).
T0 = datetime(2026, 3, 4, 10, 0, 0, 123000, tzinfo=UTC)


@dataclass(frozen=True)
class View:
    """The part of a room's settings the guard reads."""

    guard: GuardSettings = field(default_factory=GuardSettings)
    language: str = "en"
    moderators_room: str | None = "mods"


@dataclass(frozen=True)
class Say:
    """`author` posts `text` at T0 + `at` seconds."""

    at: float
    text: str = "hello there"
    author: str = "alice"
    room: str = "general"
    mentions: tuple[str, ...] = ()
    moderator: bool = False
    ts: datetime | None = None


@dataclass(frozen=True)
class Join:
    """`author` joins at T0 + `at` seconds."""

    at: float
    author: str = "alice"


class Harness:
    """One guard on a fixed view; records every action."""

    def __init__(self, settings: GuardSettings | None = None, *, language: str = "en",
                 moderators_room: str | None = "mods") -> None:
        self.view = View(settings or GuardSettings(), language, moderators_room)
        self.guard = Guard(lambda community, room: self.view)
        self.actions: list[Action] = []
        self._n = 0

    def say(self, at: float, text: str = "hello there", *, author: str = "alice", room: str = "general",
            mentions: tuple[str, ...] = (), moderator: bool = False, ts: datetime | None = None,
            name: str | None = None, now: datetime | None = None) -> list[Action]:
        self._n += 1
        when = ts or T0 + timedelta(seconds=at)
        m = Message("c1", room, f"m{self._n}", when, author, text, mentions=mentions, author_name=name)
        out = self.guard.on_message(m, is_moderator=moderator, now=now or when)
        self.actions += out
        return out

    def join(self, at: float, author: str) -> list[Action]:
        when = T0 + timedelta(seconds=at)
        out = self.guard.on_join(MemberJoin("c1", author, when), now=when)
        self.actions += out
        return out

    def run(self, script: list[Say | Join]) -> Harness:
        for step in script:
            if isinstance(step, Join):
                self.join(step.at, step.author)
            else:
                self.say(step.at, step.text, author=step.author, room=step.room, mentions=step.mentions,
                         moderator=step.moderator, ts=step.ts)
        return self

    def reasons(self) -> list[str]:
        return [a.reason or "" for a in self.actions if a.name == "report"]


def burst(n: int, every: float, text: str | None = None, **kw: object) -> list[Say | Join]:
    """`n` messages one every `every` seconds; different texts unless `text` is given."""
    return [Say(i * every, text if text is not None else f"line {i} of my story", **kw)  # type: ignore[arg-type]
            for i in range(n)]


def check(script: list[Say | Join], expected: list[str], settings: GuardSettings | None = None) -> None:
    assert Harness(settings).run(script).reasons() == expected


# -- flood ----------------------------------------------------------------------------------------------------------

MINUTE = datetime(2026, 3, 4, 10, 1, tzinfo=UTC)
SECOND = datetime(2026, 3, 4, 10, 1, 7, tzinfo=UTC)

FLOOD = [
    pytest.param(burst(7, 1.4), [], id="fast-typist-7-lines-in-10s-untouched"),
    pytest.param(burst(8, 1.5), [], id="fast-typist-8-lines-one-every-1.5s-untouched"),
    pytest.param(burst(30, 1.5), [], id="long-fast-conversation-one-line-every-1.5s-untouched"),
    pytest.param(burst(8, 1.2), ["flood"], id="8-lines-in-8.4s-is-a-flood"),
    pytest.param([Say(i * 0.5, f"line {i}", room=f"r{i % 3}") for i in range(8)], ["flood"],
                 id="flood-spread-over-rooms"),
    pytest.param([Say(i * 0.5, f"line {i}", author=("a" if i % 2 else "b")) for i in range(12)], [],
                 id="two-members-6-lines-each-untouched"),
    pytest.param(burst(8, 0.2, moderator=True), [], id="moderator-cleanup-exempt"),
    pytest.param(burst(16, 0.2), ["flood", "flood"], id="second-hit-needs-a-fresh-count"),
    pytest.param([Say(0, f"line {i}", ts=MINUTE) for i in range(20)], [], id="minute-stamps-cannot-show-a-flood"),
    pytest.param([Say(0, f"line {i}", ts=SECOND) for i in range(8)], ["flood"], id="8-lines-in-one-second-stamp"),
]


@pytest.mark.parametrize(("script", "expected"), FLOOD)
def test_flood(script: list[Say | Join], expected: list[str]) -> None:
    check(script, expected)


def test_exempt_bot_is_never_flagged() -> None:
    check(burst(40, 0.1, author="bridge"), [], GuardSettings(exempt=("bridge",)))


def test_backlog_is_judged_on_when_it_was_written() -> None:
    h = Harness()
    later = T0 + timedelta(hours=2)
    for i in range(12):
        h.say(i * 5.0, now=later)  # one line every 5 s, all processed at once two hours later
    assert h.reasons() == []


def test_message_stamped_in_the_future_counts_at_the_clock_time() -> None:
    h = Harness()
    for i in range(8):
        h.say(i * 0.5, ts=T0 + timedelta(hours=1), now=T0 + timedelta(seconds=i * 5.0))
    assert h.reasons() == []


# -- duplicate ------------------------------------------------------------------------------------------------------

DUPLICATE = [
    pytest.param(burst(3, 2, "anyone there?"), [], id="asking-three-times-untouched"),
    pytest.param(burst(4, 2, "anyone there?"), ["duplicate"], id="same-text-4-times-in-6s"),
    pytest.param([Say(i * 2, "buy cheap followers", room=f"r{i}") for i in range(4)], ["duplicate"],
                 id="same-text-across-4-rooms"),
    pytest.param([Say(0, "Buy NOW"), Say(1, "buy now!"), Say(2, "b\u200buy  now"), Say(3, "ＢＵＹ ＮＯＷ")],
                 ["duplicate"], id="case-spacing-invisible-and-fullwidth-variants-are-the-same"),
    pytest.param(burst(6, 1.5, ""), [], id="empty-texts-attachments-untouched"),
    pytest.param(burst(6, 1.5, "👍"), [], id="emoji-only-untouched"),
    pytest.param([Say(i, "+1", author=f"u{i}") for i in range(6)], [], id="six-members-saying-plus-one-untouched"),
    pytest.param(burst(4, 12, "anyone there?"), [], id="same-text-4-times-over-36s-untouched"),
]


@pytest.mark.parametrize(("script", "expected"), DUPLICATE)
def test_duplicate(script: list[Say | Join], expected: list[str]) -> None:
    check(script, expected)


# -- mass_mention ---------------------------------------------------------------------------------------------------

SIX = tuple(f"u{i}" for i in range(6))

MASS_MENTION = [
    pytest.param([Say(0, "hey @everyone look")], ["mass_mention"], id="at-everyone"),
    pytest.param([Say(0, "@here anyone?")], ["mass_mention"], id="at-here"),
    pytest.param([Say(0, "@room meeting now")], ["mass_mention"], id="matrix-at-room"),
    pytest.param([Say(0, "ping <@&123456> please")], ["mass_mention"], id="role-mention"),
    pytest.param([Say(0, "hey @everyone look", moderator=True)], [], id="moderator-may-ping-everyone"),
    pytest.param([Say(0, "how do I stop `@everyone` pings?")], [], id="inline-code-is-not-a-ping"),
    pytest.param([Say(0, "```\n@here\n```")], [], id="code-block-is-not-a-ping"),
    pytest.param([Say(0, "mail me at bob@here.com")], [], id="email-address-is-not-a-ping"),
    pytest.param([Say(0, "＠everyone")], [], id="fullwidth-at-is-not-a-ping"),
    pytest.param([Say(0, "thanks all", mentions=SIX[:5])], [], id="five-people-in-one-message-untouched"),
    pytest.param([Say(0, "hi", mentions=SIX)], ["mass_mention"], id="six-people-in-one-message"),
    pytest.param([Say(0, "hi", mentions=(*SIX[:5], "alice"))], [], id="mentioning-yourself-does-not-count"),
    pytest.param([Say(i * 5, "hi", mentions=(f"u{2 * i}", f"u{2 * i + 1}")) for i in range(5)], [],
                 id="ten-people-in-30s-untouched"),
    pytest.param([Say(i * 5, "hi", mentions=(f"u{2 * i}", f"u{2 * i + 1}")) for i in range(6)], ["mass_mention"],
                 id="eleven-or-more-people-in-30s"),
    pytest.param([Say(i * 20, "hi", mentions=(f"u{2 * i}", f"u{2 * i + 1}")) for i in range(6)], [],
                 id="twelve-people-over-100s-untouched"),
]


@pytest.mark.parametrize(("script", "expected"), MASS_MENTION)
def test_mass_mention(script: list[Say | Join], expected: list[str]) -> None:
    check(script, expected)


# -- invite_link ----------------------------------------------------------------------------------------------------

INVITE_LINK = [
    pytest.param([Join(0, "alice"), Say(300, "join discord.gg/abc123")], ["invite_link"], id="new-member-discord-gg"),
    pytest.param([Join(0, "alice"), Say(300, "https://discord.com/invite/abc123")], ["invite_link"],
                 id="new-member-discord-com-invite"),
    pytest.param([Join(0, "alice"), Say(60, "https://matrix.to/#/#lobby:example.org")], ["invite_link"],
                 id="new-member-matrix-room-link"),
    pytest.param([Join(0, "alice"), Say(60, "ｄｉｓｃｏｒｄ．ｇｇ/abc123")], ["invite_link"],
                 id="new-member-fullwidth-invite"),
    pytest.param([Join(0, "alice"), Say(60, "ask https://matrix.to/#/@bob:example.org")], [],
                 id="matrix-user-link-is-not-an-invite"),
    pytest.param([Join(0, "alice"), Say(25 * 60, "join discord.gg/abc123")], [], id="member-of-25-minutes-untouched"),
    pytest.param([Say(60, "join discord.gg/abc123")], [], id="member-whose-join-was-not-seen-untouched"),
    pytest.param([Join(0, "alice"), Say(60, "join discord.gg/abc123", moderator=True)], [],
                 id="new-moderator-untouched"),
]


@pytest.mark.parametrize(("script", "expected"), INVITE_LINK)
def test_invite_link(script: list[Say | Join], expected: list[str]) -> None:
    check(script, expected)


# -- link_burst -----------------------------------------------------------------------------------------------------

FIVE_LINKS = " ".join(f"https://example.org/p{i}" for i in range(5))
SIX_LINKS = FIVE_LINKS + " www.example.com"

LINK_BURST = [
    pytest.param([Say(0, FIVE_LINKS), Say(4, FIVE_LINKS + " more")], [], id="ten-links-in-4s-untouched"),
    pytest.param([Say(0, FIVE_LINKS), Say(4, SIX_LINKS)], ["link_burst"], id="eleven-links-in-4s"),
    pytest.param([Say(0, FIVE_LINKS), Say(11, SIX_LINKS)], [], id="eleven-links-over-11s-untouched"),
    pytest.param([Say(0, "see [<-LINK->] and [<-LINK->]")], [], id="placeholders-are-not-links"),
]


@pytest.mark.parametrize(("script", "expected"), LINK_BURST)
def test_link_burst(script: list[Say | Join], expected: list[str]) -> None:
    check(script, expected)


# -- the rules themselves -------------------------------------------------------------------------------------------


def test_rule_names_are_settings_keys_and_spec_reasons() -> None:
    names = [r.name for r in RULES]
    assert sorted(names) == ["duplicate", "flood", "invite_link", "link_burst", "mass_mention"]
    assert all(name in GuardSettings.model_fields for name in names)


def _ctx(recent: list[Seen], feats: Features | None = None, spent: dict[str, int] | None = None) -> GuardContext:
    return GuardContext("c1", "alice", feats or Features(None, 0, 0, ()), recent, None, spent or {})


def _seen(n: int, every: float) -> list[Seen]:
    return [seen(i, T0 + timedelta(seconds=i * every), "general", f"m{i}", 42, 0, ()) for i in range(n)]


def test_a_rule_is_a_pure_function_of_context_and_time() -> None:
    recent = _seen(8, 1.0)
    ctx = _ctx(recent)
    rule = Flood(GuardSettings().flood)
    now = recent[-1][TS]
    first = rule.check(ctx, now)
    assert first is not None and first.count == 8
    assert rule.check(ctx, now) == first
    assert rule.check(ctx, now + timedelta(seconds=5)) is None  # the same messages, judged later, are spread out


def test_a_hit_counts_only_messages_not_yet_acted_on() -> None:
    recent = _seen(8, 0.5)
    now = recent[-1][TS]
    assert Duplicate(GuardSettings().duplicate).check(_ctx(recent, spent={"duplicate": 3}), now) is not None
    assert Duplicate(GuardSettings().duplicate).check(_ctx(recent, spent={"duplicate": 4}), now) is None


def test_clock_resolution_is_read_from_the_stamp() -> None:
    assert resolution(T0) == 0
    assert resolution(SECOND) == 1
    assert resolution(MINUTE) == 60


def test_seen_keeps_no_text() -> None:
    assert list(inspect.signature(seen).parameters) == ["seq", "ts", "room", "id", "digest", "links", "mentions"]


@pytest.mark.parametrize(
    ("text", "groups", "links", "invites"),
    [
        pytest.param("", (), 0, 0, id="empty"),
        pytest.param("Hi@everyone!", ("everyone",), 0, 0, id="discord-parses-everyone-inside-a-word"),
        pytest.param("Hi@room", (), 0, 0, id="matrix-room-ping-needs-a-word-start"),
        pytest.param("@ROOM now", ("room",), 0, 0, id="matrix-room-ping-any-case"),
        pytest.param("@Here", (), 0, 0, id="discord-here-is-case-sensitive"),
        pytest.param("a <@&1> b <@&2>", ("role", "role"), 0, 0, id="two-roles"),
        pytest.param("www.a.org http://b.org/x", (), 2, 0, id="two-links"),
        pytest.param("discordapp.com/invite/x1", (), 0, 1, id="old-discord-invite-domain"),
    ],
)
def test_features(text: str, groups: tuple[str, ...], links: int, invites: int) -> None:
    f = features_of(text)
    assert (f.groups, f.links, f.invites) == (groups, links, invites)


def test_digest_ignores_what_does_not_change_the_words() -> None:
    assert features_of("Hello,  World!").digest == features_of("hello world").digest
    assert features_of("hello world").digest != features_of("hello world 2").digest
    assert features_of("?!...").digest is None


# -- settings -------------------------------------------------------------------------------------------------------


def test_settings_round_trip_through_the_config_cascade() -> None:
    """bot.config merges `model_dump()` dicts with TOML overrides (lists for arrays) and validates strictly."""
    merged = GuardSettings().model_dump()
    merged["mode"] = "enforce"
    merged["flood"] = {**merged["flood"], "max_messages": 12}
    merged["exempt"] = ["relay-bot"]
    merged["escalation"] = {**merged["escalation"], "steps": ["warn", "timeout"]}
    gs = GuardSettings.model_validate(merged)
    assert (gs.mode, gs.flood.max_messages, gs.exempt, gs.escalation.steps) == (
        "enforce", 12, ("relay-bot",), ("warn", "timeout"))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"mode": "ban"}, id="no-ban-mode"),
        pytest.param({"flood": {"max_messages": "7"}}, id="string-number"),
        pytest.param({"flood": {"max_messages": 0}}, id="zero-threshold"),
        pytest.param({"escalation": {"steps": ["warn", "ban"]}}, id="ban-is-not-a-step"),
        pytest.param({"escalation": {"steps": []}}, id="empty-ladder"),
        pytest.param({"raid": {"factor": 2.0}}, id="raid-cannot-loosen"),
        pytest.param({"flod": {}}, id="unknown-key"),
    ],
)
def test_settings_reject_mistakes(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GuardSettings.model_validate(bad)


def test_raid_thresholds_are_stricter_but_never_zero() -> None:
    s = GuardSettings.model_validate({"duplicate": {"max_repeats": 1}}).stricter()
    assert (s.flood.max_messages, s.duplicate.max_repeats, s.link_burst.max_links) == (3, 1, 5)
    assert s.invite_link.new_member_minutes == 60
