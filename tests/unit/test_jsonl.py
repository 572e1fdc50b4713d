"""The JSON Lines edge against `spec/events.md`: every event type, every error message, streaming, writers."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.jsonl import (
    action_to_dict,
    dumps_line,
    event_to_dict,
    format_ts,
    parse_event,
    question_to_dict,
    read_events,
)
from bot.actions import SPEC_FIELDS, Dm, Post, Refuse
from bot.errors import InputError
from bot.events import Command, Delete, Edit, MemberJoin, MemberLeave, Message, Reaction
from bot.model import QState, Question

DATA = Path(__file__).parent.parent / "data"
NAME = Path("events.jsonl")


def at(hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, second, micro, tzinfo=UTC)


def read_text(text: str, **kwargs: object) -> list[object]:
    return list(read_events(NAME, io.StringIO(text), **kwargs))  # type: ignore[arg-type]


MESSAGE = {
    "type": "message",
    "community": "g1",
    "room": "help",
    "id": "m1",
    "ts": "2026-03-01T10:00:00Z",
    "author": "u1",
    "text": "how do I ...?",
}


def line(**changes: object) -> str:
    """A valid message line with `changes` applied (a value of ... deletes the field)."""
    d = {**MESSAGE, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...})


# Reading valid events.


def test_fixture_with_every_event_type_parses_to_the_spec_dataclasses() -> None:
    reader = read_events(DATA / "events_all_types.jsonl")
    events = list(reader)
    assert events == [
        MemberJoin(community="g1", author="u1", ts=at(9)),
        Message(
            community="g1",
            room="help",
            id="m1",
            ts=at(10),
            author="u1",
            text="How do I set the nudge delay per room?",
            platform="discord",
            author_name="Ada",
        ),
        Message(
            community="g1",
            room="help",
            id="m2",
            ts=at(10, 30, 0, 250_000),
            author="u2",
            text="With [rooms.help] in the config.",
            reply_to="m1",
            mentions=("u1",),
        ),
        Reaction(community="g1", room="help", message="m2", author="u1", emoji="🙏", ts=at(10, 31)),
        Edit(community="g1", room="help", id="m2", text="With [rooms.help] in lien.toml.", ts=at(10, 33)),
        Command(
            community="g1",
            room="help",
            id="m3",
            author="u3",
            ts=at(10, 34),
            name="unanswered",
            args=("help", "7d"),
            is_admin=True,
        ),
        Delete(community="g1", room="help", id="m3", ts=at(10, 35)),
        MemberLeave(community="g1", author="u3", ts=at(15, 36)),
    ]
    assert (reader.read, reader.unknown_types, reader.skipped_bad, reader.lines) == (8, 1, 0, 12)
    assert reader.unknown_type_names == {"poll": 1}


def test_timestamps_become_utc_aware_whatever_the_offset() -> None:
    [a, b, c] = read_text(
        "\n".join(
            [
                line(ts="2026-03-01T11:00:00+01:00"),
                line(ts="2026-03-01T05:00:00-05:00"),
                line(ts="2026-03-01T10:00:00.123456789Z"),
            ]
        )
    )
    assert a.ts == b.ts == at(10)  # type: ignore[attr-defined]
    assert a.ts.tzinfo is UTC and b.ts.tzinfo is UTC  # type: ignore[attr-defined]
    assert c.ts == at(10, 0, 0, 123456)  # type: ignore[attr-defined]


def test_message_optional_fields_default_when_absent_or_null() -> None:
    [absent, null] = read_text(
        line() + "\n" + line(reply_to=None, thread=None, mentions=None, is_bot=None, author_name=None, platform=None)
    )
    assert absent == null == Message(community="g1", room="help", id="m1", ts=at(10), author="u1", text="how do I ...?")


def test_message_mentions_become_a_tuple_and_empty_text_is_allowed() -> None:
    [m] = read_text(line(mentions=["u2", "u3"], text="", is_bot=True))
    assert m == Message(
        community="g1", room="help", id="m1", ts=at(10), author="u1", text="", mentions=("u2", "u3"), is_bot=True
    )


def test_command_without_args_or_is_admin_gets_the_safe_defaults() -> None:
    obj = {
        "type": "command",
        "community": "g1",
        "room": "r",
        "id": "c1",
        "author": "u1",
        "ts": "2026-03-01T10:00:00Z",
        "name": "stats",
    }
    assert parse_event(obj, "x:1") == Command(
        community="g1", room="r", id="c1", author="u1", ts=at(10), name="stats", args=(), is_admin=False
    )


def test_unknown_extra_fields_are_ignored() -> None:
    [m] = read_text(line(reactions_count=3, future={"nested": [1, 2]}))
    assert m == parse_event(MESSAGE, "x:1")


def test_blank_comment_crlf_and_bom_lines_are_skipped_but_still_numbered() -> None:
    text = "\ufeff// header\r\n\r\n   \n  // indented comment\n" + line() + "\r\n" + line(ts="2026-03-01T10:00:00")
    with pytest.raises(InputError) as err:
        read_text(text)
    assert str(err.value).startswith("events.jsonl:6: ts: ")


def test_unknown_types_are_counted_and_skipped_with_one_warning_per_name(caplog: pytest.LogCaptureFixture) -> None:
    text = "\n".join([line(type="poll"), line(), line(type="poll"), line(type="typing")])
    caplog.set_level(logging.WARNING, logger="adapters.jsonl")
    reader = read_events(NAME, io.StringIO(text))
    assert len(list(reader)) == 1
    assert (reader.read, reader.unknown_types) == (1, 3)
    assert reader.unknown_type_names == {"poll": 2, "typing": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "events.jsonl:1: skipping unknown event type 'poll' (further ones are only counted)",
        "events.jsonl:4: skipping unknown event type 'typing' (further ones are only counted)",
    ]


def test_unknown_type_is_not_validated_further() -> None:
    assert parse_event({"type": "poll"}, "x:1") is None


# Errors: exact messages, `file:line: field: problem`. Lines 1-2 are a comment and a good line, the bad one is 3.

ERRORS = [
    ("missing-room", line(room=...), "events.jsonl:3: room: required field is missing"),
    ("missing-text", line(text=...), "events.jsonl:3: text: required field is missing"),
    ("missing-ts", line(ts=...), "events.jsonl:3: ts: required field is missing"),
    ("missing-type", line(type=...), "events.jsonl:3: type: required field is missing"),
    ("type-not-string", line(type=3), "events.jsonl:3: type: expected a string, got number"),
    ("id-number", line(id=1234567890123456789), "events.jsonl:3: id: expected a string id, got number"),
    ("id-empty", line(author=""), "events.jsonl:3: author: expected a non-empty string id, got ''"),
    ("community-null", line(community=None), "events.jsonl:3: community: expected a string id, got null"),
    ("text-object", line(text={"t": 1}), "events.jsonl:3: text: expected a string, got object"),
    ("reply-to-number", line(reply_to=5), "events.jsonl:3: reply_to: expected a string id, got number"),
    ("thread-bool", line(thread=True), "events.jsonl:3: thread: expected a string id, got boolean"),
    ("mentions-string", line(mentions="u2"), "events.jsonl:3: mentions: expected a list of string ids, got string"),
    ("mentions-item", line(mentions=["u2", 7]), "events.jsonl:3: mentions[1]: expected a string id, got number"),
    ("is-bot-int", line(is_bot=1), "events.jsonl:3: is_bot: expected true or false, got number"),
    ("is-bot-string", line(is_bot="false"), "events.jsonl:3: is_bot: expected true or false, got string"),
    ("platform-list", line(platform=["discord"]), "events.jsonl:3: platform: expected a string, got array"),
    (
        "ts-naive",
        line(ts="2026-03-01T10:00:00"),
        "events.jsonl:3: ts: timestamp has no offset (add Z or +HH:MM): '2026-03-01T10:00:00'",
    ),
    ("ts-date-only", line(ts="2026-03-01"), "events.jsonl:3: ts: not an ISO 8601 date-time: '2026-03-01'"),
    ("ts-garbage", line(ts="yesterday"), "events.jsonl:3: ts: not an ISO 8601 date-time: 'yesterday'"),
    (
        "ts-bad-separator",
        line(ts="2026-03-01x10:00:00Z"),
        "events.jsonl:3: ts: not an ISO 8601 date-time: '2026-03-01x10:00:00Z'",
    ),
    (
        "ts-hour-24",
        line(ts="2026-03-01T24:00:00Z"),
        "events.jsonl:3: ts: not an ISO 8601 date-time: '2026-03-01T24:00:00Z'",
    ),
    ("ts-epoch-number", line(ts=1772359200), "events.jsonl:3: ts: expected an ISO 8601 timestamp string, got number"),
    (
        "ts-overflows-utc",
        line(ts="0001-01-01T00:00:00+01:00"),
        "events.jsonl:3: ts: timestamp out of range (years 1970 to 9998 in UTC): '0001-01-01T00:00:00+01:00'",
    ),
    (
        "ts-before-1970",
        line(ts="1969-12-31T23:59:59.999999Z"),
        "events.jsonl:3: ts: timestamp out of range (years 1970 to 9998 in UTC): '1969-12-31T23:59:59.999999Z'",
    ),
    (
        # A replay runs on 7 days past its last event: that must not overflow datetime.
        "ts-year-9999",
        line(ts="9999-12-31T20:00:00Z"),
        "events.jsonl:3: ts: timestamp out of range (years 1970 to 9998 in UTC): '9999-12-31T20:00:00Z'",
    ),
    ("ts-long-quoted-short", line(ts="x" * 100), f"events.jsonl:3: ts: not an ISO 8601 date-time: '{'x' * 57}...'"),
    (
        "first-bad-field-in-spec-order",
        line(room=1, ts="bad", text=2),
        "events.jsonl:3: room: expected a string id, got number",
    ),
    (
        "reaction-missing-emoji",
        '{"type":"reaction","community":"g","room":"r","message":"m","author":"u","ts":"2026-03-01T10:00:00Z"}',
        "events.jsonl:3: emoji: required field is missing",
    ),
    (
        "edit-missing-text",
        '{"type":"edit","community":"g","room":"r","id":"m","ts":"2026-03-01T10:00:00Z"}',
        "events.jsonl:3: text: required field is missing",
    ),
    (
        "delete-missing-id",
        '{"type":"delete","community":"g","room":"r","ts":"2026-03-01T10:00:00Z"}',
        "events.jsonl:3: id: required field is missing",
    ),
    (
        "join-missing-author",
        '{"type":"member_join","community":"g","ts":"2026-03-01T10:00:00Z"}',
        "events.jsonl:3: author: required field is missing",
    ),
    (
        "leave-naive-ts",
        '{"type":"member_leave","community":"g","author":"u","ts":"2026-03-01T10:00"}',
        "events.jsonl:3: ts: timestamp has no offset (add Z or +HH:MM): '2026-03-01T10:00'",
    ),
    (
        "command-args-not-list",
        '{"type":"command","community":"g","room":"r","id":"c","author":"u","ts":"2026-03-01T10:00:00Z",'
        '"name":"stats","args":"7d","is_admin":false}',
        "events.jsonl:3: args: expected a list of strings, got string",
    ),
    (
        "command-args-item",
        '{"type":"command","community":"g","room":"r","id":"c","author":"u","ts":"2026-03-01T10:00:00Z",'
        '"name":"stats","args":["7d",null],"is_admin":false}',
        "events.jsonl:3: args[1]: expected a string, got null",
    ),
    (
        "command-is-admin-string",
        '{"type":"command","community":"g","room":"r","id":"c","author":"u","ts":"2026-03-01T10:00:00Z",'
        '"name":"stats","args":[],"is_admin":"yes"}',
        "events.jsonl:3: is_admin: expected true or false, got string",
    ),
    (
        "command-empty-name",
        '{"type":"command","community":"g","room":"r","id":"c","author":"u","ts":"2026-03-01T10:00:00Z",'
        '"name":"","args":[],"is_admin":false}',
        "events.jsonl:3: name: expected a non-empty string, got ''",
    ),
    (
        "bad-json",
        '{"type": "message", oops}',
        "events.jsonl:3: invalid JSON: Expecting property name enclosed in double quotes (column 21)",
    ),
    ("truncated-json", '{"type": "message"', "events.jsonl:3: invalid JSON: Expecting ',' delimiter (column 19)"),
    ("json-array", "[1, 2]", "events.jsonl:3: expected a JSON object, got array"),
    ("json-string", '"message"', "events.jsonl:3: expected a JSON object, got string"),
    ("json-too-deep", "[" * 100_000 + "]" * 100_000, "events.jsonl:3: invalid JSON: nested too deeply"),
]


@pytest.mark.parametrize(("bad", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_line_raises_input_error_naming_file_line_and_field(bad: str, message: str) -> None:
    text = "// a comment\n" + line(id="before") + "\n" + bad + "\n" + line(id="after") + "\n"
    reader = read_events(NAME, io.StringIO(text))
    assert next(reader).id == "before"  # type: ignore[union-attr]
    with pytest.raises(InputError) as err:
        next(reader)
    assert str(err.value) == message
    assert err.value.where == "events.jsonl:3"


def test_parse_event_names_the_given_where_and_field() -> None:
    with pytest.raises(InputError) as err:
        parse_event({**MESSAGE, "ts": "2026-03-01T10:00:00"}, "export.json:record 7")
    assert (err.value.where, err.value.field) == ("export.json:record 7", "ts")
    assert str(err.value) == (
        "export.json:record 7: ts: timestamp has no offset (add Z or +HH:MM): '2026-03-01T10:00:00'"
    )


def test_invalid_utf8_line_in_a_file_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(id="a").encode() + b"\n" + b'{"text": "caf\xe9"}\n' + line(id="b").encode() + b"\n")
    with pytest.raises(InputError) as err:
        list(read_events(path))
    assert str(err.value) == f"{path}:2: invalid UTF-8 at byte 14"
    errors: list[InputError] = []
    assert [e.id for e in read_events(path, skip_bad=True, on_bad=errors.append)] == ["a", "b"]  # type: ignore[union-attr]
    assert [str(e) for e in errors] == [f"{path}:2: invalid UTF-8 at byte 14"]


def test_a_file_reads_as_a_text_stream_does_where_orjson_and_json_differ(tmp_path: Path) -> None:
    # Files take the orjson fast path, text streams the standard library: what one accepts, reports or refuses,
    # the other must too, including where the two decoders differ.
    lines = [
        line(id="dup", text="first", extra=1).replace('"extra": 1', '"extra": 1, "text": "second"'),
        line(id="nan").replace('"type"', '"x": NaN, "type"'),
        line(id="bigint").replace('"type"', '"x": 123456789012345678901234567890, "type"'),
        line(id="surrogate").replace('"type"', '"x": "\\ud800", "type"'),
        line(id="sep", text="a\u2028b"),
        line(id="bad-ts", ts=123456789012345678901234567890),
        line(id="deep").replace('"type"', '"x": ' + "[" * 2000 + "]" * 2000 + ', "type"'),
        '{"type": "message", "id": }',
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from_file: list[InputError] = []
    from_text: list[InputError] = []
    events = list(read_events(path, skip_bad=True, on_bad=from_file.append))
    assert events == list(read_events(path, io.StringIO(path.read_text(encoding="utf-8")), skip_bad=True,
                                      on_bad=from_text.append))
    assert [str(e) for e in from_file] == [str(e) for e in from_text]
    assert [e.id for e in events] == ["dup", "nan", "bigint", "surrogate", "sep"]  # type: ignore[union-attr]
    assert events[0].text == "second"  # type: ignore[union-attr]
    assert [e.where.rsplit(":", 1)[1] for e in from_file] == ["6", "7", "8"]


def test_missing_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(InputError) as err:
        read_events(path)
    assert str(err.value) == f"{path}: cannot read: No such file or directory"


def test_read_events_needs_a_path_or_a_stream() -> None:
    with pytest.raises(ValueError, match="path or a stream"):
        read_events(None)


def test_stream_without_path_is_named_after_the_stream() -> None:
    stream = io.StringIO(line(ts="nope"))
    stream.name = "<stdin>"  # type: ignore[misc]
    with pytest.raises(InputError, match=r"^<stdin>:1: ts: "):
        list(read_events(None, stream))


# skip_bad.


def test_skip_bad_keeps_every_good_line_around_the_bad_ones() -> None:
    errors: list[InputError] = []
    reader = read_events(DATA / "events_with_bad_lines.jsonl", skip_bad=True, on_bad=errors.append)
    assert [e.id for e in reader] == ["m1", "m3", "m5"]  # type: ignore[union-attr]
    assert [(e.where.rsplit(":", 1)[1], e.field) for e in errors] == [("2", None), ("4", "ts")]  # type: ignore[union-attr]
    assert errors[1].problem == "timestamp has no offset (add Z or +HH:MM): '2026-03-01T10:03:00'"
    assert (reader.read, reader.skipped_bad, reader.unknown_types, reader.lines) == (3, 2, 0, 5)


def test_without_skip_bad_the_first_bad_line_stops_reading_after_the_good_ones_before_it() -> None:
    reader = read_events(DATA / "events_with_bad_lines.jsonl")
    seen = []
    with pytest.raises(InputError, match=r"events_with_bad_lines.jsonl:2: invalid JSON: "):
        for event in reader:
            seen.append(event.id)  # type: ignore[union-attr]
    assert seen == ["m1"]
    assert list(reader) == []


def test_skip_bad_without_callback_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.jsonl")
    assert len(read_text(line() + "\n[]\n" + line(), skip_bad=True)) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "skipping bad line: events.jsonl:2: expected a JSON object, got array"
    ]


# Streaming.


def _generated_lines(n: int) -> Iterator[str]:
    for i in range(n):
        yield (
            f'{{"type":"message","community":"g1","room":"r{i % 50}","id":"m{i}",'
            f'"ts":"2026-03-01T10:00:00.{i % 1_000_000:06d}Z","author":"u{i % 997}","text":"line {i}",'
            f'"reply_to":{json.dumps(f"m{i - 1}" if i % 3 else None)}}}\n'
        )


def test_reading_200k_lines_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.writelines(_generated_lines(200_000))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        reader = read_events(path)
        count = 0
        last = None
        for event in reader:
            count += 1
            last = event
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == reader.read == 200_000
    assert last is not None and last.id == "m199999"  # type: ignore[union-attr]
    # A loaded file would cost far more than its ~25 MB size; one line and one event cost a few kB.
    assert peak < 256 * 1024, f"peak {peak} bytes for a {size}-byte file"


# Writing.


def test_format_ts_writes_utc_with_z_and_microseconds_only_when_set() -> None:
    assert format_ts(at(10)) == "2026-03-01T10:00:00Z"
    assert format_ts(at(10, 0, 0, 250_000)) == "2026-03-01T10:00:00.250000Z"
    assert format_ts(datetime(2026, 3, 1, 11, tzinfo=timezone(timedelta(hours=1)))) == "2026-03-01T10:00:00Z"


def test_format_ts_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_ts(datetime(2026, 3, 1, 10))  # noqa: DTZ001


def test_action_dict_has_every_spec_field_in_spec_order() -> None:
    action = Post(
        ts=at(10, 5),
        community="g1",
        room="help",
        kind="nudge",
        text="Anyone?",
        question="m1",
        level=2,
        mentions=("u2", "u3"),
        key="q:g1:m1:2",
        thread="t1",
    )
    d = action_to_dict(action)
    assert tuple(d) == SPEC_FIELDS
    assert d == {
        "ts": "2026-03-01T10:05:00Z",
        "action": "post",
        "community": "g1",
        "room": "help",
        "to": None,
        "reply_to": None,
        "question": "m1",
        "kind": "nudge",
        "level": 2,
        "mentions": ["u2", "u3"],
        "text": "Anyone?",
        "reason": None,
    }


def test_action_lines_are_compact_deterministic_and_keep_unicode() -> None:
    dm = Dm(ts=at(10), community="g1", room=None, kind="digest", to="u1", text="Merci, Zoé ✨")
    refuse = Refuse(
        ts=at(10, 0, 1, 5), community="g1", room="general", kind="guard", reply_to="m9", reason="mass_dm", text="No."
    )
    assert dumps_line(action_to_dict(dm)) == (
        '{"ts":"2026-03-01T10:00:00Z","action":"dm","community":"g1","room":null,"to":"u1","reply_to":null,'
        '"question":null,"kind":"digest","level":null,"mentions":[],"text":"Merci, Zoé ✨","reason":null}\n'
    )
    assert dumps_line(action_to_dict(refuse)) == (
        '{"ts":"2026-03-01T10:00:01.000005Z","action":"refuse","community":"g1","room":"general","to":null,'
        '"reply_to":"m9","question":null,"kind":"guard","level":null,"mentions":[],"text":"No.",'
        '"reason":"mass_dm"}\n'
    )


def test_question_line_matches_the_spec() -> None:
    q = Question(
        community="g1",
        id="m1",
        room="help",
        author="u1",
        asked_ts=at(10),
        state=QState.RESOLVED,
        answered_by="m2",
        first_answer_ts=at(10, 30, 0, 250_000),
        answers=["m2", "m4"],
        credited=["u2"],
        nudges=1,
        level=1,
        thread="t1",
    )
    assert dumps_line(question_to_dict(q)) == (
        '{"type":"question","id":"m1","community":"g1","room":"help","author":"u1","asked_ts":"2026-03-01T10:00:00Z",'
        '"state":"resolved","answered_by":"m2","answers":["m2","m4"],"credited":["u2"],'
        '"first_answer_ts":"2026-03-01T10:30:00.250000Z","nudges":1}\n'
    )
    open_q = Question(community="g1", id="m7", room="help", author="u1", asked_ts=at(11))
    d = question_to_dict(open_q)
    assert (d["state"], d["answered_by"], d["answers"], d["first_answer_ts"], d["nudges"]) == (
        "open",
        None,
        [],
        None,
        0,
    )


def test_dumps_line_refuses_nan_rather_than_writing_invalid_json() -> None:
    with pytest.raises(ValueError):
        dumps_line({"ratio": float("nan")})


def test_event_to_dict_writes_spec_fields_in_spec_order_and_omits_defaults() -> None:
    m = Message(
        community="g1",
        room="help",
        id="m2",
        ts=at(10, 30),
        author="u2",
        text="hi",
        reply_to="m1",
        mentions=("u1",),
        platform="matrix",
    )
    assert list(event_to_dict(m)) == [
        "type",
        "platform",
        "community",
        "room",
        "id",
        "ts",
        "author",
        "text",
        "reply_to",
        "mentions",
    ]
    c = Command(community="g1", room="r", id="c1", author="u1", ts=at(10), name="stats")
    assert event_to_dict(c) == {
        "type": "command",
        "community": "g1",
        "room": "r",
        "id": "c1",
        "author": "u1",
        "ts": "2026-03-01T10:00:00Z",
        "name": "stats",
        "args": [],
        "is_admin": False,
    }


def test_every_fixture_event_survives_a_round_trip() -> None:
    events = list(read_events(DATA / "events_all_types.jsonl"))
    text = "".join(dumps_line(event_to_dict(e)) for e in events)
    assert read_text(text) == events


def test_message_field_order_matches_the_fast_path_constructor() -> None:
    # adapters.jsonl builds Message positionally for speed; a reordered dataclass must fail here.
    assert [f.name for f in dataclasses.fields(Message)] == [
        "community",
        "room",
        "id",
        "ts",
        "author",
        "text",
        "reply_to",
        "thread",
        "mentions",
        "is_bot",
        "author_name",
        "platform",
    ]


def test_dumps_line_writes_what_the_standard_library_writes() -> None:
    # The fast writer must not change a byte of lien's output, nor accept what the standard library refuses.
    def reference(d: dict[str, object]) -> str:
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"

    lines: list[dict[str, object]] = [
        {"text": "é ✅ 中文 \u2028 \x00\x1f\x7f \"q\" \\ / \t\n", "level": 2, "ok": True, "none": None,
         "l": ["a", "ü"]},
        {"float": 1e16, "small": 0.1},  # orjson writes floats its own way: the library does
        {"big": 10**30},  # orjson refuses ints beyond 64 bits
        {"lone": "\ud800"},  # orjson refuses lone surrogates
    ]
    for d in lines:
        assert dumps_line(d) == reference(d)
    with pytest.raises(ValueError):
        dumps_line({"x": float("nan")})
