"""The guard as a whole: graduated actions, observe mode, pardon, raid mode, bounded memory, no text kept."""

from __future__ import annotations

import gc
import types
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.actions import DeleteMessage, Reply, Report, Timeout
from bot.events import MemberJoin, Message
from bot.gate import OutboundGate
from bot.guard_rules import GuardSettings
from bot.guards import Guard, MemoryStrikes
from tests.unit.test_guard_rules import T0, Harness

ENFORCE = GuardSettings(mode="enforce")


def flood(h: Harness, start: float, author: str = "alice", n: int = 8) -> list:
    """`n` distinct lines by `author` within a few seconds from `start`; returns the actions of the last one."""
    out: list = []
    for i in range(n):
        out = h.say(start + i * 0.3, f"{author} line {start} {i}", author=author)
    return out


def kinds(actions: list) -> list[str]:
    return [a.name for a in actions]


def test_repeat_offender_escalates_warn_then_delete_then_timeout() -> None:
    h = Harness(ENFORCE)
    first = flood(h, 0)
    assert kinds(first) == ["reply", "report"]
    warn, report = first
    assert isinstance(warn, Reply) and warn.reply_to == "m8" and warn.room == "general" and warn.reason == "flood"
    assert isinstance(report, Report) and report.room == "mods" and report.kind == "guard"
    assert "8 messages in 10 s" in report.text and "strike 1" in report.text

    second = flood(h, 60)
    assert kinds(second) == ["delete"] * 8 + ["report"]
    assert [d.reply_to for d in second[:-1]] == [f"m{i}" for i in range(9, 17)]
    assert all(isinstance(d, DeleteMessage) and d.reason == "flood" for d in second[:-1])

    third = flood(h, 120)
    assert kinds(third) == ["delete"] * 8 + ["timeout", "report"]
    timeout = third[-2]
    assert isinstance(timeout, Timeout) and timeout.to == "alice" and "10 minutes" in timeout.text
    assert timeout.minutes == 10  # the length the member is told is the one the adapters apply
    assert all(a.kind == "guard" for a in first + second + third)


@given(st.lists(st.floats(min_value=10 / 7 + 0.001, max_value=30), min_size=1, max_size=30),
       st.lists(st.sampled_from(["general", "help", "random"]), min_size=30, max_size=30))
def test_a_member_never_over_seven_lines_in_ten_seconds_is_never_touched(gaps: list[float], rooms: list[str]) -> None:
    h = Harness(ENFORCE)
    at = 0.0
    for i, gap in enumerate(gaps):
        at += gap
        h.say(at, f"line {i}: some words", room=rooms[i])
    assert h.actions == []


@given(st.lists(st.integers(min_value=0, max_value=1428), min_size=7, max_size=7), st.integers(0, 60_000))
def test_eight_lines_within_ten_seconds_are_always_a_flood(gaps_ms: list[int], start_ms: int) -> None:
    h = Harness()
    # Millisecond stamps never on a whole second (that would read as a coarser clock).
    at = T0 + timedelta(microseconds=456, milliseconds=start_ms)
    h.say(0, "line start", ts=at)
    for i, gap in enumerate(gaps_ms):
        at += timedelta(milliseconds=gap)
        h.say(0, f"line {i}", ts=at)
    assert h.reasons() == ["flood"]


def test_strikes_older_than_the_window_are_forgotten() -> None:
    h = Harness(ENFORCE)
    flood(h, 0)
    assert kinds(flood(h, 61 * 60)) == ["reply", "report"]


def test_observe_mode_only_reports_what_it_would_do() -> None:
    h = Harness()
    for start in (0, 60, 120):
        flood(h, start)
    assert {a.name for a in h.actions} == {"report"}
    texts = [a.text for a in h.actions]
    assert "would warn them" in texts[0] and "takes no action" in texts[0]
    assert "would delete those messages (strike 2)" in texts[1]
    assert "time them out for 10 minutes" in texts[2]


