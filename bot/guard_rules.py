"""The guard's rules and their settings: one rule, one small class, each a pure predicate over recent activity.

A rule is built with its typed settings and asked `check(ctx, now) -> Hit | None`: `ctx` holds the new message's
features and the author's recent messages (kept by `bot.guards.Guard`), `now` is the event's time. No rule reads a
clock or keeps state. Rule names are the spec's `reason` values.

The settings models live here rather than in `bot.guards` so that `bot.config` can import `GuardSettings` without
importing the guard (which imports `bot.config` through `bot.render`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DIGEST",
    "ID",
    "LINKS",
    "MENTIONS",
    "ROOM",
    "RULES",
    "SEQ",
    "TS",
    "Duplicate",
    "DuplicateSettings",
    "EscalationSettings",
    "Features",
    "Flood",
    "FloodSettings",
    "GuardContext",
    "GuardSettings",
    "Hit",
    "InviteLink",
    "InviteLinkSettings",
    "LinkBurst",
    "LinkBurstSettings",
    "Marks",
    "MassMention",
    "MassMentionSettings",
    "RaidSettings",
    "Rule",
    "Seen",
    "Step",
    "features_of",
    "raw_features",
    "resolution",
    "rules_for",
    "seen",
]

_YEAR_MINUTES = 366 * 24 * 60
_S = TypeVar("_S", bound=BaseModel)
Step = Literal["warn", "delete", "timeout"]
_Count = Annotated[int, Field(ge=1, le=100_000)]
_Seconds = Annotated[float, Field(gt=0, le=3600)]


class _Model(BaseModel):
    # Same rules as bot.config: a config saying `max_messages = "7"` is a mistake, not something to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


def _scaled(n: int, factor: float) -> int:
    return max(1, int(n * factor))


class FloodSettings(_Model):
    """More than `max_messages` messages by one member within `seconds`, across the community's rooms."""

    enabled: bool = True
    max_messages: _Count = 7
    seconds: _Seconds = 10

    def stricter(self, factor: float) -> FloodSettings:
        return self.model_copy(update={"max_messages": _scaled(self.max_messages, factor)})


class DuplicateSettings(_Model):
    """More than `max_repeats` messages with the same normalised text by one member within `seconds`, any room."""

    enabled: bool = True
    max_repeats: _Count = 3
    seconds: _Seconds = 10

    def stricter(self, factor: float) -> DuplicateSettings:
        return self.model_copy(update={"max_repeats": _scaled(self.max_repeats, factor)})


class MassMentionSettings(_Model):
    """Too many distinct people mentioned in one message or within `seconds`; group mentions by non-moderators."""

    enabled: bool = True
    max_per_message: _Count = 5
    max_in_window: _Count = 10
    seconds: _Seconds = 30
    #: @everyone, @here, @room and role mentions (outside code) are a hit on their own.
    group_mentions: bool = True

    def stricter(self, factor: float) -> MassMentionSettings:
        return self.model_copy(update={"max_per_message": _scaled(self.max_per_message, factor),
                                       "max_in_window": _scaled(self.max_in_window, factor)})


class InviteLinkSettings(_Model):
    """Discord invites and matrix.to room links from members who joined less than `new_member_minutes` ago."""

    enabled: bool = True
    new_member_minutes: Annotated[float, Field(ge=0, le=_YEAR_MINUTES)] = 20


class LinkBurstSettings(_Model):
    """More than `max_links` links by one member within `seconds`."""

    enabled: bool = True
    max_links: _Count = 10
    seconds: _Seconds = 10

    def stricter(self, factor: float) -> LinkBurstSettings:
        return self.model_copy(update={"max_links": _scaled(self.max_links, factor)})


class EscalationSettings(_Model):
    """What a member's 1st, 2nd, 3rd... hit within `window_minutes` leads to (the last step repeats)."""

    # strict=False on tuples only: TOML arrays arrive as lists.
    steps: Annotated[tuple[Step, ...], Field(strict=False, min_length=1, max_length=10)] = ("warn", "delete", "timeout")
    window_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES)] = 60
    timeout_minutes: Annotated[float, Field(gt=0, le=28 * 24 * 60)] = 10


