"""Property tests of the importers: hostile files only ever raise InputError; what is written is spec-valid.

Each example writes a small file into a directory shared by the module (examples must stay fast: CI runs 10,000).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from adapters.importing import event_line, import_files, iso_stamp, translator_factory, unix_ms_stamp
from adapters.jsonl import dumps_line, event_to_dict, format_ts, parse_event, parse_ts
from bot.errors import InputError
from bot.events import EARLIEST_TS, LATEST_TS, Delete, Edit, MemberJoin, Message, Reaction

DATA = Path(__file__).resolve().parents[1] / "data" / "exports"
KINDS = ("discord", "matrix")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _import(workdir: Path, kind: str, data: bytes, skip_bad: bool) -> bytes:
    """Import `data` as an export; the output, or InputError."""
    path = workdir / "export.json"
    path.write_bytes(data)
    out = io.BytesIO()
    import_files(translator_factory(kind, None), [path], out, skip_bad=skip_bad, report=lambda message: None,
                 tmpdir=workdir)
    return out.getvalue()


def _check_output(output: bytes) -> None:
    """Every line is a valid spec event and the lines are in time order."""
    previous = None
    for i, line in enumerate(output.decode("utf-8").splitlines(), 1):
        event = parse_event(json.loads(line), f"out:{i}")
        assert event is not None
        assert previous is None or event.ts >= previous
        previous = event.ts


# -- event_line is the generic writer, faster ----------------------------------------------------------------

any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8)
# A zero offset that is not the UTC singleton takes the generic formatting path.
offsets = st.sampled_from([UTC, timezone(timedelta(0), "GMT"), timezone(timedelta(hours=2)),
                           timezone(timedelta(hours=-9, minutes=-30))])
# Hypothesis takes naive bounds and attaches `timezones` itself.
stamps = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),  # noqa: DTZ001
                      timezones=offsets)
messages = st.builds(
    Message, community=ids, room=ids, id=ids, ts=stamps, author=ids, text=any_text,
    reply_to=st.none() | ids, thread=st.none() | ids, mentions=st.lists(ids, max_size=3).map(tuple),
    is_bot=st.booleans(), author_name=st.none() | any_text, platform=st.none() | any_text,
)
reactions = st.builds(Reaction, community=ids, room=ids, message=ids, author=ids, emoji=ids, ts=stamps)
others = st.builds(Edit, community=ids, room=ids, id=ids, text=any_text, ts=stamps) | st.builds(
    Delete, community=ids, room=ids, id=ids, ts=stamps) | st.builds(MemberJoin, community=ids, author=ids, ts=stamps)


@given(messages | reactions | others)
@example(Message("g", "r", "m", datetime(2026, 3, 1, 10, tzinfo=UTC), "u", 'quote " and \\ and \n and \u2028'))
def test_event_line_is_byte_identical_to_event_to_dict_and_dumps_line(event: Any) -> None:
    assert event_line(event) == dumps_line(event_to_dict(event))


# -- hostile files ----------------------------------------------------------------------------------------------


@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=300), skip_bad=st.booleans())
@example(kind="discord", data=b'{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [', skip_bad=True)
@example(kind="matrix", data=b'\xef\xbb\xbf{"messages": [{"type": "m.room.message"}, 1, "x", null]}', skip_bad=True)
def test_arbitrary_bytes_only_raise_input_error(workdir: Path, kind: str, data: bytes, skip_bad: bool) -> None:
    try:
        output = _import(workdir, kind, data, skip_bad)
    except InputError:
        return
    _check_output(output)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    alphabet=st.characters(codec=None), max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


#: Wrong values of every JSON type (cheap to draw, unlike `json_values`, so that 10,000 examples stay fast).
junk = st.sampled_from([None, 0, -1, 1.5, "", "x", True, [], {}, [1], {"a": None}])


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value, often; sometimes a value of a wrong type."""
    return st.one_of(value, value, value, junk)


discord_users = st.fixed_dictionaries({"id": maybe(st.sampled_from(["1", "2", ""]))},
                                      optional={"isBot": maybe(st.booleans()), "name": maybe(st.text(max_size=3)),
                                                "nickname": maybe(st.none())})