def test_hits_while_timed_out_add_nothing_until_the_timeout_ends() -> None:
    h = Harness(ENFORCE)
    for start in (0, 60, 120):
        flood(h, start)
    before = len(h.actions)
    flood(h, 180)  # still within the 10 minutes
    assert len(h.actions) == before
    assert h.guard.stats["suppressed"] == 1
    assert kinds(flood(h, 121 + 11 * 60)) == ["delete"] * 8 + ["timeout", "report"]


def test_pardon_clears_strikes_so_the_next_hit_is_a_warning() -> None:
    h = Harness(ENFORCE)
    flood(h, 0)
    flood(h, 60)
    assert h.guard.pardon("c1", "alice") == 2
    assert kinds(flood(h, 120)) == ["reply", "report"]
    assert h.guard.pardon("c1", "nobody") == 0


def test_strikes_are_per_member() -> None:
    h = Harness(ENFORCE)
    flood(h, 0, "alice")
    assert kinds(flood(h, 30, "bob")) == ["reply", "report"]


def test_custom_ladder_starts_with_delete() -> None:
    h = Harness(GuardSettings(mode="enforce", escalation={"steps": ("delete", "timeout")}))  # type: ignore[arg-type]
    h.join(0, "spammer")
    out = h.say(60, "free nitro discord.gg/xyz", author="spammer")
    assert kinds(out) == ["delete", "report"] and out[0].reason == "invite_link"


def test_a_timeout_carries_the_configured_length_that_the_member_is_told() -> None:
    h = Harness(GuardSettings(mode="enforce", escalation={"steps": ("timeout",), "timeout_minutes": 25}))  # type: ignore[arg-type]
    h.join(0, "spammer")
    out = h.say(60, "free nitro discord.gg/xyz", author="spammer")
    [timeout] = [a for a in out if isinstance(a, Timeout)]
    assert timeout.minutes == 25 and "25 minutes" in timeout.text


def test_several_rules_on_one_message_make_one_decision() -> None:
    h = Harness(ENFORCE)
    h.join(0, "spammer")
    out = h.say(60, "@everyone discord.gg/xyz", author="spammer")
    assert kinds(out) == ["reply", "report"]
    assert out[1].reason == "mass_mention"
    assert "group" in out[1].text and "invite link" in out[1].text


def test_report_falls_back_to_the_room_without_a_moderators_room() -> None:
    h = Harness(moderators_room=None)
    out = h.say(0, "@everyone")
    assert out[0].room == "general"


def test_report_in_french() -> None:
    h = Harness(language="fr")
    assert h.say(0, "@everyone")[0].text.startswith("Garde :")


def test_report_names_the_member_safely() -> None:
    h = Harness()
    [report] = h.say(0, "@here", author="u1", name="@everyone <@&5> \u202eevil")
    checked = OutboundGate(3).check(report)
    assert "@everyone" not in checked.text and "<@&5>" not in checked.text and "\u202e" not in checked.text
    assert "(u1)" in checked.text


def test_disabled_guard_does_nothing() -> None:
    assert Harness(GuardSettings(enabled=False)).run([]).reasons() == []
    h = Harness(GuardSettings(enabled=False))
    flood(h, 0)
    h.say(10, "@everyone")
    assert h.actions == []


def test_known_moderator_is_exempt() -> None:
    h = Harness()
    h.guard.note_moderator("c1", "mod")
    flood(h, 0, "mod")
    assert h.say(5, "@everyone", author="mod") == []


# -- raid mode ------------------------------------------------------------------------------------------------------


def join_wave(h: Harness, n: int = 20, start: float = 0, every: float = 5) -> None:
    for i in range(n):
        h.join(start + i * every, f"new{i}")


def test_join_wave_starts_raid_mode_and_tightens_limits_for_newcomers_only() -> None:
    h = Harness()
    join_wave(h, 19)
    assert not h.guard.raid_active("c1")
    h.join(95, "new19")
    assert h.reasons() == ["raid"]
    assert h.guard.raid_active("c1")
    assert "20 members joined within 2 minutes" in h.actions[-1].text
    # A newcomer writing 4 lines in 10 s trips the stricter flood limit (3); an old member does not.
    for i in range(4):
        h.say(100 + i * 2, f"newcomer line {i}", author="new3")
        h.say(100 + i * 2, f"regular line {i}", author="old")
    assert h.reasons() == ["raid", "flood"]
    assert "Raid mode" in h.actions[-1].text and "new3" in h.actions[-1].text