class RaidSettings(_Model):
    """When the community switches to raid mode, how strict it gets, and when it ends on its own."""

    enabled: bool = True
    #: A join wave: this many joins within `join_wave_minutes` (counted like the nudges' join wave, but a raid is
    #: a sharper spike; a member joining again soon after, e.g. after a disconnect, is not counted twice).
    join_wave_joins: Annotated[int, Field(ge=2)] = 20
    join_wave_minutes: Annotated[int, Field(ge=1, le=_YEAR_MINUTES)] = 2
    #: A burst of hits: this many distinct members hit within `hit_minutes`.
    hit_members: Annotated[int, Field(ge=2)] = 5
    hit_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 2
    #: Raid mode ends after this long without hits (or by an admin).
    quiet_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES)] = 30
    #: In raid mode, members who joined less than this long ago get thresholds multiplied by `factor`.
    recent_join_minutes: Annotated[float, Field(ge=0, le=_YEAR_MINUTES)] = 60
    factor: Annotated[float, Field(gt=0, le=1)] = 0.5


class GuardSettings(_Model):
    """The guard's settings for one room (after the community/room cascade)."""

    enabled: bool = True
    #: `observe` only reports to the moderators; `enforce` also warns, deletes and times out.
    mode: Literal["observe", "enforce"] = "observe"
    #: Member ids never checked: moderators the platform does not flag, and allow-listed bots (bridges, relays).
    exempt: Annotated[tuple[str, ...], Field(strict=False)] = ()
    flood: FloodSettings = FloodSettings()
    duplicate: DuplicateSettings = DuplicateSettings()
    mass_mention: MassMentionSettings = MassMentionSettings()
    invite_link: InviteLinkSettings = InviteLinkSettings()
    link_burst: LinkBurstSettings = LinkBurstSettings()
    escalation: EscalationSettings = EscalationSettings()
    raid: RaidSettings = RaidSettings()

    def horizon(self) -> timedelta:
        """How much of a member's past the rules look at."""
        return timedelta(seconds=max(self.flood.seconds, self.duplicate.seconds, self.mass_mention.seconds,
                                     self.link_burst.seconds))

    def stricter(self) -> GuardSettings:
        """The thresholds applied, in raid mode, to members who joined recently."""
        f = self.raid.factor
        return self.model_copy(update={
            "flood": self.flood.stricter(f),
            "duplicate": self.duplicate.stricter(f),
            "mass_mention": self.mass_mention.stricter(f),
            "link_burst": self.link_burst.stricter(f),
            "invite_link": self.invite_link.model_copy(update={"new_member_minutes": max(
                self.invite_link.new_member_minutes, self.raid.recent_join_minutes)}),
        })


# -- what the rules look at -------------------------------------------------------------------------------------

_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
# Live group pings: Discord @everyone/@here (anywhere in a word, as Discord parses them) and role mentions, Matrix
# @room (whole word, as the push rule matches it). Not an e-mail address ("a@here.com").
_GROUP = re.compile(r"@(everyone|here)(?![\w-]|\.\w)|(?<![\w.@])(?i:@(room))(?![\w-]|\.\w)|<@&\d+>")
_LINK = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"']+|\b(?:discord\.gg|matrix\.to)/[^\s<>\"']+")
_INVITE = re.compile(
    r"\b(?:discord(?:app)?\.com/invite|discord\.gg)/[a-z0-9-]+"
    r"|\bmatrix\.to/#/(?:[#!]|%23|%21)[^\s/]+"
    r"|\bmatrix:(?:r|roomid)/[^\s]+"
)
#: Texts longer than this are judged on their start (a rule only needs to tell copies and links apart).
_MAX_TEXT = 4000
#: An ASCII text as the digest sees it, in one `bytes.translate` pass: letters lower-cased, digits kept, and every
#: other byte (not `str.isalnum`) a space, for `replace` to drop (`translate` with bytes to delete would build a
#: table on every call).
_ASCII_FOLD = bytes(ord(chr(b).lower()) if chr(b).isalnum() else 32 for b in range(128)) + bytes(range(128, 256))
#: What the digest drops from any other text: `[\W_]` is exactly `not str.isalnum()` for every code point (see
#: test_guard_features).
_NOISE = re.compile(r"[\W_]+")
_ASCII = frozenset(map(chr, range(128)))


