"""The nudge policy on virtual time: adaptive ladders, quiet hours across DST, ping budgets, reciprocity, consent.

Pure functions of `bot.nudges` are tested directly; the rest drives the real engine through the console test
driver (`TestBot`) on in-memory fakes, and asserts on what lien actually sent and when.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import NudgeSettings, QuietHours, Settings
from bot.model import HelpEdge, NudgeState, SentPing
from bot.nudges import AnswerTimes, PingBudget, RoomHelp, ladder_for, longest_cooldown, quiet_until, rank_helpers
from tests.bot_driver import START, TestBot
from tests.fakes import FakeStore

C = "console"


def _settings(**nudges: Any) -> Settings:
    return Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}, **nudges}})


async def ask(bot: TestBot, who: str, text: str, room: str | None = None) -> str:
    """`who` posts `text` (in `room`, if given); returns the message id."""
    await bot.lines(f"/as {who}" + (f"\n/room {room}" if room else "") + f"\n{text}")
    return bot.id(f"m{bot.adapter._count}")


def label(bot: TestBot, mid: str) -> str:
    return bot.adapter._labels[mid]


def nudges_for(bot: TestBot, qid: str) -> list[int]:
    return [a.level for a in bot.of("nudge") if a.question == qid]  # type: ignore[misc]


def first_nudge_delay(bot: TestBot, qid: str) -> timedelta:
    q = bot.engine.tracker.get(C, qid)
    assert q is not None
    [l1] = [a for a in bot.of("nudge", 1) if a.question == qid]
    return l1.ts - q.asked_ts


# -- ladder: adaptive delays, floors and ceilings ---------------------------------------------------------------

MINUTE = 60.0


@pytest.mark.parametrize(
    "samples, level1, level2",
    [
        ([], 30, 120),
        ([5 * MINUTE] * 9, 30, 120),
        ([5 * MINUTE] * 10, 30, 120),
        ([float(m * MINUTE) for m in range(10, 210, 20)], 145, 172),
        ([3 * 86400.0] * 10, 1440, 4320),
    ],
    ids=["no-history-floors", "too-few-samples-floors", "fast-room-floors", "slow-room-quantiles",
         "very-slow-room-ceilings"],
)
def test_ladder_follows_the_rooms_answer_times_within_floors_and_ceilings(
    samples: list[float], level1: float, level2: float
) -> None:
    ladder = ladder_for(NudgeSettings(), samples)
    assert ladder.level1 == pytest.approx(timedelta(minutes=level1), abs=timedelta(minutes=1))
    assert ladder.level2 == pytest.approx(timedelta(minutes=level2), abs=timedelta(minutes=1))
    assert ladder.level1 <= ladder.level2 <= ladder.level3
    assert ladder.level3 >= timedelta(minutes=NudgeSettings().level3_minutes)


@given(st.lists(st.floats(min_value=0, max_value=10 * 86400), max_size=60), st.integers(1, 12))
def test_a_rooms_ladder_is_the_ladder_of_its_latest_samples(delays: list[float], maxlen: int) -> None:
    # AnswerTimes keeps its samples sorted as they come and go; the ladder must be that of the latest `maxlen`.
    times, room, settings = AnswerTimes(maxlen), ("c", "r"), NudgeSettings(min_samples=1)
    times.load(room, delays[:3], START)
    for d in delays[3:]:
        times.add(room, d)
    assert times.ladder(room, settings) == ladder_for(settings, delays[-maxlen:])


async def _room_history(bot: TestBot, room: str, answer_after: str, n: int) -> None:
    """`n` questions in `room`, each answered after `answer_after` by someone else."""
    for i in range(n):
        q = await ask(bot, f"asker-{room}-{i}", f"How do I set up the {room} build cache number {i}?", room)
        await bot.wait(answer_after)
        await bot.lines(f"/as helper-{room}\n/reply {label(bot, q)} Point CACHE_DIR at the shared volume.")
        await bot.wait("30m")


async def test_quiet_room_waits_longer_than_a_busy_room_before_nudging() -> None:
    bot = await TestBot(FakeStore(), _settings(min_samples=3, asker_cooldown_days=0)).start()
    await _room_history(bot, "busy", "4m", 4)
    await _room_history(bot, "quiet", "3h", 4)
    busy = await ask(bot, "alice", "Where does the gateway keep its TLS certificates?", "busy")
    quiet = await ask(bot, "bob", "Where does the scheduler keep its lock files on disk?", "quiet")
    await bot.wait("1d")
    assert first_nudge_delay(bot, busy) == timedelta(minutes=30)  # fast answers: the floor
    assert first_nudge_delay(bot, quiet) == timedelta(hours=3)  # the room's own pace


async def test_room_pace_is_capped_by_the_ceiling() -> None:
    bot = await TestBot(FakeStore(), _settings(min_samples=3, asker_cooldown_days=0,
                                               level1_ceiling_minutes=240)).start()
    await _room_history(bot, "slow", "10h", 3)
    q = await ask(bot, "alice", "Where does the gateway keep its TLS certificates?", "slow")
    await bot.wait("1d")
    assert first_nudge_delay(bot, q) == timedelta(hours=4)


async def test_room_pace_survives_a_restart() -> None:
    store = FakeStore()
    settings = _settings(min_samples=3, asker_cooldown_days=0)
    bot = await TestBot(store, settings).start()
    await _room_history(bot, "quiet", "3h", 4)
    again = TestBot(store, settings, start=bot.clock.now())
    again.adapter.run_id = "t2"  # new message ids: the store holds the first run's
    await again.start()
    q = await ask(again, "alice", "Where does the scheduler keep its lock files on disk?", "quiet")
    await again.wait("1d")
    assert first_nudge_delay(again, q) == timedelta(hours=3)


async def test_answer_times_older_than_history_days_no_longer_count() -> None:
    bot = await TestBot(FakeStore(), _settings(min_samples=3, asker_cooldown_days=0, history_days=7)).start()
    await _room_history(bot, "quiet", "3h", 4)
    await bot.wait("8d")
    q = await ask(bot, "alice", "Where does the scheduler keep its lock files on disk?", "quiet")
    await bot.wait("1d")
    assert first_nudge_delay(bot, q) == timedelta(minutes=30)


# -- quiet hours in the community's time zone, across DST -----------------------------------------------------

PARIS_QUIET = QuietHours(enabled=True, start="22:00", end="08:00")


@pytest.mark.parametrize(
    "now, expected",
    [
        # Saturday 28 March 2026, 23:30 CET (UTC+1); clocks go forward that night: 08:00 CEST is 06:00 UTC.
        (datetime(2026, 3, 28, 22, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Sunday 29 March, 02:30 UTC = 04:30 CEST, after the jump.
        (datetime(2026, 3, 29, 2, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Saturday 24 October 2026, 23:30 CEST (UTC+2); clocks go back that night: 08:00 CET is 07:00 UTC.
        (datetime(2026, 10, 24, 21, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        # Sunday 25 October, 01:30 UTC = 02:30 CET, the repeated hour's second pass.
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        # 07:59 local on an ordinary winter day.
        (datetime(2026, 1, 14, 6, 59, tzinfo=UTC), datetime(2026, 1, 14, 7, 0, tzinfo=UTC)),
    ],
    ids=["march-before-jump", "march-after-jump", "october-before-fallback", "october-repeated-hour", "winter"],
)
def test_quiet_hours_end_at_local_morning_across_dst(now: datetime, expected: datetime) -> None:
    assert quiet_until(now, "Europe/Paris", PARIS_QUIET) == expected


@pytest.mark.parametrize(
    "now",
    [datetime(2026, 3, 29, 6, 0, tzinfo=UTC), datetime(2026, 10, 25, 19, 59, tzinfo=UTC),
     datetime(2026, 7, 1, 12, 0, tzinfo=UTC)],
    ids=["march-08:00-local", "october-20:59-local", "summer-noon"],
)
def test_no_wait_outside_quiet_hours(now: datetime) -> None:
    assert quiet_until(now, "Europe/Paris", PARIS_QUIET) is None


def test_quiet_hours_ending_in_the_skipped_hour_end_when_the_clock_resumes() -> None:
    # 01:00-02:30 local; 02:30 does not exist on 29 March 2026 in Paris: the wait ends at 03:00 CEST at the latest.
    quiet = QuietHours(enabled=True, start="01:00", end="02:30")
    end = quiet_until(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "Europe/Paris", quiet)
    assert end is not None
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) <= end <= datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert quiet_until(end, "Europe/Paris", quiet) is None


@pytest.mark.parametrize(
    "asked, nudged",
    [
        # Level 1 due at 23:30 CET on the night clocks go forward: sent at 08:00 CEST.
        (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Level 1 due at 23:30 CEST on the night clocks go back: sent at 08:00 CET.
        (datetime(2026, 10, 24, 21, 0, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
    ],
    ids=["last-sunday-of-march", "last-sunday-of-october"],
)
async def test_nudge_due_in_quiet_hours_waits_for_the_local_morning(asked: datetime, nudged: datetime) -> None:
    settings = Settings.model_validate({"communities": {C: {"timezone": "Europe/Paris"}}})
    bot = await TestBot(FakeStore(), settings, start=asked).start()
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("12h")
    [l1] = bot.of("nudge", 1)
    assert l1.question == q and l1.ts == nudged


# -- ping budgets ----------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_budget_allows_one_ping_a_day_and_three_a_week() -> None:
    budget = PingBudget()
    allowed = []
    for hours in range(0, 7 * 24, 6):
        now = T0 + timedelta(hours=hours)
        if budget.allows(C, "bob", now, 1, 3):
            budget.record(C, "bob", now)
            allowed.append(hours)
    assert allowed == [0, 24, 48]
    assert budget.allows(C, "bob", T0 + timedelta(days=7, hours=1), 1, 3)


def test_two_ignored_pings_halve_the_rate_and_helping_resets_it() -> None:
    budget = PingBudget()
    for day in (0, 1):
        budget.record(C, "bob", T0 + timedelta(days=day))
        budget.outcome(C, "bob", helped=False)
    assert not budget.allows(C, "bob", T0 + timedelta(days=2), 1, 6)  # a day's ping now stretches over two days
    assert budget.allows(C, "bob", T0 + timedelta(days=3), 1, 6)
    budget.record(C, "bob", T0 + timedelta(days=3))
    assert not budget.allows(C, "bob", T0 + timedelta(days=4), 1, 6)  # and the week's budget is halved: 3
    budget.outcome(C, "bob", helped=True)
    assert budget.allows(C, "bob", T0 + timedelta(days=4), 1, 6)


def test_one_ignored_ping_does_not_halve_the_rate() -> None:
    budget = PingBudget()
    budget.record(C, "bob", T0)
    budget.outcome(C, "bob", helped=False)
    assert budget.allows(C, "bob", T0 + timedelta(days=1), 1, 3)


HELPERS = """
/as bob
!lien helper on
Morning all, I am around today if you need a hand with builds.
"""


def mentioned(bot: TestBot, member: str) -> list[datetime]:
    return [a.ts for a in bot.of("nudge", 2) if member in a.mentions]


async def test_engine_pings_a_helper_at_most_once_a_day_and_three_times_a_week() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0)).start()
    await bot.lines(HELPERS)
    for i in range(16):  # a question every 12 hours; bob answers each one he is asked about
        q = await ask(bot, f"asker{i}", f"How do I pin the version of tool number {i} in the lockfile?")
        await bot.wait("2h")
        if any(a.question == q for a in bot.of("nudge", 2) if "bob" in a.mentions):
            await bot.lines(f"/as bob\n/reply {label(bot, q)} Add it to constraints.txt with an exact version.")
        await bot.wait("10h")
    pings = mentioned(bot, "bob")
    # Questions every 12 h, level 2 two hours later: one ping a day for three days, then nothing until the first
    # ping is more than a week old.
    assert pings == [START + timedelta(hours=2), START + timedelta(days=1, hours=2),
                     START + timedelta(days=2, hours=2), START + timedelta(days=7, hours=14)]
    for t in pings:
        assert sum(1 for u in pings if t <= u < t + timedelta(days=1)) == 1
        assert sum(1 for u in pings if t <= u < t + timedelta(days=7)) <= 3


async def test_engine_halves_the_rate_of_a_helper_who_ignored_two_pings_and_resets_it_after_help() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0, pings_per_week=7)).start()
    await bot.lines(HELPERS)
    pinged_days = []
    for day in range(5):
        q = await ask(bot, f"asker{day}", f"Why does the deploy number {day} hang on the migration step?")
        await bot.wait("2h")
        if any(a.question == q for a in bot.of("nudge", 2) if "bob" in a.mentions):
            pinged_days.append(day)
        # Days 0 and 1: carol answers (bob ignored the ping); from day 3 bob answers.
        who = "carol" if day < 3 else "bob"
        await bot.lines(f"/as {who}\n/reply {label(bot, q)} The lock is held by a stale session; kill it.")
        await bot.wait("22h")
    assert pinged_days == [0, 1, 3, 4]


async def test_a_helper_whose_pings_went_unanswered_counts_as_ignoring_them() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0, pings_per_week=7)).start()
    await bot.lines(HELPERS)
    pinged_days = []
    for day in range(3):  # nobody answers: the questions go stale
        q = await ask(bot, f"asker{day}", f"Why does the deploy number {day} hang on the migration step?")
        await bot.wait("2h")
        if any(a.question == q for a in bot.of("nudge", 2) if "bob" in a.mentions):
            pinged_days.append(day)
        await bot.wait("22h")
    assert pinged_days == [0, 1]


# -- budgets and cooldowns across a restart ----------------------------------------------------------------------
# Regression (issue 3): they lived only in memory, so a restarted lien pinged people more often than promised.


async def restart(bot: TestBot, run: int) -> TestBot:
    """A new process on the same store, at the same time; the console keeps its labels so `/reply m3` still works."""
    again = TestBot(bot.engine.store, bot.settings, start=bot.clock.now())
    again.adapter.run_id = f"t{run}"  # new message ids: the store holds the earlier runs'
    for known in ("_ids", "_labels", "_rooms", "_threads"):
        getattr(again.adapter, known).update(getattr(bot.adapter, known))
    again.adapter._count = bot.adapter._count
    again.adapter.sent.extend(bot.sent)
    return await again.start()


def test_budget_rebuilt_from_sent_pings_counts_the_last_week_and_replays_outcomes_in_order() -> None:
    now = T0 + timedelta(days=10)
    pings = [  # given newest first: `load` orders them
        SentPing(C, "q4", now - timedelta(hours=3), ("bob",), settled=False),
        SentPing(C, "q3", now - timedelta(days=2), ("bob", "carol"), settled=True, helpers=frozenset({"carol"})),
        SentPing(C, "q2", now - timedelta(days=6), ("bob",), settled=True),
        SentPing(C, "q1", now - timedelta(days=9), ("bob", "carol"), settled=True, helpers=frozenset({"bob"})),
    ]
    budget = PingBudget()
    assert budget.load(pings, now) == {(C, "q4"): ("bob",)}  # its outcome is still to come
    # bob: three pings within the week (q2, q3, q4), and q2 then q3 ignored after helping on q1: halved rate.
    assert not budget.allows(C, "bob", now, 5, 4)
    assert not budget.allows(C, "bob", now + timedelta(hours=2), 5, 7)  # halved week: 3, all used
    assert budget.allows(C, "bob", now + timedelta(hours=2), 5, 8)
    budget.outcome(C, "bob", helped=True)  # the pending one: helping resets the rate
    assert budget.allows(C, "bob", now + timedelta(hours=2), 5, 4)
    # carol: q3 (within the week, helped); q1 is older than a week and counts no more.
    assert not budget.allows(C, "carol", now, 1, 1)
    assert budget.allows(C, "carol", now, 1, 2)
    assert budget.allows(C, "dave", now, 1, 3)


def test_longest_cooldown_looks_at_every_community_and_room() -> None:
    settings = Settings.model_validate({
        "nudges": {"asker_cooldown_days": 2},
        "communities": {"c1": {"nudges": {"asker_cooldown_days": 3},
                               "rooms": {"slow": {"nudges": {"asker_cooldown_days": 9}}}},
                        "c2": {"nudges": {"asker_cooldown_days": 0}}},
    })
    assert longest_cooldown(settings) == timedelta(days=9)
    assert longest_cooldown(Settings()) == timedelta(days=7)


async def test_ping_budget_holds_across_restarts() -> None:
    """The week of `test_engine_pings_a_helper_at_most_once_a_day_and_three_times_a_week`, restarted twice a day."""
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0)).start()
    await bot.lines(HELPERS)
    for i in range(16):
        q = await ask(bot, f"asker{i}", f"How do I pin the version of tool number {i} in the lockfile?")
        await bot.wait("2h")
        if any(a.question == q for a in bot.of("nudge", 2) if "bob" in a.mentions):
            await bot.lines(f"/as bob\n/reply {label(bot, q)} Add it to constraints.txt with an exact version.")
        await bot.wait("10h")
        bot = await restart(bot, i + 2)
    assert mentioned(bot, "bob") == [START + timedelta(hours=2), START + timedelta(days=1, hours=2),
                                     START + timedelta(days=2, hours=2), START + timedelta(days=7, hours=14)]


async def test_a_helper_pinged_then_restarted_is_not_pinged_again_the_same_day() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0)).start()
    await bot.lines(HELPERS)
    q1 = await ask(bot, "alice", "How do I pin the version of the linter in the lockfile?")
    await bot.wait("2h")
    assert "bob" in bot.of("nudge", 2)[-1].mentions
    bot = await restart(bot, 2)
    q2 = await ask(bot, "carol", "How do I pin the version of the formatter in the lockfile?")
    await bot.wait("3h")
    assert [a.mentions for a in bot.of("nudge", 2) if a.question == q2] == [()]  # nobody left to ask today
    assert q1 != q2


async def test_halved_rate_holds_across_a_restart_and_an_answer_after_it_resets_it() -> None:
    """`test_engine_halves_the_rate_of_a_helper_who_ignored_two_pings_and_resets_it_after_help`, restarted daily
    between each ping and its answer: the outcome of a ping sent before a restart still counts after it."""
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0, pings_per_week=7)).start()
    await bot.lines(HELPERS)
    pinged_days = []
    for day in range(6):
        q = await ask(bot, f"asker{day}", f"Why does the deploy number {day} hang on the migration step?")
        await bot.wait("2h")
        if any(a.question == q for a in bot.of("nudge", 2) if "bob" in a.mentions):
            pinged_days.append(day)
        bot = await restart(bot, day + 2)  # between the ping and its answer
        who = "carol" if day < 3 else "bob"
        await bot.lines(f"/as {who}\n/reply {label(bot, q)} The lock is held by a stale session; kill it.")
        await bot.wait("22h")
    # Days 0 and 1 ignored: day 2 skipped (a day's ping stretches over two days); bob helps from day 3: back to
    # one a day.
    assert pinged_days == [0, 1, 3, 4, 5]


async def test_asker_cooldown_holds_across_a_restart() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=7)).start()
    q1 = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("1h")
    assert nudges_for(bot, q1) == [1]
    bot = await restart(bot, 2)
    q2 = await ask(bot, "alice", "How can I rotate the deploy tokens without downtime?")
    q3 = await ask(bot, "dave", "How can I rotate the webhook secrets without downtime?")
    await bot.wait("1h")
    assert nudges_for(bot, q2) == []  # alice had her reminder less than 7 days ago, in another process
    assert nudges_for(bot, q3) == [1]
    await bot.wait("7d")
    bot = await restart(bot, 3)
    q4 = await ask(bot, "alice", "How can I rotate the database passwords without downtime?")
    await bot.wait("1h")
    assert nudges_for(bot, q4) == [1]


async def test_asker_cooldown_counts_from_when_a_late_reminder_went_out() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=7)).start()
    await bot.lines("/as mod\n/admin\n!lien pause")
    q1 = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("8d")
    await bot.lines("/as mod\n!lien resume")  # the reminder due 8 days ago goes out now
    await bot.wait("1m")
    assert nudges_for(bot, q1) == [1]
    bot = await restart(bot, 2)
    q2 = await ask(bot, "alice", "How can I rotate the deploy tokens without downtime?")
    await bot.wait("1h")
    assert nudges_for(bot, q2) == []


# -- reciprocity ranking and `!lien why` -----------------------------------------------------------------------

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _edge(helper: str, asker: str, days_ago: float, room: str = "general") -> HelpEdge:
    return HelpEdge(C, room, helper, asker, f"q-{helper}-{asker}-{days_ago}", "answer", NOW - timedelta(days=days_ago))


def test_reciprocity_ranks_those_the_asker_helped_then_those_who_helped_the_asker_then_room_helpers() -> None:
    edges = [
        _edge("alice", "carol", 1),  # the asker helped carol
        _edge("bob", "alice", 1),  # bob helped the asker
        _edge("dave", "erin", 1),  # dave helps in the room
        _edge("frank", "erin", 1, room="other"),  # frank helps elsewhere only
    ]
    ranked = rank_helpers(["bob", "carol", "dave", "frank", "alice"], "alice", "general", edges, NOW, 30)
    assert [c.member for c in ranked] == ["carol", "bob", "dave", "frank"]
    # bob's help to alice counts as such, not again as help in the room.
    assert [c.reasons for c in ranked] == [("asker_helped",), ("helped_asker",), ("room_helper",), ("opted_in",)]


def test_help_history_decays_with_a_30_day_half_life() -> None:
    edges = [_edge("alice", "carol", 60), _edge("dave", "erin", 1)]
    ranked = rank_helpers(["carol", "dave"], "alice", "general", edges, NOW, 30)
    # 3 x 2^-2 = 0.75 for carol, long ago; 1 x 2^(-1/30) ~ 0.98 for dave's recent help in the room.
    assert [c.member for c in ranked] == ["dave", "carol"]
    assert ranked[1].score == pytest.approx(0.75)
    assert ranked[0].score == pytest.approx(2 ** (-1 / 30))
    recent = rank_helpers(["carol", "dave"], "alice", "general", [_edge("alice", "carol", 20), edges[1]], NOW, 30)
    assert [c.member for c in recent] == ["carol", "dave"]


def test_cached_room_help_ranks_exactly_like_the_raw_edges() -> None:
    rng = random.Random(5)
    people = [f"m{i}" for i in range(12)]
    edges = [HelpEdge(C, rng.choice(["general", "dev"]), rng.choice(people), rng.choice(people), f"q{i}",
                      rng.choice(["answer", "credit"]), NOW - timedelta(days=rng.uniform(0, 120)))
             for i in range(300)]
    cache = RoomHelp()
    cache.load((C, "general"), [e for e in edges[:150] if e.room == "general"], 30)
    for e in edges[150:]:
        cache.add(e)  # later edges arrive one by one, in any order; those of other rooms are ignored
    pool = people[1:9]
    asker = people[0]
    direct = rank_helpers(pool, asker, "general", edges, NOW, 30)
    personal = [e for e in edges if asker in (e.helper, e.asker)]
    cached = rank_helpers(pool, asker, "general", personal, NOW, 30, room_help=cache.scores((C, "general"), pool, NOW))
    assert [(c.member, c.reasons) for c in cached] == [(c.member, c.reasons) for c in direct]
    assert [c.score for c in cached] == pytest.approx([c.score for c in direct])
    assert rank_helpers(pool, asker, "general", personal, NOW, 30, room_help=cache.scores((C, "general"), pool, NOW),
                        limit=3) == cached[:3]
    cache.forget(C, direct[0].member)
    assert direct[0].member not in cache.scores((C, "general"), pool, NOW)


def test_ranking_ties_break_on_member_id() -> None:
    ranked = rank_helpers(["zoe", "adam", "mia"], "alice", "general", [], NOW, 30)
    assert [c.member for c in ranked] == ["adam", "mia", "zoe"]


RECIPROCITY = """
/as bob
!lien helper on
/as carol
!lien helper on
/as dave
!lien helper on
/as carol
How do I make the CI run only on the main branch?
/wait 3m
/as alice
/reply m4 Add a branches filter under on push in the workflow file.
/wait 2h
/as alice
Does anyone know why my docker build ignores the dockerignore file?
/wait 4m
/as bob
/reply m6 It must sit at the root of the build context.
/wait 2h
/as erin
Which port does the metrics exporter listen on by default?
/wait 4m
/as dave
/reply m8 9100, unless you set the listen address flag.
/wait 3h
"""


async def test_level2_mentions_helpers_in_reciprocity_order_and_why_explains_it() -> None:
    bot = await TestBot(FakeStore()).start()
    await bot.lines(RECIPROCITY)
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("3h")
    [l2] = bot.of("nudge", 2)
    assert l2.mentions == ("carol", "bob", "dave")
    await bot.lines("/as carol\n!lien why")
    why = bot.sent[-1].text
    assert "carol: alice helped you before" in why
    assert "bob: you helped alice before" in why
    assert "dave: you help often in this room" in why


# -- consent: helper per room or community, DMs ------------------------------------------------------------------


async def _active(bot: TestBot, member: str, rooms: tuple[str, ...]) -> None:
    for room in rooms:
        await bot.lines(f"/as {member}\n/room {room}\nHello, I am around in {room} this week.")


async def test_helper_in_one_room_is_mentioned_only_there_and_community_helper_everywhere() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0, pings_per_day=5, pings_per_week=20)).start()
    await _active(bot, "bob", ("general", "dev"))
    await _active(bot, "carol", ("general", "dev"))
    await bot.lines("/as bob\n/room general\n!lien helper on")  # this room only
    await bot.lines("/as carol\n/room dev\n!lien helper on all")  # the whole community
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?", "general")
    await ask(bot, "erin", "Why does the linker fail on arm64 with this flag set?", "dev")
    await bot.wait("3h")
    by_room = {a.room: set(a.mentions) for a in bot.of("nudge", 2)}
    assert by_room == {"general": {"bob", "carol"}, "dev": {"carol"}}


async def test_helper_off_stops_mentions() -> None:
    bot = await TestBot(FakeStore(), _settings(asker_cooldown_days=0, pings_per_day=5, pings_per_week=20)).start()
    await _active(bot, "bob", ("general",))
    await _active(bot, "carol", ("general",))
    await bot.lines("/as bob\n!lien helper on\n/as carol\n!lien helper on all\n!lien helper off all\n/as bob"
                    "\n!lien helper off")
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?", "general")
    await bot.wait("3h")
    [l2] = bot.of("nudge", 2)
    assert l2.mentions == ()


@pytest.mark.parametrize(
    "commands, private",
    [("", False), ("!lien dms on", True), ("!lien dms on\n!lien dms off", False),
     ("!lien dms on\n!lien optout", False)],
    ids=["default-no-dm", "dms-on", "dms-on-then-off", "dms-on-but-opted-out"],
)
async def test_level3_is_a_dm_only_when_the_asker_allowed_dms(commands: str, private: bool) -> None:
    bot = await TestBot(FakeStore()).start()
    if commands:
        await bot.lines(f"/as erin\n{commands}")
    q = await ask(bot, "erin", "Why does my build fail with a linker error on arm64?")
    await bot.wait("25h")
    [l3] = bot.of("nudge", 3)
    assert l3.question == q
    if private:
        assert (l3.name, l3.to, l3.room) == ("dm", "erin", None)
    else:
        assert (l3.name, l3.room, l3.reply_to) == ("reply", "general", q)


# -- cancellation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "after",
    [
        "/as carol\n/reply {q} Publish the new key first, then retire the old one.",
        "/as alice\n!lien solved",
        "/as alice\n!lien solved {qid}",
        "/as alice\n/delete {q}",
        "/as alice\n!lien not-a-question",
        "/as alice\n!lien not-a-question {qid}",
    ],
    ids=["answered", "solved", "solved-by-id", "deleted", "not-a-question", "not-a-question-by-id"],
)
async def test_pending_nudges_are_cancelled_when_the_question_is_settled(after: str) -> None:
    store = FakeStore()
    bot = await TestBot(store).start()
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("20m")
    assert [n.level for n in bot.engine.pending_for(C, q)] == [1]
    await bot.lines(after.format(q=label(bot, q), qid=q))
    await bot.wait("3d")
    assert nudges_for(bot, q) == []
    assert bot.engine.pending_for(C, q) == []
    assert {n.state for n in store.data.nudges.values() if n.question == q} == {NudgeState.CANCELLED}


async def test_later_levels_are_cancelled_when_answered_after_the_first_nudge() -> None:
    bot = await TestBot(FakeStore()).start()
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("40m")
    assert nudges_for(bot, q) == [1]
    await bot.lines(f"/as carol\n/reply {label(bot, q)} Publish the new key first, then retire the old one.")
    await bot.wait("3d")
    assert nudges_for(bot, q) == [1]
    assert bot.engine.pending_for(C, q) == []


async def test_withdrawing_someone_elses_question_changes_nothing() -> None:
    bot = await TestBot(FakeStore()).start()
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.lines(f"/as mallory\n!lien not-a-question {q}")
    await bot.wait("40m")
    assert nudges_for(bot, q) == [1]


# -- lost timers ---------------------------------------------------------------------------------------------------


async def test_reconcile_rearms_a_lost_timer_once_it_comes_within_the_look_ahead() -> None:
    bot = await TestBot(FakeStore()).start()
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("40m")
    [l2] = [n for n in bot.engine.pending_for(C, q) if n.level == 2]  # due 2 h after the question
    bot.scheduler.cancel(l2.key)  # lost behind the engine's back
    await bot.wait("10m")
    assert await bot.engine.reconcile() == 0  # due in 70 minutes: beyond the look-ahead for now
    await bot.wait("15m")
    assert await bot.engine.reconcile() == 1
    assert bot.scheduler.pending()[l2.key] == l2.due
    await bot.wait("1h")
    assert nudges_for(bot, q) == [1, 2]
    assert await bot.engine.reconcile() == 0
