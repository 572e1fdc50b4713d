"""Nudge policy: adaptive delays, quiet hours, helper ranking and ping budgets. Pure; time comes in as `now`."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import NudgeSettings, QuietHours
from bot.model import HelpEdge

#: Weights of the help history when ranking helpers: links are meant to be reciprocal, so a candidate whom the
#: asker helped before is asked first, then one who helped the asker, then the room's regular helpers.
W_ASKER_HELPED = 3.0
W_HELPED_ASKER = 2.0
W_ROOM_HELP = 1.0


def quantile(samples: Sequence[float], q: float) -> float:
    """The q-quantile of `samples` by linear interpolation (samples need not be sorted)."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("quantile of no samples")
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Ladder:
    """Delays after the question for each level."""

    level1: timedelta
    level2: timedelta
    level3: timedelta

    def delay(self, level: int) -> timedelta:
        return (self.level1, self.level2, self.level3)[level - 1]


def ladder_for(settings: NudgeSettings, first_answer_seconds: Sequence[float]) -> Ladder:
    """Delays that follow the room's own time to first answer, within the configured floors and ceilings."""
    l1 = float(settings.level1_floor_minutes)
    l2 = float(settings.level2_floor_minutes)
    if len(first_answer_seconds) >= settings.min_samples:
        l1 = max(l1, quantile(first_answer_seconds, settings.level1_quantile) / 60)
        l2 = max(l2, quantile(first_answer_seconds, settings.level2_quantile) / 60)
    l1 = min(l1, settings.level1_ceiling_minutes)
    l2 = min(max(l2, l1), settings.level2_ceiling_minutes)
    l3 = max(float(settings.level3_minutes), l2)
    return Ladder(timedelta(minutes=l1), timedelta(minutes=l2), timedelta(minutes=l3))


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
) -> list[Candidate]:
    """Candidates ranked by decayed help history with the asker first, then recent help in the room.

    Reason codes: `asker_helped` (the asker helped them), `helped_asker`, `room_helper`, `opted_in`.
    Ties break on member id so the choice is deterministic.
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
        if e.room == room and e.helper in pool and e.helper != asker:
            scores[e.helper][2] += w
    ranked: list[Candidate] = []
    for member in pool:
        a, h, r = scores.get(member, (0.0, 0.0, 0.0))
        reasons = tuple(
            code for code, v in (("asker_helped", a), ("helped_asker", h), ("room_helper", r)) if v > 0
        ) or ("opted_in",)
        ranked.append(Candidate(member, W_ASKER_HELPED * a + W_HELPED_ASKER * h + W_ROOM_HELP * r, reasons))
    ranked.sort(key=lambda c: (-c.score, c.member))
    return ranked


class PingBudget:
    """How often each member may be pinged: per day and per week, halved after two ignored pings in a row."""

    def __init__(self) -> None:
        self._pings: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._ignored: dict[tuple[str, str], int] = defaultdict(int)

    def allows(self, community: str, member: str, now: datetime, per_day: int, per_week: int) -> bool:
        key = (community, member)
        pings = self._pings.get(key)
        if not pings:
            return per_day > 0 and per_week > 0
        while pings and now - pings[0] > timedelta(days=7):
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
