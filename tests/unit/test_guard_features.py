"""What the guard reads of a text (`features_of`), and the promise (`Rule.may_hit`) that lets it skip the rules
for most messages.

`features_of` runs on every message, so it avoids per-character Python loops. These tests pin it to the obvious
character-by-character definition (`reference_plain`, `reference_digest`, `reference_counts`), on tricky texts and
on random ones, so that a quicker extraction which starts treating some text differently fails here.
"""

from __future__ import annotations

import string
import sys
import unicodedata
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.guard_rules import (
    _INVITE,  # the patterns themselves, for the reference
    _LINK,
    MENTIONS,
    RULES,
    Duplicate,
    Features,
    Flood,
    GuardContext,
    GuardSettings,
    Marks,
    Seen,
    features_of,
    seen,
)
from tests.unit.test_guard_rules import T0

MAX_TEXT = 4000


def reference_plain(text: str) -> str:
    """The text as the rules compare it (case, width and invisible characters ignored), character by character."""
    text = text[:MAX_TEXT]
    if text.isascii():
        return text.lower()
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", visible).casefold()


def reference_digest(text: str) -> int | None:
    """What `features_of` must hash: the letters and digits of the plain text."""
    core = "".join(ch for ch in reference_plain(text) if ch.isalnum())
    return hash(core) if core else None


def reference_counts(text: str) -> tuple[int, int]:
    """Links and invites, every pattern tried on every text (`features_of` skips them when they cannot match)."""
    plain = reference_plain(text)
    return len(_LINK.findall(plain)), len(_INVITE.findall(plain))


# -- the digest -----------------------------------------------------------------------------------------------------

