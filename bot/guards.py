"""The guard: spam and flood handling that never punishes a fast typist.

`Guard.on_message` runs the rules of `bot.guard_rules` over each member's recent activity and decides, per hit, the
next step of a graduated ladder (warn, then delete, then timeout; never a ban) from the member's strikes within a
window. Every decision is reported to the moderators' room; in `observe` mode (the default) only the report is sent.
A wave of joins, or hits by many members at once, switches a community into raid mode: stricter limits for members
who joined recently and nudges frozen (`raid_active`), until a quiet period passes or an admin ends it.

State is in memory and bounded: per-member windows pruned by time, idle members dropped, no text kept (only a
keyed hash of the normalised text, for as long as the duplicate window lasts). Strikes sit behind `StrikeBook` so a
persistent book can replace `MemoryStrikes` later. Time comes in as arguments; nothing here reads a clock.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from bot import render
from bot.actions import Action, DeleteMessage, Reply, Report, Timeout
from bot.events import MemberJoin, Message
from bot.guard_rules import (
    TS,
    Features,
    GuardContext,
    GuardSettings,
    Hit,
    Marks,
    Rule,
    Seen,
    Step,
    raw_features,
    rules_for,
)
from bot.nudges import JoinWave

__all__ = ["Guard", "GuardSettings", "MemoryStrikes", "RoomView", "StrikeBook"]

log = logging.getLogger(__name__)

#: Longest run of one member's messages kept (a bot posting thousands a second saturates here, still a hit).
_MAX_RECENT = 256
#: Messages deleted by one decision at most; the report still names the count.
_MAX_DELETES = 25
#: Message links quoted in a report at most.
_MAX_QUOTED = 10
#: Small state (strikes, timeouts, hit windows) is swept this often (event time); members and joins are pruned
#: as events arrive, a few at a time, so no call pays for a big sweep.
_SWEEP_EVERY = timedelta(seconds=60)
#: Idle members (or old joins) dropped per event at most, and per sweep (after a lull) at most.
_PRUNE_STEP = 8
_SWEEP_CATCH_UP = 2048
#: A member nothing was acted on yet (shared, read-only).
_NOTHING_SPENT: Mapping[str, int] = MappingProxyType({})
#: Distinct settings objects whose rules are cached (config reloads create new ones).
_MAX_CACHED = 4096
#: Kinds of message whose rules are remembered per settings (a few dozen are common; up to 16 x _MAX_RECENT exist).
_MAX_KINDS = 512
#: Times that compare before and after any event's (aware) time.
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_NEVER = datetime.max.replace(tzinfo=UTC)


class RoomView(Protocol):
    """What the guard reads of a room's settings; `bot.config.RoomSettings` fits once it has a `guard` field."""

    @property
    def guard(self) -> GuardSettings: ...

    @property
    def language(self) -> str: ...

    @property
    def moderators_room(self) -> str | None: ...


class StrikeBook(Protocol):
    """Where members' strikes are kept (`MemoryStrikes`; the engine uses `JournaledStrikes` to store them)."""

    def add(self, community: str, member: str, ts: datetime, window: timedelta) -> int:
        """Record a strike at `ts`; returns the member's strikes within `window` up to `ts`, this one included."""
        ...

    def clear(self, community: str, member: str) -> int:
        """Forget the member's strikes; returns how many there were."""
        ...

    def prune(self, before: datetime) -> None:
        """Drop strikes older than `before`."""
        ...


class MemoryStrikes:
    """Strikes per member in memory, pruned by time."""

    def __init__(self) -> None:
        self._strikes: dict[tuple[str, str], deque[datetime]] = {}

    def load(self, strikes: Iterable[tuple[str, str, datetime]]) -> None:
        """Take back stored strikes, (community, member, ts) oldest first (at start)."""
        for community, member, ts in strikes:
            self._strikes.setdefault((community, member), deque()).append(ts)

    def add(self, community: str, member: str, ts: datetime, window: timedelta) -> int:
        q = self._strikes.setdefault((community, member), deque())
        q.append(ts)
        while q and q[0] <= ts - window:
            q.popleft()
        return len(q)

    def clear(self, community: str, member: str) -> int:
        return len(self._strikes.pop((community, member), ()))

    def prune(self, before: datetime) -> None:
        for key in list(self._strikes):
            q = self._strikes[key]
            while q and q[0] < before:
                q.popleft()
            if not q:
                del self._strikes[key]

    def __len__(self) -> int:
        return len(self._strikes)