def test_raid_mode_ends_after_a_quiet_period_with_a_report() -> None:
    h = Harness()
    join_wave(h)
    raid_at = T0 + timedelta(seconds=95)
    assert h.guard.raid_active("c1", raid_at + timedelta(minutes=29))
    assert not h.guard.raid_active("c1", raid_at + timedelta(minutes=30))
    h.say(95 + 31 * 60, "good morning")
    assert h.reasons() == ["raid", "raid_end"]
    assert not h.guard.raid_active("c1")
    assert "30 quiet minutes" in h.actions[-1].text


def test_hits_keep_raid_mode_on() -> None:
    h = Harness()
    join_wave(h)
    h.say(95 + 20 * 60, "@everyone", author="x")
    assert h.guard.expire(T0 + timedelta(seconds=95 + 40 * 60)) == []
    ended = h.guard.expire(T0 + timedelta(seconds=95 + 51 * 60))
    assert [a.reason for a in ended] == ["raid_end"]


def test_admin_ends_raid_mode() -> None:
    h = Harness()
    join_wave(h)
    now = T0 + timedelta(minutes=5)
    [report] = h.guard.end_raid("c1", now=now)
    assert report.reason == "raid_end" and report.room == "mods" and report.ts == now
    assert not h.guard.raid_active("c1")
    assert h.guard.end_raid("c1", now=now) == []


def test_many_members_hit_at_once_start_raid_mode() -> None:
    h = Harness()
    for i in range(4):
        h.say(i * 10, "@everyone", author=f"s{i}")
    assert not h.guard.raid_active("c1")
    h.say(60, "@everyone", author="s4")
    assert h.reasons() == ["mass_mention"] * 5 + ["raid"]
    assert "5 members tripped the guard within 2 minutes" in h.actions[-1].text


def test_the_same_member_hitting_often_is_not_a_raid() -> None:
    h = Harness()
    for i in range(10):
        h.say(i * 10, "@everyone", author="s")
    assert "raid" not in h.reasons()


def test_rejoins_do_not_make_a_join_wave() -> None:
    h = Harness()
    for i in range(40):
        h.join(i * 2, f"flaky{i % 10}")
    assert not h.guard.raid_active("c1")


def test_slow_steady_joins_are_not_a_wave() -> None:
    h = Harness()
    join_wave(h, 200, every=10)  # 200 newcomers over half an hour: a busy day, not a raid
    assert not h.guard.raid_active("c1")


# -- state ----------------------------------------------------------------------------------------------------------


def test_memory_stays_bounded_as_members_come_and_go() -> None:
    h = Harness()
    for i in range(20_000):
        h.say(i * 0.01, f"hello {i}", author=f"u{i}")
    h.join(0, "j")
    assert h.guard.sizes()["members"] < 5_000
    # After a lull, the idle ones go as new events arrive, a few per event (no call pays for them all).
    for i in range(2_000):
        h.say(3 * 3600 + i * 0.01, f"later {i}", author=f"v{i}")
    sizes = h.guard.sizes()
    assert sizes["members"] == 2_000 and sizes["joins"] == 0


def test_an_idle_member_goes_at_the_next_message_even_after_the_oldest_one_wrote_again() -> None:
    """Messages skip pruning until the oldest member falls idle; when that member writes again, the next oldest
    (here stamped earlier, out of order) must still go as soon as it is idle, as with a look at every message."""
    h = Harness()  # the rules look back 30 s at most
    h.say(10, "a", author="a")
    h.say(2, "b", author="b")  # late: b's last message is older than a's
    h.say(12, "a again", author="a")  # a is no longer the oldest: b is
    h.say(31.5, "c", author="c")
    assert h.guard.sizes()["members"] == 3  # b wrote 29.5 s ago
    h.say(32.5, "d", author="d")
    assert h.guard.sizes()["members"] == 3  # b (30.5 s ago) is gone: a, c and d remain