class Features(NamedTuple):
    """What the rules need from one message's text; the text itself is not kept. (A named tuple rather than a
    frozen dataclass: several times quicker to make.)"""

    #: Hash of the normalised text (case, width, spacing, punctuation and invisible characters ignored); None
    #: for a text with nothing left to compare (empty, only punctuation or emoji).
    digest: int | None
    links: int
    invites: int
    #: Group pings found outside code: "everyone", "here", "room" or "role".
    groups: tuple[str, ...]


def features_of(text: str) -> Features:
    """Extract the features of a message text (pure; the text is not retained)."""
    return Features(*raw_features(text))


def raw_features(text: str) -> tuple[int | None, int, int, tuple[str, ...]]:
    """`features_of` as a plain tuple: the guard runs this on every message and makes a `Features` only for the
    few that a rule reads. No step loops over characters in Python: most texts are ASCII and take the bytes path;
    the others are normalised by `unicodedata` and filtered by one regex.
    """
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT]
    if text.isascii():
        core = _ascii_core(text)
        # Every invite, and every link but a bare "www.", has a slash: most texts need no lower-cased copy.
        plain = text.lower() if "/" in text or "www" in core else ""
    else:
        plain = unicodedata.normalize("NFKC", _visible(text)).casefold()
        core = _ascii_core(plain) if plain.isascii() else _NOISE.sub("", plain)
    # hash() is keyed per process (SipHash): digests cannot be compared across runs, which is what we want.
    digest = hash(core) if core else None
    links = invites = 0
    if "/" in plain:
        links = len(_LINK.findall(plain))
        if "discord" in plain or "matrix" in plain:
            invites = len(_INVITE.findall(plain))
    elif "www." in plain:
        links = len(_LINK.findall(plain))
    groups: tuple[str, ...] = ()
    if "@" in text:
        outside = _CODE.sub(" ", text) if "`" in text else text
        groups = tuple((m.group(1) or m.group(2) or "role").lower() for m in _GROUP.finditer(outside))
    return digest, links, invites, groups


def _ascii_core(text: str) -> str:
    """The letters (lower-cased) and digits of an ASCII text, in two C passes."""
    return text.encode().translate(_ASCII_FOLD).replace(b" ", b"").decode()


def _visible(text: str) -> str:
    """`text` without format characters (zero-width, joiners, bidi controls): never part of what a text says.

    Only the distinct non-ASCII characters are looked up (there are no format characters in ASCII), and the
    text is copied only when it holds some.
    """
    for ch in set(text) - _ASCII:
        if unicodedata.category(ch) == "Cf":
            text = text.replace(ch, "")
    return text


class Marks(NamedTuple):
    """What a message holds that a rule may act on by itself, whatever the member wrote before it."""

    #: Someone other than the author is mentioned.
    mentions: bool
    links: bool
    invites: bool
    #: A group ping (see `Features.groups`).
    groups: bool


#: One recent message of a member, as the rules see it: ids, time and features, never text. A plain tuple, read
#: with the index names below, because the garbage collector stops tracking exact tuples of plain values (a named
#: tuple stays tracked) and a busy guard holds hundreds of thousands of them.
Seen = tuple[int, datetime, str, str, int | None, int, tuple[str, ...]]
SEQ, TS, ROOM, ID, DIGEST, LINKS, MENTIONS = range(7)