class JournaledStrikes(MemoryStrikes):
    """`MemoryStrikes` that also lists its changes until they are taken: the engine writes them in the event's
    transaction, so that a restart does not send every member back to a first warning."""

    def __init__(self) -> None:
        super().__init__()
        #: (community, member, ts) of a strike, or (community, member, None) for the member's strikes cleared
        self.changes: list[tuple[str, str, datetime | None]] = []

    def add(self, community: str, member: str, ts: datetime, window: timedelta) -> int:
        self.changes.append((community, member, ts))
        return super().add(community, member, ts, window)

    def clear(self, community: str, member: str) -> int:
        self.changes.append((community, member, None))
        return super().clear(community, member)

    def take(self) -> list[tuple[str, str, datetime | None]]:
        """The changes since the last call, oldest first."""
        changes, self.changes = self.changes, []
        return changes


@dataclass(slots=True)
class _Raid:
    started: datetime
    last: datetime
    room: str | None


#: A kind of message, as the rules' `may_hit` sees it: recent messages of its author, then the `Marks` fields.
_Kind = tuple[int, bool, bool, bool, bool]


@dataclass(frozen=True, slots=True)
class _RuleSet:
    """The rules of some settings, and which of them may hit each kind of message (asked once per kind)."""

    rules: tuple[Rule[Any], ...]
    picked: dict[_Kind, tuple[Rule[Any], ...]] = field(default_factory=dict)

    def pick(self, kind: _Kind) -> tuple[Rule[Any], ...]:
        """The rules, in order, that may hit this kind of message."""
        if len(self.picked) >= _MAX_KINDS:
            self.picked.clear()
        recent, mentions, links, invites, groups = kind
        marks = Marks(mentions, links, invites, groups)
        found = self.picked[kind] = tuple(r for r in self.rules if r.may_hit(recent, marks))
        return found


@dataclass(slots=True)
class _Rules:
    settings: GuardSettings
    normal: _RuleSet
    strict: _RuleSet
    horizon: timedelta
    join_memory: timedelta
    strike_window: timedelta