discord_records = st.fixed_dictionaries(
    {"id": maybe(st.sampled_from(["10", "11", "12"])),
     "type": maybe(st.sampled_from(["Default", "Reply", "GuildMemberJoin", "ThreadCreated", "19"]))},
    optional={
        "timestamp": maybe(st.sampled_from(["2026-03-02T10:00:00+01:00", "2026-03-02T09:00:00Z", "2026-03-02",
                                            "0001-01-01T00:00:00+01:00"])),
        "content": maybe(st.text(alphabet=st.characters(codec=None), max_size=5)),
        "author": maybe(discord_users),
        "reference": maybe(st.fixed_dictionaries({"messageId": maybe(st.sampled_from(["10", None]))})),
        "mentions": maybe(st.lists(maybe(discord_users), max_size=2)),
        "reactions": maybe(st.lists(maybe(st.fixed_dictionaries(
            {"emoji": maybe(st.fixed_dictionaries({"id": maybe(st.sampled_from(["", "77"])),
                                                   "name": maybe(st.sampled_from(["✅", "x"]))}))},
            optional={"count": maybe(st.integers(-1, 3)), "users": maybe(st.lists(maybe(discord_users), max_size=2))},
        )), max_size=2)),
    },
)
discord_exports = st.fixed_dictionaries(
    {"guild": maybe(st.fixed_dictionaries({"id": maybe(st.sampled_from(["1", "0"]))})),
     "channel": maybe(st.fixed_dictionaries(
         {"id": maybe(st.just("5"))},
         optional={"type": maybe(st.sampled_from(["GuildTextChat", "GuildPublicThread", "DirectTextChat"])),
                   "categoryId": maybe(st.sampled_from(["4", None]))})),
     "messages": st.lists(maybe(discord_records), max_size=3)},
    optional={"messageCount": junk},
)
relations = st.fixed_dictionaries({}, optional={
    "rel_type": maybe(st.sampled_from(["m.thread", "m.replace", "m.annotation"])),
    "event_id": maybe(st.sampled_from(["$1", "$2"])), "key": maybe(st.sampled_from(["✅", ""])),
    "is_falling_back": maybe(st.booleans()),
    "m.in_reply_to": maybe(st.fixed_dictionaries({"event_id": maybe(st.just("$1"))})),
})
matrix_records = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["m.room.message", "m.reaction", "m.room.redaction", "m.room.member",
                                    "m.room.topic"])),
     "event_id": maybe(st.sampled_from(["$1", "$2", "$3"])), "sender": maybe(st.just("@a:s")),
     "room_id": maybe(st.sampled_from(["!r:s", "!v12"])),
     "origin_server_ts": maybe(st.integers(-(10**15), 10**17))},
    optional={
        "redacts": maybe(st.just("$1")), "state_key": maybe(st.just("@b:s")),
        "unsigned": maybe(st.fixed_dictionaries({}, optional={
            "prev_content": maybe(st.fixed_dictionaries({"membership": maybe(st.sampled_from(["join", "invite"]))})),
            "redacted_because": junk})),
        "content": maybe(st.fixed_dictionaries({}, optional={
            "msgtype": maybe(st.sampled_from(["m.text", "m.notice", "m.image"])),
            "body": maybe(st.text(alphabet=st.characters(codec=None), max_size=6).map(lambda t: "> <@x> q\n\n" + t)),
            "membership": maybe(st.sampled_from(["join", "leave", "ban"])),
            "m.relates_to": maybe(relations),
            "m.new_content": maybe(st.fixed_dictionaries({"body": maybe(st.just("new"))})),
            "m.mentions": maybe(st.fixed_dictionaries({"user_ids": maybe(st.lists(maybe(st.just("@c:s")),
                                                                                  max_size=2))})),
            "format": maybe(st.just("org.matrix.custom.html")),
            "formatted_body": maybe(st.just('<a href="https://matrix.to/#/@d:s">d</a>')),
        })),
    },
)
matrix_exports = st.fixed_dictionaries({"room_name": junk, "messages": st.lists(maybe(matrix_records), max_size=3)})


@given(kind_and_doc=st.tuples(st.just("discord"), discord_exports) | st.tuples(st.just("matrix"), matrix_exports),
       skip_bad=st.booleans(), cut=st.none() | st.integers(0, 400))
def test_export_shaped_documents_only_raise_input_error_and_write_spec_lines(
    workdir: Path, kind_and_doc: tuple[str, dict[str, Any]], skip_bad: bool, cut: int | None
) -> None:
    kind, doc = kind_and_doc
    data = json.dumps(doc, indent=1).encode("utf-8")
    if cut is not None:
        data = data[:cut]
    try:
        output = _import(workdir, kind, data, skip_bad)
    except InputError:
        return
    _check_output(output)