def seen(seq: int, ts: datetime, room: str, id: str, digest: int | None, links: int,
         mentions: tuple[str, ...]) -> Seen:
    """A `Seen` record: `mentions` are the distinct people mentioned, the author excluded."""
    return (seq, ts, room, id, digest, links, mentions)


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule fired: `count` things seen where `limit` were allowed, within `seconds` (0 = in one message)."""

    rule: str
    count: int
    limit: int
    seconds: float
    #: (room, message id) of the messages that made the count, oldest first.
    messages: tuple[tuple[str, str], ...]
    #: Which form of the rule fired, when it has several ("group", "message", "window").
    form: str = ""


class GuardContext(NamedTuple):
    """A new message and its author's recent activity, for the rules (a named tuple: immutable, and quick to make
    for each message that reaches the rules)."""

    community: str
    author: str
    features: Features
    #: The author's recent messages in time order, the new one last.
    recent: Sequence[Seen]
    #: When the author joined, if the guard saw it.
    joined_at: datetime | None = None
    #: Per rule, the sequence number up to which messages were already acted on (they no longer count).
    spent: Mapping[str, int] = MappingProxyType({})

    @property
    def current(self) -> Seen:
        return self.recent[-1]

    def window(self, rule: str, seconds: float, now: datetime) -> list[Seen]:
        """The author's messages surely within `seconds` before `now`, not yet acted on by `rule`, oldest first.

        "Surely" allows for the clock's resolution: messages stamped to the whole second may be up to a second
        further apart than their stamps say, and stamps to the whole minute (IRC logs, some bridges) cannot show
        that two messages came within a few seconds of each other at all, so the window shrinks to the new message.
        """
        span = seconds - resolution(now)
        spent = self.spent.get(rule, -1)
        if span <= 0:
            cur = self.recent[-1]
            return [cur] if cur[SEQ] > spent else []
        cutoff = now - _span(span)
        out: list[Seen] = []
        for s in reversed(self.recent):
            if s[TS] <= cutoff or s[SEQ] <= spent:
                break
            out.append(s)
        out.reverse()
        return out


@lru_cache(maxsize=64)
def _span(seconds: float) -> timedelta:
    # A few spans recur (each rule's seconds less a clock resolution): made once, not for every message.
    return timedelta(seconds=seconds)


def resolution(ts: datetime) -> float:
    """The resolution of a clock that gave `ts`, in seconds, as far as one stamp can tell (0 = finer than 1 s)."""
    if ts.microsecond:
        return 0.0
    return 60.0 if ts.second == 0 else 1.0


def _where(seen: Sequence[Seen]) -> tuple[tuple[str, str], ...]:
    return tuple((s[ROOM], s[ID]) for s in seen)


class Rule(Generic[_S]):
    """A spam rule: a name (the spec's reason, and its settings key), typed settings and a pure check."""

    name: ClassVar[str]

    def __init__(self, settings: _S) -> None:
        self.settings = settings

    def check(self, ctx: GuardContext, now: datetime) -> Hit | None:
        """A hit when the new message in `ctx` breaks the rule at `now` (the event's time); else None."""
        raise NotImplementedError

    def may_hit(self, recent: int, marks: Marks) -> bool:
        """False when `check` surely returns None for a message with `marks` from a member with `recent` recent
        messages (the new one included); a rule that cannot tell says True.

        The guard asks once per kind of message and runs only the rules that may hit: most messages are plain
        text from members who wrote little lately, and for them no rule runs at all.
        """
        return True


# -- the rules ----------------------------------------------------------------------------------------------------


class Flood(Rule[FloodSettings]):
    """Too many messages in a short time by one member."""

    name: ClassVar[str] = "flood"

    def check(self, ctx: GuardContext, now: datetime) -> Hit | None:
        s = self.settings
        if not s.enabled or len(ctx.recent) <= s.max_messages:
            return None
        recent = ctx.window(self.name, s.seconds, now)
        if len(recent) <= s.max_messages:
            return None
        return Hit(self.name, len(recent), s.max_messages, s.seconds, _where(recent))

    def may_hit(self, recent: int, marks: Marks) -> bool:
        return self.settings.enabled and recent > self.settings.max_messages


class Duplicate(Rule[DuplicateSettings]):
    """The same text again and again, in one room or across rooms."""

    name: ClassVar[str] = "duplicate"

    def check(self, ctx: GuardContext, now: datetime) -> Hit | None:
        s = self.settings
        digest = ctx.current[DIGEST]
        if not s.enabled or digest is None or len(ctx.recent) <= s.max_repeats:
            return None
        if [x[DIGEST] for x in ctx.recent].count(digest) <= s.max_repeats:
            return None  # too few copies at all, so too few in the window (quicker to tell)
        same = [x for x in ctx.window(self.name, s.seconds, now) if x[DIGEST] == digest]
        if len(same) <= s.max_repeats:
            return None
        return Hit(self.name, len(same), s.max_repeats, s.seconds, _where(same))

    def may_hit(self, recent: int, marks: Marks) -> bool:
        return self.settings.enabled and recent > self.settings.max_repeats


class MassMention(Rule[MassMentionSettings]):
    """Group pings, or many distinct people mentioned in one message or in a short time."""

    name: ClassVar[str] = "mass_mention"

    def check(self, ctx: GuardContext, now: datetime) -> Hit | None:
        s = self.settings
        if not s.enabled:
            return None
        cur = ctx.current
        if s.group_mentions and ctx.features.groups:
            return Hit(self.name, len(ctx.features.groups), 0, 0, ((cur[ROOM], cur[ID]),), "group")
        if not cur[MENTIONS]:
            return None
        if len(cur[MENTIONS]) > s.max_per_message:
            return Hit(self.name, len(cur[MENTIONS]), s.max_per_message, 0, ((cur[ROOM], cur[ID]),), "message")
        if sum(len(x[MENTIONS]) for x in ctx.recent) <= s.max_in_window:
            return None  # too few mentions at all, so too few people in the window (quicker to tell)
        recent = ctx.window(self.name, s.seconds, now)
        people = frozenset().union(*(x[MENTIONS] for x in recent))
        if len(people) <= s.max_in_window:
            return None
        return Hit(self.name, len(people), s.max_in_window, s.seconds, _where([x for x in recent if x[MENTIONS]]),
                   "window")

    def may_hit(self, recent: int, marks: Marks) -> bool:
        s = self.settings
        return s.enabled and (marks.mentions or (s.group_mentions and marks.groups))


class InviteLink(Rule[InviteLinkSettings]):
    """Invite links (Discord invites, Matrix room links) from members who just joined."""

    name: ClassVar[str] = "invite_link"

    def check(self, ctx: GuardContext, now: datetime) -> Hit | None:
        s = self.settings
        if not s.enabled or not ctx.features.invites or ctx.joined_at is None:
            return None
        if now - ctx.joined_at >= timedelta(minutes=s.new_member_minutes):
            return None
        cur = ctx.current
        return Hit(self.name, ctx.features.invites, 0, 0, ((cur[ROOM], cur[ID]),))

    def may_hit(self, recent: int, marks: Marks) -> bool:
        return self.settings.enabled and marks.invites


class LinkBurst(Rule[LinkBurstSettings]):
    """Many links in a short time by one member."""

    name: ClassVar[str] = "link_burst"

    def check(self, ctx: GuardContext, now: datetime) -> Hit | None:
        s = self.settings
        if not s.enabled or not ctx.current[LINKS]:
            return None
        recent = [x for x in ctx.window(self.name, s.seconds, now) if x[LINKS]]
        total = sum(x[LINKS] for x in recent)
        if total <= s.max_links:
            return None
        return Hit(self.name, total, s.max_links, s.seconds, _where(recent))

    def may_hit(self, recent: int, marks: Marks) -> bool:
        return self.settings.enabled and marks.links


#: Every rule, in the order hits are reported (the most specific first).
RULES: tuple[type[Rule[Any]], ...] = (MassMention, InviteLink, Duplicate, LinkBurst, Flood)


def rules_for(settings: GuardSettings) -> tuple[Rule[Any], ...]:
    """The rules configured by `settings` (each reads the settings section named like the rule), in order."""
    return tuple(rule(getattr(settings, rule.name)) for rule in RULES)
