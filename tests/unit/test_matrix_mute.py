"""Matrix mutes by power level, the pure part: the mute level, who may change a level, what a mute and its end write.

The power levels below are shaped as Synapse 1.163 creates them for a `private_chat` room (room version 12: the
creator holds unlimited power and has no `users` entry).
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.matrix_adapter import _dump_mutes, _load_mutes, _Mute
from adapters.matrix_events import (
    mute_level,
    plan_mute,
    plan_unmute,
    power_change_refusal,
    state_event_level,
)

LIEN, ALICE, BOB, CAROL = "@lien:localhost", "@alice:localhost", "@bob:localhost", "@carol:localhost"
CREATORS = frozenset({ALICE})


def levels(**overrides: Any) -> dict[str, Any]:
    """Synapse's default power levels for a private room, lien at 100, with `overrides` applied."""
    content: dict[str, Any] = {
        "users": {LIEN: 100}, "users_default": 0, "events_default": 0, "state_default": 50, "ban": 50,
        "kick": 50, "redact": 50, "invite": 0, "historical": 100,
        "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
                   "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 150,
                   "m.room.server_acl": 100, "m.room.encryption": 100},
        "notifications": {"room": 50},
    }
    return content | overrides


# -- the mute level ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    (levels(), -1),
    (levels(events_default=10), 9),
    (levels(events={"m.room.message": 5}), -1),  # below events_default too (reactions, etc.)
    (levels(events_default=20, events={"m.room.message": 5}), 4),
    (levels(events_default="7"), 6),  # old rooms may hold levels as strings
    ({}, -1),
    (None, -1),
])
def test_mute_level_is_below_both_events_default_and_the_message_level(content: Any, expected: int) -> None:
    assert mute_level(content) == expected


def test_changing_power_levels_needs_the_event_level_else_state_default_else_50() -> None:
    assert state_event_level(levels(), "m.room.power_levels") == 100
    assert state_event_level(levels(events={}), "m.room.power_levels") == 50
    assert state_event_level(levels(events={}, state_default=75), "m.room.power_levels") == 75
    assert state_event_level({"users": {}}, "m.room.power_levels") == 50


# -- who may --------------------------------------------------------------------------------------------------


def test_lien_with_the_power_levels_level_and_above_the_member_may() -> None:
    assert power_change_refusal(LIEN, BOB, levels(), CREATORS) is None
    assert power_change_refusal(LIEN, BOB, levels(users={LIEN: 100, BOB: 99}), CREATORS) is None


@pytest.mark.parametrize(("content", "member", "says"), [
    (levels(users={}), BOB, "lacks power level 100"),
    (levels(users={LIEN: 50}), BOB, "lacks power level 100 to change power levels (it has 50)"),
    (levels(users={LIEN: 50}, events={}, state_default=60), BOB, "lacks power level 60"),
    (levels(users={LIEN: 100, BOB: 100}), BOB, "not above @bob:localhost's (100)"),
    (levels(users={LIEN: 100, BOB: 150}), BOB, "not above"),
    (levels(users={LIEN: 10}, users_default=10, events={}, state_default=0), BOB, "not above"),
    (levels(), ALICE, "not above @alice:localhost's (creator)"),  # a v12 creator outranks any number
    (levels(), LIEN, "its own power level"),
], ids=["no-entry", "moderator-only", "state-default", "equal", "higher", "users-default", "creator", "itself"])
def test_lien_may_not(content: dict[str, Any], member: str, says: str) -> None:
    problem = power_change_refusal(LIEN, member, content, CREATORS)
    assert problem is not None and says in problem


def test_lien_as_creator_may_mute_anyone_but_another_creator() -> None:
    assert power_change_refusal(LIEN, BOB, levels(users={BOB: 100}), {LIEN}) is None
    assert power_change_refusal(LIEN, ALICE, levels(), {LIEN, ALICE}) is not None


def test_lien_may_not_give_back_a_level_above_its_own() -> None:
    content = levels(users={LIEN: 60, BOB: -1}, events={}, state_default=50)
    assert power_change_refusal(LIEN, BOB, content, new_level=50) is None
    assert "below the level 70" in (power_change_refusal(LIEN, BOB, content, new_level=70) or "")


# -- muting ---------------------------------------------------------------------------------------------------


