"""Property tests of the JSONL edge: hostile input only ever raises InputError; events survive a round trip."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from adapters.jsonl import _parse_with_schema, dumps_line, event_to_dict, parse_event, parse_ts, read_events
from bot.errors import InputError
from bot.events import Command, Delete, Edit, Event, MemberJoin, MemberLeave, Message, Reaction

NAME = Path("events.jsonl")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
iso_like = st.from_regex(
    r"\A[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}([T t][0-9]{1,2}(:[0-9]{2}(:[0-9]{2}([.,][0-9]{0,9})?)?)?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2}(:[0-9]{2})?)?)?\Z"
)

VALID: dict[str, dict[str, Any]] = {
    "message": {
        "type": "message",
        "platform": "discord",
        "community": "g",
        "room": "r",
        "id": "m",
        "ts": "2026-03-01T10:00:00Z",
        "author": "u",
        "author_name": "Ada",
        "text": "hi",
        "reply_to": "p",
        "thread": "t",
        "mentions": ["a", "b"],
        "is_bot": False,
    },
    "reaction": {
        "type": "reaction",
        "community": "g",
        "room": "r",
        "message": "m",
        "author": "u",
        "emoji": "x",
        "ts": "2026-03-01T10:00:00Z",
    },
    "edit": {"type": "edit", "community": "g", "room": "r", "id": "m", "text": "t", "ts": "2026-03-01T10:00:00Z"},
    "delete": {"type": "delete", "community": "g", "room": "r", "id": "m", "ts": "2026-03-01T10:00:00Z"},
    "member_join": {"type": "member_join", "community": "g", "author": "u", "ts": "2026-03-01T10:00:00Z"},
    "member_leave": {"type": "member_leave", "community": "g", "author": "u", "ts": "2026-03-01T10:00:00Z"},
    "command": {
        "type": "command",
        "community": "g",
        "room": "r",
        "id": "c",
        "author": "u",
        "ts": "2026-03-01T10:00:00Z",
        "name": "stats",
        "args": ["7d"],
        "is_admin": True,
        "is_dm": False,
    },
}
_DELETE = object()


@st.composite
def near_valid_objects(draw: st.DrawFn, kinds: tuple[str, ...] = tuple(VALID)) -> dict[str, Any]:
    """A valid event object of one of `kinds` with one to three fields replaced by arbitrary values, or deleted."""
    obj = dict(VALID[draw(st.sampled_from(kinds))])
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*obj, "type", "extra"]))
        value = draw(st.just(_DELETE) | json_values | iso_like | st.sampled_from(["", "message", "command"]))
        if value is _DELETE:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def assert_event_or_none(result: object) -> None:
    assert result is None or isinstance(result, Message | Reaction | Edit | Delete | MemberJoin | MemberLeave | Command)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_arbitrary_json_objects_only_ever_raise_input_error(obj: dict[str, Any]) -> None:
    try:
        assert_event_or_none(parse_event(obj, "x:1"))
    except InputError as e:
        assert str(e).startswith("x:1: ")


@given(near_valid_objects())
def test_near_valid_objects_only_ever_raise_input_error_naming_a_field(obj: dict[str, Any]) -> None:
    def outcome(parse: Any) -> object:
        try:
            return parse()
        except InputError as e:
            return e

    result = outcome(lambda: parse_event(obj, "x:1"))
    if isinstance(result, InputError):
        assert result.field is not None and str(result).startswith(f"x:1: {result.field}: ")
    else:
        assert_event_or_none(result)
        assert result is None or result.ts.tzinfo is UTC  # type: ignore[attr-defined]
    if obj.get("type") == "message":
        # The inline fast path for messages must give the very same event or error as the generic path.
        generic = outcome(lambda: _parse_with_schema(obj, "x:1", "message"))
        assert str(result) == str(generic) if isinstance(result, InputError) else result == generic


@given(st.text(max_size=40) | iso_like)
@example("0001-01-01T00:00:00+01:00")
@example("9999-12-31T23:59:59-23:59")
@example("2026-03-01T10:00:00\ud800Z")
def test_arbitrary_timestamps_parse_to_utc_or_raise_input_error(text: str) -> None:
    try:
        ts = parse_ts(text, "x:1")
    except InputError as e:
        assert str(e).startswith("x:1: ts: ")
    else:
        assert ts.tzinfo is UTC


lines = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=40),
    json_values.map(json.dumps),
    near_valid_objects().map(json.dumps),
    st.sampled_from(["", "//", "  // c", "\ufeff{}", "{", "[]", "null", b"\xff{}", b"\xef\xbb\xbf{}"]),
)


@given(st.lists(lines, max_size=6), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_arbitrary_lines_only_ever_raise_input_error(items: list[str | bytes], sep: str, binary: bool) -> None:
    def source() -> io.StringIO | io.BytesIO:
        if binary:
            # A binary source is what read_events uses for files: each line is decoded on its own.
            raw = [i if isinstance(i, bytes) else i.encode("utf-8", "surrogatepass") for i in items]
            return io.BytesIO(sep.encode().join(raw))
        return io.StringIO(sep.join(i if isinstance(i, str) else i.decode("latin-1") for i in items))

    try:
        for event in read_events(NAME, source()):
            assert_event_or_none(event)
    except InputError as e:
        assert str(e).startswith("events.jsonl:")
    reader = read_events(NAME, source(), skip_bad=True, on_bad=lambda e: None)
    events = list(reader)
    assert reader.read == len(events)
    assert reader.read + reader.skipped_bad + reader.unknown_types <= reader.lines


ids = st.text(min_size=1, max_size=8)
texts = st.text(max_size=20)
offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Hypothesis takes naive bounds; the generated values are aware. The range is within the times lien reads
# (`bot.events.EARLIEST_TS` to `LATEST_TS`) whatever the offset.
aware = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC) | offsets,
)
opt_ids = st.none() | ids

events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        Message,
        community=ids,
        room=ids,
        id=ids,
        ts=aware,
        author=ids,
        text=texts,
        reply_to=opt_ids,
        thread=opt_ids,
        mentions=st.lists(ids, max_size=3).map(tuple),
        is_bot=st.booleans(),
        author_name=st.none() | texts,
        platform=st.none() | texts,
    ),
    st.builds(Reaction, community=ids, room=ids, message=ids, author=ids, emoji=ids, ts=aware),
    st.builds(Edit, community=ids, room=ids, id=ids, text=texts, ts=aware),
    st.builds(Delete, community=ids, room=ids, id=ids, ts=aware),
    st.builds(MemberJoin, community=ids, author=ids, ts=aware),
    st.builds(MemberLeave, community=ids, author=ids, ts=aware),
    st.builds(
        Command,
        community=ids,
        room=ids,
        id=ids,
        author=ids,
        ts=aware,
        name=ids,
        args=st.lists(texts, max_size=3).map(tuple),
        is_admin=st.booleans(),
        is_dm=st.booleans(),
    ),
)


@given(st.lists(events, min_size=1, max_size=4))
def test_event_to_dict_to_line_and_back_is_the_same_event(batch: list[Event]) -> None:
    written = [dumps_line(event_to_dict(e)) for e in batch]
    for event, line in zip(batch, written, strict=True):
        assert line.endswith("\n") and "\n" not in line[:-1]
        parsed = parse_event(json.loads(line), "x:1")
        assert parsed == event
        assert parsed is not None and parsed.ts.tzinfo is UTC
    assert list(read_events(NAME, io.StringIO("".join(written)))) == batch
