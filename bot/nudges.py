"""Nudge policy: adaptive delays, quiet hours, helper ranking and ping budgets. Pure; time comes in as `now`."""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from bot.config import NudgeSettings, QuietHours, Settings
from bot.model import HelpEdge, SentPing

#: Weights of the help history when ranking helpers: links are meant to be reciprocal, so a candidate whom the
#: asker helped before is asked first, then one who helped the asker, then the room's regular helpers.
W_ASKER_HELPED = 3.0
W_HELPED_ASKER = 2.0
W_ROOM_HELP = 1.0


def quantile(samples: Sequence[float], q: float, *, ordered: bool = False) -> float:
    """The q-quantile of `samples` by linear interpolation (`ordered`: they are already sorted, ascending)."""
    ordered_samples = samples if ordered else sorted(samples)
    if not ordered_samples:
        raise ValueError("quantile of no samples")
    pos = (len(ordered_samples) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered_samples[lo] + (ordered_samples[hi] - ordered_samples[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Ladder:
    """Delays after the question for each level."""

    level1: timedelta
    level2: timedelta
    level3: timedelta

    def delay(self, level: int) -> timedelta:
        return (self.level1, self.level2, self.level3)[level - 1]


def ladder_for(settings: NudgeSettings, first_answer_seconds: Sequence[float], *, ordered: bool = False) -> Ladder:
    """Delays that follow the room's own time to first answer, within the configured floors and ceilings."""
    l1 = float(settings.level1_floor_minutes)
    l2 = float(settings.level2_floor_minutes)
    if len(first_answer_seconds) >= settings.min_samples:
        ordered_samples = first_answer_seconds if ordered else sorted(first_answer_seconds)
        l1 = max(l1, quantile(ordered_samples, settings.level1_quantile, ordered=True) / 60)
        l2 = max(l2, quantile(ordered_samples, settings.level2_quantile, ordered=True) / 60)
    l1 = min(l1, settings.level1_ceiling_minutes)
    l2 = min(max(l2, l1), settings.level2_ceiling_minutes)
    l3 = max(float(settings.level3_minutes), l2)
    return Ladder(timedelta(minutes=l1), timedelta(minutes=l2), timedelta(minutes=l3))


class AnswerTimes:
    """Each room's recent times to first answer, and the ladder they give; a cache of the question rows.

    A room's samples are (re)loaded from storage when first needed and every tenth of `history_days` after
    that, so the room's pace survives a restart and answers older than `history_days` stop counting; answers
    seen in between are added as they come. Keeps at most `maxlen` samples per room (the latest).
    """

    def __init__(self, maxlen: int = 200) -> None:
        self.maxlen = maxlen
        self._samples: dict[tuple[str, str], deque[float]] = {}
        #: The same samples kept sorted, so that a new ladder (after every first answer) needs no sort.
        self._sorted: dict[tuple[str, str], list[float]] = {}
        self._loaded_at: dict[tuple[str, str], datetime] = {}
        self._ladders: dict[tuple[str, str], Ladder] = {}

    def stale(self, room: tuple[str, str], now: datetime, history_days: float) -> bool:
        """Should the room's samples be (re)loaded from storage?"""
        loaded = self._loaded_at.get(room)
        return loaded is None or now - loaded >= timedelta(days=history_days / 10)

    def load(self, room: tuple[str, str], seconds: Iterable[float], now: datetime) -> None:
        """Replace the room's samples with those read from storage (oldest first)."""
        samples = self._samples[room] = deque(seconds, maxlen=self.maxlen)
        self._sorted[room] = sorted(samples)
        self._loaded_at[room] = now
        self._ladders.pop(room, None)

    def add(self, room: tuple[str, str], seconds: float) -> None:
        """A question of the room got its first answer after `seconds`."""
        samples = self._samples.get(room)
        if samples is None:
            samples = self._samples[room] = deque(maxlen=self.maxlen)
            self._sorted[room] = []
        ordered = self._sorted[room]
        if len(samples) == self.maxlen:
            del ordered[bisect_left(ordered, samples[0])]  # the oldest leaves the deque below
        samples.append(seconds)
        insort(ordered, seconds)
        self._ladders.pop(room, None)

    def ladder(self, room: tuple[str, str], settings: NudgeSettings) -> Ladder:
        """The room's ladder under `settings` (cached until a sample or the settings change)."""
        found = self._ladders.get(room)
        if found is None:
            found = self._ladders[room] = ladder_for(settings, self._sorted.get(room, ()), ordered=True)
        return found

    def settings_changed(self) -> None:
        """Floors, ceilings or quantiles may have changed: recompute every ladder."""
        self._ladders.clear()


@cache
def _parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, zone: str, quiet: QuietHours) -> datetime | None:
    """If `now` falls in the community's quiet hours, the UTC instant they end; else None. DST-safe."""
    if not quiet.enabled or quiet.start == quiet.end:
        return None
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    start, end = _parse_hhmm(quiet.start), _parse_hhmm(quiet.end)
    t = local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if (start < end or t < end) else local.date() + timedelta(days=1)
    # Build the wall-clock end in the zone, then normalise: a wall time skipped by DST moves forward.
    wall = datetime.combine(day, end, tzinfo=tz)
    return datetime.fromtimestamp(wall.timestamp(), tz=now.tzinfo)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ranked helper with the reasons lien will show them."""

    member: str
    score: float
    reasons: tuple[str, ...]


def rank_helpers(
    candidates: Iterable[str],
    asker: str,
    room: str,
    edges: Iterable[HelpEdge],
    now: datetime,
    half_life_days: float,
    room_help: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Candidate]:
    """Candidates ranked by decayed help history with the asker first, then recent help in the room.

    `edges` are the help edges to consider. With `room_help` (each member's decayed help given in the room at
    `now`, from `RoomHelp.scores`), `edges` need only be those between the asker and the candidates.
    Reason codes: `asker_helped` (the asker helped them), `helped_asker`, `room_helper`, `opted_in`.
    Ties break on member id so the choice is deterministic. With `limit`, only the first `limit` are returned.
    """
    pool = set(candidates)
    pool.discard(asker)
    scores: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    lam = math.log(2) / (half_life_days * 86400)
    for e in edges:
        age = max((now - e.ts).total_seconds(), 0.0)
        w = math.exp(-lam * age)
        if e.helper == asker and e.asker in pool:
            scores[e.asker][0] += w
        elif e.asker == asker and e.helper in pool:
            scores[e.helper][1] += w
            if room_help is not None and e.room == room:
                scores[e.helper][2] -= w  # counted above: the room score is for help given to others
        if room_help is None and e.room == room and e.helper in pool and e.helper != asker and e.asker != asker:
            scores[e.helper][2] += w
    if room_help is not None:
        for member in pool:
            r = room_help.get(member)
            if r:
                scores[member][2] += r
    zero = (0.0, 0.0, 0.0)
    order = [
        (-(W_ASKER_HELPED * a + W_HELPED_ASKER * h + W_ROOM_HELP * max(r, 0.0)), member)
        for member in pool
        for a, h, r in (scores.get(member, zero),)
    ]
    top = heapq.nsmallest(limit, order) if limit is not None and limit < len(order) else sorted(order)
    ranked: list[Candidate] = []
    for neg, member in top:
        a, h, r = scores.get(member, zero)
        reasons = tuple(
            code for code, v in (("asker_helped", a), ("helped_asker", h), ("room_helper", r)) if v > _NOISE
        ) or ("opted_in",)
        ranked.append(Candidate(member, -neg, reasons))
    return ranked


#: Scores below this are rounding left-overs (a room score minus the same help to the asker), not history.
_NOISE = 1e-9


class RoomHelp:
    """Per room, the help each member gave there, decayed with the half-life: a cache of the help-edge rows.

    Loaded once per room from storage (the edges of the last six half-lives), then kept current with the edges
    the engine records, so that ranking helpers costs a lookup per candidate instead of a scan of the room's
    history. Each member's score is kept as its value at a reference time; decay is applied when read.
    """

    def __init__(self) -> None:
        #: room -> (decay rate per second it was built with, member -> (score, at))
        self._rooms: dict[tuple[str, str], tuple[float, dict[str, tuple[float, datetime]]]] = {}

    @staticmethod
    def _rate(half_life_days: float) -> float:
        return math.log(2) / (half_life_days * 86400)

    def loaded(self, room: tuple[str, str], half_life_days: float) -> bool:
        """Is the room cached (with this half-life)?"""
        found = self._rooms.get(room)
        return found is not None and found[0] == self._rate(half_life_days)

    def load(self, room: tuple[str, str], edges: Iterable[HelpEdge], half_life_days: float) -> None:
        """Build the room's scores from its help edges (those of the room, in any order)."""
        self._rooms[room] = (self._rate(half_life_days), {})
        for e in edges:
            self.add(e)

    def add(self, edge: HelpEdge) -> None:
        """Count a new help edge, if its room is cached (otherwise the next load reads it from storage)."""
        found = self._rooms.get((edge.community, edge.room))
        if found is None:
            return
        lam, members = found
        old = members.get(edge.helper)
        if old is None:
            members[edge.helper] = (1.0, edge.ts)
        elif edge.ts >= old[1]:
            members[edge.helper] = (1.0 + old[0] * math.exp(-lam * (edge.ts - old[1]).total_seconds()), edge.ts)
        else:
            members[edge.helper] = (old[0] + math.exp(-lam * (old[1] - edge.ts).total_seconds()), old[1])

    def scores(self, room: tuple[str, str], members: Iterable[str], now: datetime) -> dict[str, float]:
        """The decayed scores at `now` of those `members` who helped in the room."""
        found = self._rooms.get(room)
        if found is None:
            return {}
        lam, cached = found
        out: dict[str, float] = {}
        for m in members:
            got = cached.get(m)
            if got is not None:
                out[m] = got[0] * math.exp(-lam * max((now - got[1]).total_seconds(), 0.0))
        return out

    def forget(self, community: str, member: str) -> None:
        """Drop the member from every room of the community."""
        for (c, _room), (_lam, members) in self._rooms.items():
            if c == community:
                members.pop(member, None)


#: The longest window `PingBudget.allows` looks back over.
BUDGET_WINDOW = timedelta(days=7)


class PingBudget:
    """How often each member may be pinged: per day and per week, halved after two ignored pings in a row.

    A cache of the sent level-2 nudge rows: `load` rebuilds it after a restart, so a restart promises no more.
    """

    def __init__(self) -> None:
        self._pings: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._ignored: dict[tuple[str, str], int] = defaultdict(int)

    def allows(self, community: str, member: str, now: datetime, per_day: int, per_week: int) -> bool:
        key = (community, member)
        pings = self._pings.get(key)
        if not pings:
            return per_day > 0 and per_week > 0
        while pings and now - pings[0] > BUDGET_WINDOW:
            pings.popleft()
        if self._ignored.get(key, 0) >= 2:
            # Halved rate: a day's budget stretches over two days, a week's is halved (rounded down, min 1).
            day_window, per_day, per_week = timedelta(days=2), per_day, max(per_week // 2, 1)
        else:
            day_window = timedelta(days=1)
        in_day = sum(1 for t in pings if now - t < day_window)
        return in_day < per_day and len(pings) < per_week

    def record(self, community: str, member: str, now: datetime) -> None:
        self._pings[(community, member)].append(now)

    def outcome(self, community: str, member: str, *, helped: bool) -> None:
        """After a ping: did the member answer? Two ignored pings in a row halve their rate; helping resets."""
        key = (community, member)
        if helped:
            self._ignored.pop(key, None)
        else:
            self._ignored[key] += 1

    def forget(self, community: str, member: str) -> None:
        self._pings.pop((community, member), None)
        self._ignored.pop((community, member), None)

    def load(self, pings: Iterable[SentPing], now: datetime) -> dict[tuple[str, str], tuple[str, ...]]:
        """Replay sent pings read from storage (oldest first); returns the unsettled ones, per question.

        Pings of the last week count against the budgets; a settled question gives each member it pinged an
        outcome (helped if they answered it or were credited on it), in the order of the pings. The outcome of an
        unsettled question is still to come: the caller keeps those pings, as it does for the ones it sends.
        """
        unsettled: dict[tuple[str, str], tuple[str, ...]] = {}
        for p in sorted(pings, key=lambda p: p.ts):
            for member in p.mentioned:
                if now - p.ts <= BUDGET_WINDOW:
                    self.record(p.community, member, p.ts)
                if p.settled:
                    self.outcome(p.community, member, helped=member in p.helpers)
            if not p.settled:
                unsettled[(p.community, p.question)] = p.mentioned
        return unsettled


def longest_cooldown(settings: Settings) -> timedelta:
    """The longest asker cooldown of any community or room of `settings` (how far back to read reminders)."""
    return timedelta(days=max(rs.nudges.asker_cooldown_days for rs in settings.every_room()))


class JoinWave:
    """Counts joins per community in a sliding window; `hit` says whether this join completes a wave."""

    def __init__(self) -> None:
        self._joins: dict[str, deque[datetime]] = defaultdict(deque)

    def hit(self, community: str, ts: datetime, joins: int, minutes: int) -> bool:
        q = self._joins[community]
        q.append(ts)
        horizon = ts - timedelta(minutes=minutes)
        while q and q[0] < horizon:
            q.popleft()
        return len(q) >= joins