def test_mute_writes_only_the_member_entry_and_remembers_it_was_absent() -> None:
    before = levels(users={LIEN: 100, CAROL: 20})
    plan = plan_mute(before, BOB, creators=CREATORS)
    assert (plan.level, plan.previous) == (-1, None)
    assert plan.content == {**before, "users": {LIEN: 100, CAROL: 20, BOB: -1}}
    assert before["users"] == {LIEN: 100, CAROL: 20}  # the input is not modified


def test_mute_remembers_an_explicit_previous_level_and_keeps_unknown_keys() -> None:
    before = levels(users={LIEN: 100, BOB: 10}, **{"org.example.custom": {"x": 1}})
    plan = plan_mute(before, BOB, creators=CREATORS)
    assert (plan.level, plan.previous) == (-1, 10)
    assert plan.content is not None and plan.content["org.example.custom"] == {"x": 1}
    assert plan.content["users"] == {LIEN: 100, BOB: -1}


def test_a_member_who_already_cannot_send_is_not_raised() -> None:
    # An announcement room: only moderators speak; a mute level of 49 would let bob speak.
    plan = plan_mute(levels(events_default=50), BOB, creators=CREATORS)
    assert (plan.content, plan.level) == (None, None)
    plan = plan_mute(levels(users={LIEN: 100, BOB: -5}), BOB, creators=CREATORS)
    assert (plan.content, plan.level) == (None, None)


def test_a_second_mute_keeps_the_original_previous_level() -> None:
    muted = levels(users={LIEN: 100, BOB: -1})
    plan = plan_mute(muted, BOB, creators=CREATORS, earlier=(-1, 10))
    assert (plan.content, plan.level, plan.previous) == (None, -1, 10)  # nothing to write, 10 still restored


def test_a_mute_after_a_moderator_changed_the_level_starts_afresh() -> None:
    changed = levels(users={LIEN: 100, BOB: 30})  # lien's earlier mute (-1, was 10) was overridden
    plan = plan_mute(changed, BOB, creators=CREATORS, earlier=(-1, 10))
    assert (plan.level, plan.previous) == (-1, 30)
    assert plan.content is not None and plan.content["users"][BOB] == -1


# -- the end of a mute ----------------------------------------------------------------------------------------


def test_unmute_removes_an_entry_that_was_absent() -> None:
    muted = levels(users={LIEN: 100, BOB: -1, CAROL: 20})
    assert plan_unmute(muted, BOB, level=-1, previous=None) == {**muted, "users": {LIEN: 100, CAROL: 20}}


def test_unmute_gives_back_the_previous_level() -> None:
    muted = levels(users={LIEN: 100, BOB: -1})
    restored = plan_unmute(muted, BOB, level=-1, previous=10)
    assert restored is not None and restored["users"] == {LIEN: 100, BOB: 10}
    assert {k: v for k, v in restored.items() if k != "users"} == {k: v for k, v in muted.items() if k != "users"}


@pytest.mark.parametrize("users", [
    {LIEN: 100, BOB: 20},  # a moderator set another level
    {LIEN: 100, BOB: -5},  # ... or a harsher one
    {LIEN: 100},  # ... or removed the entry
], ids=["changed", "harsher", "removed"])
def test_unmute_leaves_a_level_a_moderator_changed(users: dict[str, int]) -> None:
    assert plan_unmute(levels(users=users), BOB, level=-1, previous=None) is None


# -- what survives a restart ----------------------------------------------------------------------------------


def test_stored_mutes_round_trip_and_bad_entries_are_skipped() -> None:
    from datetime import UTC, datetime

    mutes = [_Mute("!r:localhost", BOB, -1, None, datetime(2026, 3, 1, 10, 10, tzinfo=UTC)),
             _Mute("!r:localhost", CAROL, 4, 10, datetime(2026, 3, 1, 10, 20, tzinfo=UTC))]
    assert list(_load_mutes(_dump_mutes(mutes)).values()) == mutes
    raw = ('[{"room": "!r", "member": "@x:l", "level": -1, "previous": null, "until": "2026-03-01T10:00:00"},'
           ' {"room": "!r", "member": "@y:l"}, 3,'
           ' {"room": "!r", "member": "@z:l", "level": -1, "previous": 5, "until": "2026-03-01T10:00:00+00:00"}]')
    assert [m.member for m in _load_mutes(raw).values()] == ["@z:l"]  # naive time, missing fields, not a dict
    assert _load_mutes("not json") == {} and _load_mutes(None) == {}