def test_an_idle_member_goes_at_the_next_message_after_the_oldest_one_was_forgotten() -> None:
    h = Harness()
    h.say(10, "a", author="a")
    h.say(2, "b", author="b")  # late: b's last message is older than a's
    h.guard.forget("c1", "a")
    h.say(32.5, "c", author="c")
    assert h.guard.sizes()["members"] == 1  # b (30.5 s ago) is gone


def test_members_after_a_lull_are_pruned_on_time_too() -> None:
    short = {"seconds": 5}
    h = Harness(GuardSettings.model_validate({"flood": short, "duplicate": short, "mass_mention": short,
                                              "link_burst": short}))  # the rules look back 5 s
    h.say(0, "a", author="a")
    h.join(6, "x")  # a is idle and goes: nobody is left
    h.say(7, "b", author="b")
    h.say(12.5, "c", author="c")
    assert h.guard.sizes()["members"] == 1  # b (5.5 s ago) is gone too


def test_an_old_join_goes_at_the_next_event() -> None:
    h = Harness()  # joins matter for 60 minutes (raid mode's recent joins)
    h.join(0, "j")
    h.say(3599, "hello", author="u")
    assert h.guard.sizes()["joins"] == 1
    h.say(3601, "hello again", author="v")
    assert h.guard.sizes()["joins"] == 0


def test_memory_strikes_prune_and_clear() -> None:
    book = MemoryStrikes()
    assert book.add("c", "m", T0, timedelta(minutes=60)) == 1
    assert book.add("c", "m", T0 + timedelta(minutes=30), timedelta(minutes=60)) == 2
    assert book.add("c", "m", T0 + timedelta(minutes=70), timedelta(minutes=60)) == 2
    book.prune(T0 + timedelta(minutes=200))
    assert len(book) == 0
    assert book.clear("c", "m") == 0


def test_guard_keeps_no_message_text() -> None:
    h = Harness()
    secret = "zqxjv sentence number 7"
    for i in range(5):
        h.say(i, secret)
    h.say(6, secret + " https://example.org @everyone")
    gc.collect()
    seen: set[int] = set()
    strings = 0
    stack: list[object] = [h.guard]
    while stack:
        obj = stack.pop()
        # Code, modules and classes are not the guard's data (the settings callback leads there).
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType | types.CodeType):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            strings += 1
            assert "zqxjv" not in obj
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())  # gc does not report the str keys of a dict
        stack.extend(gc.get_referents(obj))
    assert strings > 5  # the walk did reach the guard's data (ids, rule names)


def test_forget_drops_every_trace_of_a_member() -> None:
    h = Harness(ENFORCE)
    h.join(0, "alice")
    flood(h, 10)
    h.guard.forget("c1", "alice")
    assert h.guard.sizes()["members"] == 0 and h.guard.sizes()["joins"] == 0
    assert kinds(flood(h, 40)) == ["reply", "report"]


def test_out_of_order_messages_do_not_break_the_window() -> None:
    h = Harness()
    h.say(10, "a")
    h.say(5, "b")
    assert h.say(11, "c") == []


def test_settings_come_from_the_room_each_time() -> None:
    strict_room = GuardSettings(flood={"max_messages": 2})  # type: ignore[arg-type]
    views = {"general": GuardSettings(), "quiet": strict_room}

    class View:
        def __init__(self, gs: GuardSettings) -> None:
            self.guard, self.language, self.moderators_room = gs, "en", None

    guard = Guard(lambda c, r: View(views.get(r or "", GuardSettings())))
    out = []
    for i in range(3):
        m = Message("c1", "quiet", f"q{i}", T0 + timedelta(seconds=i), "alice", f"t{i}")
        out += guard.on_message(m, now=m.ts)
    assert [a.reason for a in out] == ["flood"]


@pytest.mark.parametrize("n", [1, 3])
def test_join_event_for_unknown_community_settings_is_fine(n: int) -> None:
    h = Harness()
    for i in range(n):
        assert h.guard.on_join(MemberJoin("other", f"a{i}", T0), now=T0) == []