class Guard:
    """Spam and raid handling for every community; see the module docstring. Pure: time is always an argument."""

    def __init__(
        self,
        settings_for: Callable[[str, str | None], RoomView],
        *,
        strikes: StrikeBook | None = None,
        prefix: str = "!lien",
    ) -> None:
        self._settings_for = settings_for
        self.strikes: StrikeBook = strikes if strikes is not None else MemoryStrikes()
        self.prefix = prefix
        # Each member's recent messages, oldest first, as a tuple rebuilt on each message (a few entries): a busy
        # guard holds one per member active in the last half minute, and the garbage collector stops tracking
        # tuples of plain values, where a list or deque would be walked by every full collection. In order of last
        # activity, so idle members are dropped from the front as events arrive (as are old joins below).
        self._members: OrderedDict[tuple[str, str], tuple[Seen, ...]] = OrderedDict()
        #: Per member and rule, the last message sequence already acted on: a new hit needs a fresh count.
        self._spent: dict[tuple[str, str], dict[str, int]] = {}
        self._joined: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        #: Members timed out (or, in observe mode, who would be) until then: further hits add nothing.
        self._quiet: dict[tuple[str, str], datetime] = {}
        self._moderators: set[tuple[str, str]] = set()
        self._hits: dict[str, deque[tuple[datetime, str]]] = {}
        self._raids: dict[str, _Raid] = {}
        self._join_wave = JoinWave()
        self._cache: dict[int, _Rules] = {}
        #: Counts since start: `hit:RULE` per rule hit, `decision:STEP` per decision, `suppressed` per hit ignored
        #: while a member is timed out, `raid`. For metrics and the evaluation scripts.
        self.stats: Counter[str] = Counter()
        self._seq = 0
        self._next_sweep: datetime | None = None
        #: Before then, no member is idle and no join old enough to drop (see `_prune`), and which member was the
        #: oldest when that was worked out.
        self._prune_at = _EARLIEST
        self._oldest_member: tuple[str, str] | None = None
        # The longest horizons seen in any settings: what the sweep must keep.
        self._keep = timedelta(0)
        self._keep_joins = timedelta(0)
        self._keep_strikes = timedelta(0)
        #: Whether a rule hit the message `on_message` checked last (in either mode, suppressed or not).
        self.last_hit = False

    # -- events --------------------------------------------------------------------------------------------------

    def on_message(self, m: Message, *, is_moderator: bool = False, now: datetime) -> list[Action]:
        """Check one message; returns the actions to perform (reports, and in enforce mode warn/delete/timeout).

        `now` is the clock's time; windows use the message's own time (never later than `now`), so a backlog
        processed in one go after a restart is judged on when it was written, not when it arrived.
        """
        self.last_hit = False
        view = self._settings_for(m.community, m.room)
        gs = view.guard
        t = m.ts if m.ts <= now else now
        actions = self._expire(m.community, t, now) if m.community in self._raids else []
        key = (m.community, m.author)
        if not gs.enabled or is_moderator or m.author in gs.exempt or key in self._moderators:
            return actions
        cached = self._cache.get(id(gs))
        if cached is None or cached.settings is not gs:
            cached = self._rules(gs)
        if self._next_sweep is None or t >= self._next_sweep:
            self._sweep(t)
        digest, links, invites, groups = raw_features(m.text)
        mentions = _mentioned(m) if m.mentions else ()
        recent = self._remember(key, m, t, cached.horizon, digest, links, mentions)
        t = recent[-1][TS]
        if t >= self._prune_at:
            self._prune(t)
        joined = self._joined.get(key)
        strict = joined is not None and self._is_recent_in_raid(m.community, joined, t, gs)
        ruleset = cached.strict if strict else cached.normal
        kind = (len(recent), bool(mentions), links > 0, invites > 0, bool(groups))
        rules = ruleset.picked.get(kind)
        if rules is None:
            rules = ruleset.pick(kind)
        if not rules:
            return actions  # most messages: plain text from a member who wrote little lately
        ctx = GuardContext(m.community, m.author, Features(digest, links, invites, groups), recent, joined,
                           self._spent.get(key, _NOTHING_SPENT))
        hits = [h for rule in rules if (h := rule.check(ctx, t)) is not None]
        if not hits:
            return actions
        self.last_hit = True
        spent = self._spent.setdefault(key, {})
        for h in hits:
            spent[h.rule] = self._seq
            self.stats["hit:" + h.rule] += 1
        actions += self._decide(view, m, hits, t, now, strict=strict, window=cached.strike_window)
        actions += self._count_hit(m.community, m.author, m.room, t, now)
        return actions

    def _remember(self, key: tuple[str, str], m: Message, t: datetime, horizon: timedelta, digest: int | None,
                  links: int, mentions: tuple[str, ...]) -> tuple[Seen, ...]:
        """Add the message to its author's recent ones (those older than `horizon` dropped); returns them all."""
        members = self._members
        before = members.get(key)
        self._seq += 1
        if before and before[-1][TS] > t:
            t = before[-1][TS]  # out of order: keep each member's window in time order
        # A `Seen` as `seen()` makes it, spelt out since this runs for every message. Room names repeat across
        # hundreds of thousands of records: share one copy.
        entry: Seen = (self._seq, t, sys.intern(m.room), m.id, digest, links, mentions)
        if before is None:
            if not members:
                self._prune_at = _EARLIEST  # the first member is the oldest one
            recent: tuple[Seen, ...] = (entry,)
            members[key] = recent  # a new key goes last, where the most recently active are
            return recent
        cutoff = t - horizon
        old = len(before) + 1 - _MAX_RECENT if len(before) >= _MAX_RECENT else 0
        while old < len(before) and before[old][TS] <= cutoff:
            old += 1
        recent = before[old:] + (entry,)  # noqa: RUF005 (quicker than unpacking into a new tuple)
        members[key] = recent
        members.move_to_end(key)
        if key == self._oldest_member:
            self._prune_at = _EARLIEST  # the oldest member is the oldest no more
        return recent

    def on_join(self, j: MemberJoin, now: datetime) -> list[Action]:
        """Note a join (for invite links and raid mode); returns a raid report when it completes a join wave."""
        view = self._settings_for(j.community, None)
        gs = view.guard
        t = min(j.ts, now)
        actions = self._expire(j.community, t, now)
        key = (j.community, j.author)
        rejoin = key in self._joined
        self._joined[key] = t
        self._joined.move_to_end(key)
        self._rules(gs)
        self._prune(t)
        if not gs.enabled or not gs.raid.enabled or rejoin:
            return actions
        r = gs.raid
        if not self._join_wave.hit(j.community, t, r.join_wave_joins, r.join_wave_minutes):
            return actions
        raid = self._raids.get(j.community)
        if raid is not None:
            raid.last = t
            return actions
        why = render.text("why_join_wave", view.language, n=r.join_wave_joins, minutes=_num(r.join_wave_minutes))
        return [*actions, self._start_raid(view, j.community, None, t, now, why)]

    # -- admin ---------------------------------------------------------------------------------------------------

    def pardon(self, community: str, member: str) -> int:
        """Reset a member's strikes (the next hit is a warning again); returns how many strikes were cleared."""
        self._quiet.pop((community, member), None)
        return self.strikes.clear(community, member)

    def end_raid(self, community: str, *, now: datetime) -> list[Action]:
        """End raid mode now (an admin's decision); returns the report saying so, or nothing if none was on."""
        if self._raids.pop(community, None) is None:
            return []
        view = self._settings_for(community, None)
        return [self._raid_report(view, community, None, now, "raid_end", render.text("end_admin", view.language))]

    def raid_active(self, community: str, now: datetime | None = None) -> bool:
        """True while the community is in raid mode (nudges stay frozen); with `now`, a raid past its quiet
        period counts as over even before an event or `expire` ends it."""
        raid = self._raids.get(community)
        if raid is None:
            return False
        if now is None:
            return True
        quiet = timedelta(minutes=self._settings_for(community, None).guard.raid.quiet_minutes)
        return now - raid.last < quiet

    def expire(self, now: datetime) -> list[Action]:
        """End every raid whose quiet period has passed (for a periodic timer); returns the reports."""
        out: list[Action] = []
        for community in list(self._raids):
            out += self._expire(community, now, now)
        return out

    def note_moderator(self, community: str, member: str) -> None:
        """Treat `member` as a moderator from now on (e.g. after an admin command); moderators are never checked."""
        self._moderators.add((community, member))

    def forget(self, community: str, member: str) -> None:
        """Drop every trace of a member (forget-me)."""
        key = (community, member)
        self._members.pop(key, None)
        self._spent.pop(key, None)
        self._joined.pop(key, None)
        self._quiet.pop(key, None)
        self._moderators.discard(key)
        self.strikes.clear(community, member)
        self._prune_at = _EARLIEST  # the oldest ones may be gone

    def sizes(self) -> dict[str, int]:
        """How much state is held (members, joins, raids, cached settings): for tests and the load benchmark."""
        return {"members": len(self._members), "joins": len(self._joined), "raids": len(self._raids),
                "timeouts": len(self._quiet), "hit_windows": len(self._hits), "settings": len(self._cache)}

    # -- decisions -----------------------------------------------------------------------------------------------

    def _decide(self, view: RoomView, m: Message, hits: list[Hit], t: datetime, now: datetime,
                *, strict: bool, window: timedelta) -> list[Action]:
        gs = view.guard
        key = (m.community, m.author)
        quiet = self._quiet.get(key)
        if quiet is not None and t < quiet:
            self.stats["suppressed"] += 1
            return []
        esc = gs.escalation
        n = self.strikes.add(m.community, m.author, t, window)
        step: Step = esc.steps[min(n, len(esc.steps)) - 1]
        self.stats["decision:" + step] += 1
        primary = hits[0].rule
        lang = view.language
        enforce = gs.mode == "enforce"
        base = dict(ts=now, community=m.community, kind="guard", reason=primary)
        actions: list[Action] = []
        targets = _unique(where for h in hits for where in h.messages)
        if step == "timeout":
            self._quiet[key] = t + timedelta(minutes=esc.timeout_minutes)
        if enforce:
            if step == "warn":
                actions.append(Reply(room=m.room, thread=m.thread, reply_to=m.id,
                                     text=render.text("warn_" + primary, lang), **base))
            else:
                actions += [DeleteMessage(room=room, reply_to=mid, **base) for room, mid in targets[:_MAX_DELETES]]
            if step == "timeout":
                actions.append(Timeout(room=m.room, to=m.author, **base, minutes=esc.timeout_minutes,
                                       text=render.text("timeout_note", lang, minutes=_num(esc.timeout_minutes))))
        log.info("guard %s %s in %s: %s, strike %d -> %s", gs.mode, m.author, m.community,
                 ",".join(h.rule for h in hits), n, step)
        who = render.safe(m.author_name or m.author, 80)
        if m.author_name and m.author_name != m.author:
            who += f" ({render.safe(m.author, 80)})"
        quoted = ", ".join(render.question_link(render.safe(room, 100), render.safe(mid, 100))
                           for room, mid in targets[:_MAX_QUOTED])
        if len(targets) > _MAX_QUOTED:
            quoted += f", +{len(targets) - _MAX_QUOTED}"
        step_text = render.text("step_" + step, lang, minutes=_num(esc.timeout_minutes))
        outcome = (render.text("did", lang, step=step_text, n=n) if enforce
                   else render.text("would", lang, step=step_text, n=n))
        text = render.text("report", lang, who=who, what="; ".join(_describe(h, lang) for h in hits),
                     messages=quoted or "-", outcome=outcome)
        if strict:
            text += " " + render.text("strict_note", lang)
        actions.append(Report(room=view.moderators_room or m.room, reply_to=m.id, text=text, **base))
        return actions

    def _count_hit(self, community: str, member: str, room: str, t: datetime, now: datetime) -> list[Action]:
        view = self._settings_for(community, None)
        r = view.guard.raid
        raid = self._raids.get(community)
        if raid is not None:
            raid.last = t
        if not r.enabled:
            return []
        q = self._hits.setdefault(community, deque())
        q.append((t, member))
        cutoff = t - timedelta(minutes=r.hit_minutes)
        while q and q[0][0] <= cutoff:
            q.popleft()
        if raid is not None:
            return []
        members = {who for _, who in q}
        if len(members) < r.hit_members:
            return []
        why = render.text("why_hits", view.language, n=len(members), minutes=_num(r.hit_minutes))
        return [self._start_raid(view, community, room, t, now, why)]

    # -- raid mode -----------------------------------------------------------------------------------------------

    def _is_recent_in_raid(self, community: str, joined: datetime, t: datetime, gs: GuardSettings) -> bool:
        if community not in self._raids:
            return False
        return t - joined < timedelta(minutes=gs.raid.recent_join_minutes)

    def _start_raid(self, view: RoomView, community: str, room: str | None, t: datetime, now: datetime,
                    why: str) -> Action:
        self._raids[community] = _Raid(t, t, room)
        self.stats["raid"] += 1
        r = view.guard.raid
        log.warning("raid mode on in %s: %s", community, why)
        text = render.text("raid_start", view.language, why=why, recent=_num(r.recent_join_minutes),
                     quiet=_num(r.quiet_minutes), prefix=self.prefix)
        return self._raid_report(view, community, room, now, "raid", text)

    def _expire(self, community: str, t: datetime, now: datetime) -> list[Action]:
        raid = self._raids.get(community)
        if raid is None:
            return []
        view = self._settings_for(community, None)
        quiet = view.guard.raid.quiet_minutes
        if t - raid.last < timedelta(minutes=quiet):
            return []
        del self._raids[community]
        log.warning("raid mode over in %s after %s quiet minutes", community, _num(quiet))
        text = render.text("end_quiet", view.language, quiet=_num(quiet))
        return [self._raid_report(view, community, raid.room, now, "raid_end", text)]

    def _raid_report(self, view: RoomView, community: str, room: str | None, now: datetime, reason: str,
                     text: str) -> Report:
        return Report(ts=now, community=community, room=view.moderators_room or room, kind="guard", reason=reason,
                      text=text)

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _rules(self, gs: GuardSettings) -> _Rules:
        found = self._cache.get(id(gs))
        if found is not None and found.settings is gs:
            return found
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        found = self._cache[id(gs)] = _Rules(
            gs, _RuleSet(rules_for(gs)), _RuleSet(rules_for(gs.stricter())), gs.horizon(),
            timedelta(minutes=max(gs.invite_link.new_member_minutes, gs.raid.recent_join_minutes)),
            timedelta(minutes=gs.escalation.window_minutes),
        )
        self._keep = max(self._keep, found.horizon)
        self._keep_joins = max(self._keep_joins, found.join_memory)
        self._keep_strikes = max(self._keep_strikes, found.strike_window)
        return found

    def _prune(self, t: datetime) -> None:
        """Drop a few members idle for longer than any rule looks back, and a few joins too old to matter.

        Every join and, once `_prune_at` has come, a message lead here; this notes when the oldest member and the
        oldest join fall due, so that until then messages skip it. That time is reset when the oldest member
        writes again or entries go otherwise (`forget`, `_sweep`); joins are added only by `on_join`, which always
        comes here. (The keeps only grow, which can make the time early, never late.)
        """
        members, idle = self._members, t - self._keep
        members_due = _EARLIEST  # after _PRUNE_STEP drops, more may be idle: look again at the next message
        for _ in range(_PRUNE_STEP):
            if not members:
                members_due = _NEVER  # until a member writes
                break
            key = next(iter(members))
            last = members[key][-1][TS]
            if last > idle:
                self._oldest_member, members_due = key, last + self._keep
                break
            del members[key]
            self._spent.pop(key, None)
        joined, old = self._joined, t - self._keep_joins
        joins_due = _EARLIEST
        for _ in range(_PRUNE_STEP):
            if not joined:
                joins_due = _NEVER  # until a join
                break
            key = next(iter(joined))
            at = joined[key]
            if at > old:
                joins_due = at + self._keep_joins
                break
            del joined[key]
        self._prune_at = min(members_due, joins_due)

    def _sweep(self, t: datetime) -> None:
        """Drop small state no rule needs any more: old strikes, ended timeouts, old hit windows, and catch up
        on the pruning of members and joins after a lull."""
        self._next_sweep = t + _SWEEP_EVERY
        idle, old = t - self._keep, t - self._keep_joins
        for _ in range(_SWEEP_CATCH_UP):
            if not self._members or next(iter(self._members.values()))[-1][TS] > idle:
                break
            self._spent.pop(self._members.popitem(last=False)[0], None)
        for _ in range(_SWEEP_CATCH_UP):
            if not self._joined or next(iter(self._joined.values())) > old:
                break
            self._joined.popitem(last=False)
        self._prune_at = _EARLIEST  # the oldest ones may be gone
        for key in [k for k, until in self._quiet.items() if until <= t]:
            del self._quiet[key]
        self.strikes.prune(t - self._keep_strikes)
        day_ago = t - timedelta(days=1)
        for community in [c for c, q in self._hits.items() if not q or q[-1][0] <= day_ago]:
            del self._hits[community]


def _mentioned(m: Message) -> tuple[str, ...]:
    """The distinct people `m` mentions, its author excluded."""
    if not m.mentions:
        return ()
    mentions = tuple(dict.fromkeys(m.mentions))
    return tuple(x for x in mentions if x != m.author) if m.author in mentions else mentions


def _unique(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(items))


def _num(x: float) -> str:
    return f"{x:g}"


def _describe(h: Hit, lang: str) -> str:
    key = f"hit_{h.rule}" + (f"_{h.form}" if h.form else "")
    return render.text(key, lang, count=h.count, limit=h.limit, seconds=_num(h.seconds))