SAME = [
    pytest.param("BUY NOW!!!", "buy now", id="shouting"),
    pytest.param("BuY nOw", "buy now", id="mixed-case"),
    pytest.param("b_u_y-n.o,w", "buy now", id="underscores-and-punctuation"),
    pytest.param("Ｂｕｙ\u3000ｎｏｗ", "buy now", id="fullwidth-and-ideographic-space"),
    pytest.param("b\u200bu\u200dy\u2066 now\ufeff", "buy now", id="zero-width-joiner-bidi-bom"),
    pytest.param("b\u00aduy n\U000e0041ow", "buy now", id="soft-hyphen-and-tag-character"),
    pytest.param("𝐁𝐔𝐘 𝐍𝐎𝐖", "buy now", id="mathematical-bold"),
    pytest.param("STRASSE", "straße", id="casefold-sharp-s"),
    pytest.param("ﬁne", "fine", id="ligature"),
    pytest.param("cafe\u0301", "café", id="combining-accent-composes"),
    pytest.param("cafe\u200b\u0301", "café", id="invisible-inside-a-combining-sequence"),
    pytest.param("\u1100\u2060\u1161", "\uac00", id="invisible-between-hangul-jamo"),
    pytest.param("x²", "x2", id="superscript-digit"),
    pytest.param("ΣΊΣΥΦΟΣ", "σίσυφος", id="greek-final-sigma"),
    pytest.param("👍 buy now 👍🏽🇫🇷", "buy now", id="emoji-around-words"),
    pytest.param("Comment ÇA va ?", "comment ça va", id="accented-capital"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_texts_that_say_the_same_have_the_same_digest(a: str, b: str) -> None:
    assert features_of(a).digest == features_of(b).digest == reference_digest(a)


DIFFERENT = [
    pytest.param("buy now", "buy now 2", id="one-more-word"),
    pytest.param("café", "cafe", id="accent"),
    pytest.param("٣", "3", id="arabic-indic-digit-is-not-ascii"),
    pytest.param("中文", "中", id="cjk"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_texts_that_differ_have_different_digests(a: str, b: str) -> None:
    assert features_of(a).digest != features_of(b).digest


@pytest.mark.parametrize("text", ["", "   ", "?!...", "👍", "👍🏽🎉🔥", "\u200b\u200d", "_-_", "、。！"])
def test_nothing_to_compare_has_no_digest(text: str) -> None:
    assert features_of(text).digest is None


def test_long_texts_are_judged_on_their_start() -> None:
    assert features_of("a" * MAX_TEXT + "b").digest == features_of("a" * MAX_TEXT).digest
    start = "spam " * (MAX_TEXT // 5)
    assert features_of(start + "tail one").digest == features_of(start + "other tail").digest
    assert features_of(start + " https://example.org/x").links == 0
    assert features_of("x" * (MAX_TEXT - 1) + "é" + "y" * 50).digest == reference_digest("x" * (MAX_TEXT - 1) + "é")


def test_long_unicode_and_emoji_text() -> None:
    text = ("Ünïcödé ẞtraße ﬁne 中文 テキスト 👍🏽\u200b " * 200)[:MAX_TEXT + 100]
    assert features_of(text).digest == reference_digest(text)


def test_letters_and_digits_are_exactly_what_str_isalnum_says() -> None:
    """The extraction filters with a regex class and a byte table instead of `str.isalnum`: every code point."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    assert features_of(every[:128]).digest == hash(string.digits + string.ascii_lowercase * 2)
    chunk = 3000  # under the text limit, so each chunk is taken whole
    for i in range(0, len(every), chunk):
        piece = every[i:i + chunk]
        assert features_of(piece).digest == reference_digest(piece), hex(i)


TRICKY = st.sampled_from(
    ["a", "B", " ", "!", "_", "é", "E\u0301", "\u0301", "ß", "ﬁ", "İ", "ς", "\u200b", "\u2066", "\ufeff", "\u00ad",
     "👍", "👍🏽", "Ｂ", "\u3000", "٣", "²", "中", "ǅ", "𝐁", "\U000e0041", "@", "/", "\n", "www.", "WWW.", "x.org",
     "https://", "discord", "DISCORD.GG/", "discordapp.com/invite/", "matrix.to/#/", "#", "!", "%23", "matrix:r/",
     "matrix:roomid/", "ｄｉｓｃｏｒｄ．ｇｇ", "／"]
)


@given(st.text())
def test_random_text_digest_matches_the_reference(text: str) -> None:
    assert features_of(text).digest == reference_digest(text)


@given(st.lists(TRICKY, max_size=40).map("".join))
def test_random_tricky_text_matches_the_reference(text: str) -> None:
    f = features_of(text)
    assert f.digest == reference_digest(text)
    assert (f.links, f.invites) == reference_counts(text)


# -- skipping the rules -------------------------------------------------------------------------------------------

SETTINGS = [
    pytest.param(GuardSettings(), id="defaults"),
    pytest.param(GuardSettings().stricter(), id="raid-stricter"),
    pytest.param(GuardSettings.model_validate({"flood": {"max_messages": 1}, "duplicate": {"max_repeats": 1},
                                               "mass_mention": {"max_in_window": 1, "group_mentions": False},
                                               "link_burst": {"max_links": 1}}), id="tightest"),
    pytest.param(GuardSettings.model_validate({name: {"enabled": False} for name in
                                               ("flood", "duplicate", "mass_mention", "invite_link", "link_burst")}),
                 id="all-off"),
]

PEOPLE = st.lists(st.sampled_from(["bob", "carol", "dan", "erin", "frank", "gina"]), max_size=7, unique=True)


@st.composite
def contexts(draw: st.DrawFn) -> GuardContext:
    """A member's recent messages (close together or not, alike or not, with mentions and links or not)."""
    n = draw(st.integers(1, 20))
    at = 0.0
    recent: list[Seen] = []
    for i in range(n):
        at += draw(st.sampled_from([0.0, 0.01, 0.5, 1.0, 4.0]))
        recent.append(seen(i, T0 + timedelta(seconds=at), "general", f"m{i}", draw(st.sampled_from([None, 1, 2])),
                           draw(st.sampled_from([0, 0, 1, 6])), tuple(draw(PEOPLE))))
    groups = tuple(draw(st.lists(st.sampled_from(["everyone", "here", "room", "role"]), max_size=2)))
    feats = Features(recent[-1][4], recent[-1][5], draw(st.sampled_from([0, 0, 1])), groups)
    joined = draw(st.sampled_from([None, T0 - timedelta(seconds=1), T0 - timedelta(days=1)]))
    spent = {name: draw(st.integers(-1, n)) for name in ("flood", "duplicate", "mass_mention", "link_burst")}
    return GuardContext("c1", "alice", feats, recent, joined, spent)


def marks_of(ctx: GuardContext) -> Marks:
    f = ctx.features
    return Marks(bool(ctx.current[MENTIONS]), f.links > 0, f.invites > 0, bool(f.groups))


@pytest.mark.parametrize("settings", SETTINGS)
@given(ctx=contexts())
def test_a_rule_that_may_not_hit_does_not(settings: GuardSettings, ctx: GuardContext) -> None:
    """The guard runs only the rules whose `may_hit` says they may: the others must indeed find nothing."""
    now = ctx.current[1]
    for rule_type in RULES:
        rule = rule_type(getattr(settings, rule_type.name))
        if not rule.may_hit(len(ctx.recent), marks_of(ctx)):
            assert rule.check(ctx, now) is None, rule.name


PLAIN = Features(1, 0, 0, ())
NO_MARKS = Marks(False, False, False, False)


@pytest.mark.parametrize("settings", SETTINGS)
def test_counting_rules_may_hit_plain_text_exactly_when_a_burst_would(settings: GuardSettings) -> None:
    """In a burst of one text, flood and duplicate hit exactly when they say they may: the guard skips no more, and
    no less, than it must."""
    for rule_type in (Flood, Duplicate):
        rule = rule_type(getattr(settings, rule_type.name))
        for n in range(1, 12):
            recent = [seen(i, T0 + timedelta(seconds=i * 0.01), "general", f"m{i}", PLAIN.digest, 0, ())
                      for i in range(n)]
            hit = rule.check(GuardContext("c1", "alice", PLAIN, recent), recent[-1][1])
            assert (hit is not None) == rule.may_hit(n, NO_MARKS), (rule.name, n)


def test_rules_on_one_message_may_hit_only_what_they_read() -> None:
    gs = GuardSettings()
    may = {r.name: r(getattr(gs, r.name)) for r in RULES}
    assert [name for name, r in may.items() if r.may_hit(1, NO_MARKS)] == []
    assert [name for name, r in may.items() if r.may_hit(1, NO_MARKS._replace(mentions=True))] == ["mass_mention"]
    assert [name for name, r in may.items() if r.may_hit(1, NO_MARKS._replace(groups=True))] == ["mass_mention"]
    assert [name for name, r in may.items() if r.may_hit(1, NO_MARKS._replace(invites=True))] == ["invite_link"]
    assert [name for name, r in may.items() if r.may_hit(1, NO_MARKS._replace(links=True))] == ["link_burst"]
