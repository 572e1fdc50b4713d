"""The JSONL bridge adapter on real files: tailing the inbox, the read position, the fsync'd outbox, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.jsonl_bridge import BridgeSettings, JsonlBridge
from bot.actions import Reply
from bot.errors import ConfigError
from bot.events import Event, Message, Reaction

T = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def _line(i: int, **extra: object) -> str:
    return json.dumps({"type": "message", "community": "c", "room": "r", "id": f"m{i}", "ts": "2026-03-04T10:00:00Z",
                       "author": "alice", "text": f"message {i}", **extra}) + "\n"


def _append(path: Path, text: str | bytes) -> None:
    with path.open("ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def ids(self) -> list[str]:
        return [getattr(e, "id", None) or getattr(e, "message", "") for e in self.events]


@pytest.fixture
async def bridges(tmp_path: Path) -> AsyncIterator[list[JsonlBridge]]:
    made: list[JsonlBridge] = []
    yield made
    for b in made:
        await b.stop()


def _bridge(tmp: Path, made: list[JsonlBridge]) -> JsonlBridge:
    b = JsonlBridge(tmp / "in.jsonl", tmp / "out.jsonl", poll_seconds=0.01)
    made.append(b)
    return b


async def test_backlog_is_read_before_start_returns_then_new_lines_as_they_come(
    tmp_path: Path, bridges: list[JsonlBridge]
) -> None:
    inbox = tmp_path / "in.jsonl"
    _append(inbox, _line(1) + "\n// a comment\n" + _line(2))
    rec = Recorder()
    await _bridge(tmp_path, bridges).start(rec)
    assert rec.ids() == ["m1", "m2"]
    third = _line(3).encode()
    _append(inbox, third[:40])  # a writer may append one line in several writes
    await asyncio.sleep(0.1)
    assert rec.ids() == ["m1", "m2"]
    _append(inbox, third[40:])
    _append(inbox, json.dumps({"type": "reaction", "community": "c", "room": "r", "message": "m3", "author": "bob",
                               "emoji": "✅", "ts": "2026-03-04T10:01:00Z"}) + "\n")
    await _until(lambda: len(rec.events) == 4)
    assert isinstance(rec.events[2], Message) and rec.events[2].text == "message 3"
    assert isinstance(rec.events[3], Reaction)


async def test_bad_lines_are_skipped_and_reading_goes_on(
    tmp_path: Path, bridges: list[JsonlBridge], caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "in.jsonl"
    _append(inbox, "{not json\n" + '{"type": "message", "community": "c"}\n' + '{"type": "poll", "ts": "x"}\n'
            + "\xff\n" + _line(1) + "[1, 2]\n" + _line(2, ts="2026-03-04T10:00:00"))
    _append(inbox, b"\xff\xfe\n" + ("x" * (1 << 20) + "\n").encode() + _line(3).encode())
    rec = Recorder()
    await _bridge(tmp_path, bridges).start(rec)
    assert rec.ids() == ["m1", "m3"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("in.jsonl:1:" in w for w in warnings) and any("in.jsonl:7:" in w and "ts" in w for w in warnings)
    assert any("longer than" in w for w in warnings)
    # Worded as `lien simulate` words them (one reader of event lines), numbered in the whole inbox.
    for expected in ("in.jsonl:1: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
                     "in.jsonl:2: room: required field is missing", "in.jsonl:4: invalid JSON: Expecting value",
                     "in.jsonl:6: expected a JSON object, got array", "in.jsonl:8: invalid UTF-8 at byte 1"):
        assert any(w.startswith("skipped bad line ") and expected in w for w in warnings), expected
    assert any("in.jsonl:3: skipping unknown event type 'poll'" in w for w in warnings)


async def test_a_restart_goes_on_from_the_saved_position(tmp_path: Path, bridges: list[JsonlBridge]) -> None:
    inbox = tmp_path / "in.jsonl"
    _append(inbox, _line(1) + _line(2))
    first = _bridge(tmp_path, bridges)
    rec = Recorder()
    await first.start(rec)
    await first.stop()
    _append(inbox, _line(3))
    again = Recorder()
    await _bridge(tmp_path, bridges).start(again)
    assert rec.ids() == ["m1", "m2"] and again.ids() == ["m3"]
    assert (tmp_path / "in.jsonl.pos").read_text().split() == [str(inbox.stat().st_size), "3"]


async def test_an_inbox_shorter_than_the_position_is_read_again_from_the_start(
    tmp_path: Path, bridges: list[JsonlBridge]
) -> None:
    inbox = tmp_path / "in.jsonl"
    _append(inbox, _line(1) + _line(2))
    await _bridge(tmp_path, bridges).start(Recorder())
    await bridges[-1].stop()
    inbox.write_text(_line(9))  # rotated by the writer
    rec = Recorder()
    await _bridge(tmp_path, bridges).start(rec)
    assert rec.ids() == ["m9"]


def _reply(key: str | None) -> Reply:
    return Reply(ts=T, community="c", room="r", kind="nudge" if key else "command", reply_to="m1", question="m1",
                 level=1 if key else None, key=key, text="This question is still open. Can anyone help?")


async def test_performed_actions_are_appended_with_their_key_and_found_again_after_a_restart(
    tmp_path: Path, bridges: list[JsonlBridge]
) -> None:
    bridge = _bridge(tmp_path, bridges)
    await bridge.start(Recorder())
    await bridge.perform(_reply("nudge|c|m1|1"))
    await bridge.perform(_reply(None))
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(x["action"], x["kind"], x["key"], x["ts"]) for x in lines] == [
        ("reply", "nudge", "nudge|c|m1|1", "2026-03-04T10:00:00Z"), ("reply", "command", None, "2026-03-04T10:00:00Z")]
    assert await bridge.already_sent(_reply("nudge|c|m1|1"))
    assert not await bridge.already_sent(_reply("nudge|c|m1|2"))
    assert not await bridge.already_sent(_reply(None))
    await bridge.stop()
    fresh = _bridge(tmp_path, bridges)
    await fresh.start(Recorder())
    assert await fresh.already_sent(_reply("nudge|c|m1|1"))


async def test_a_torn_last_outbox_line_is_cut_at_start_and_counts_as_not_sent(
    tmp_path: Path, bridges: list[JsonlBridge]
) -> None:
    outbox = tmp_path / "out.jsonl"
    whole = json.dumps({"action": "reply", "key": "nudge|c|m1|1"}) + "\n"
    _append(outbox, whole + '{"action": "reply", "key": "nudge|c|m2|1", "te')  # killed in the middle of a write
    bridge = _bridge(tmp_path, bridges)
    await bridge.start(Recorder())
    assert outbox.read_text() == whole
    assert await bridge.already_sent(_reply("nudge|c|m1|1"))
    assert not await bridge.already_sent(_reply("nudge|c|m2|1"))
    await bridge.perform(_reply("nudge|c|m2|1"))
    assert [json.loads(x)["key"] for x in outbox.read_text().splitlines()] == ["nudge|c|m1|1", "nudge|c|m2|1"]


def test_settings_name_the_bad_key() -> None:
    assert BridgeSettings.from_section({"inbox": "a", "outbox": "b"}).poll_seconds == 0.2
    with pytest.raises(ConfigError, match=r"bridge\.outbox"):
        BridgeSettings.from_section({"inbox": "a"})
    with pytest.raises(ConfigError, match=r"bridge\.poll_seconds"):
        BridgeSettings.from_section({"inbox": "a", "outbox": "b", "poll_seconds": 0})
    with pytest.raises(ConfigError, match=r"bridge\.inbx"):
        BridgeSettings.from_section({"inbx": "a", "outbox": "b"})