SAMPLES = {name: (DATA / name).read_bytes() for name in ("discord_channel.json", "element_room.json")}


@given(name=st.sampled_from(sorted(SAMPLES)), at=st.integers(0, 20_000), length=st.integers(0, 40),
       junk=st.binary(max_size=6), skip_bad=st.booleans())
def test_damaged_samples_only_raise_input_error(workdir: Path, name: str, at: int, length: int, junk: bytes,
                                               skip_bad: bool) -> None:
    data = SAMPLES[name]
    at %= len(data)
    damaged = data[:at] + junk + data[at + length:]
    kind = "discord" if name.startswith("discord") else "matrix"
    try:
        output = _import(workdir, kind, damaged, skip_bad)
    except InputError:
        return
    _check_output(output)


# -- timestamps read with string operations are read as parse_ts reads them -------------------------------------

_DIGIT_OR_NOT = st.sampled_from("0123456789") | st.sampled_from("0123456789") | st.sampled_from(
    list("aT :.+-Z\u0661\u00b2_ "))


@st.composite
def exporter_stamps(draw: st.DrawFn) -> str:
    """Stamps of the exporter's form `YYYY-MM-DDTHH:MM:SS.mmm+HH:MM`, some valid, some damaged in one place."""
    ts = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))  # noqa: DTZ001
    sign = draw(st.sampled_from("+-"))
    offset = f"{sign}{draw(st.integers(0, 25)):02d}:{draw(st.sampled_from([0, 0, 0, 30, 45, 60])):02d}"
    stamp = ts.strftime("%Y-%m-%d") + draw(st.sampled_from("TTTt ")) + ts.strftime("%H:%M:%S") \
        + f".{ts.microsecond // 1000:03d}" + offset
    if draw(st.booleans()):
        at = draw(st.integers(0, len(stamp) - 1))
        stamp = stamp[:at] + draw(_DIGIT_OR_NOT) + stamp[at + 1:]
    return stamp


def _reference(value: str) -> tuple[int, str] | str:
    try:
        ts = parse_ts(value, "", "timestamp")
    except InputError as e:
        return str(e)
    return (ts - datetime(1, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1), format_ts(ts)


@given(stamp=exporter_stamps())
@example(stamp="2026-01-05T08:00:00.000+00:00")
@example(stamp="0001-01-01T00:30:00.000+01:00")
@example(stamp="9999-12-31T23:30:00.000-01:00")
@example(stamp="9998-12-31T23:59:59.999+00:00")  # the last hour lien reads (LATEST_TS)...
@example(stamp="9999-01-01T00:00:00.000+00:00")  # ... and the first it does not
@example(stamp="1970-01-01T00:30:00.000+01:00")  # before EARLIEST_TS in UTC
@example(stamp="1970-01-01T00:00:00.000+00:00")
@example(stamp="2026-01-05T24:00:00.000+00:00")
@example(stamp="2026-01-05T08:00:60.000+00:00")
def test_iso_stamp_reads_as_parse_ts_and_writes_as_format_ts(stamp: str) -> None:
    try:
        got: tuple[int, str] | str = iso_stamp(stamp, "timestamp")
    except InputError as e:
        got = str(e)
    assert got == _reference(stamp)


@given(ms=st.integers(-(10**15), 10**15) | st.integers(-62135596800000 - 5, -62135596800000 + 5)
       | st.integers(253402300799000 - 5, 253402300799999 + 5) | st.integers(-5, 5)
       | st.integers(253370764800000 - 5, 253370764800000 + 5))  # datetime's ends, lien's ends
def test_unix_ms_stamp_is_the_datetime_arithmetic(ms: int) -> None:
    try:
        ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    except OverflowError:
        ts = None
    if ts is None or not EARLIEST_TS <= ts < LATEST_TS:  # out of the times lien reads, as parse_ts refuses them
        with pytest.raises(OverflowError):
            unix_ms_stamp(ms)
        return
    assert unix_ms_stamp(ms) == ((ts - datetime(1, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1), format_ts(ts))


def test_iso_stamp_reads_every_minute_second_and_millisecond_as_parse_ts() -> None:
    stamps = [f"2026-03-02T10:00:00.{ms:03d}+00:00" for ms in range(1000)]
    stamps += [f"2026-03-02T10:{s // 60:02d}:{s % 60:02d}.000-05:00" for s in range(3600)]
    assert [iso_stamp(s, "timestamp") for s in stamps] == [_reference(s) for s in stamps]
