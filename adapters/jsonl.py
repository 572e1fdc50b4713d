"""The JSON Lines edge (`spec/events.md`): read events strictly, write actions and question states deterministically.

Reading streams line by line and reports every problem as `file:line: field: problem` (an `InputError`).
Writing produces compact JSON with keys in spec order, so the same run gives byte-identical output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson

from bot.actions import Action
from bot.errors import InputError
from bot.events import (
    EARLIEST_TS,
    LATEST_TS,
    TS_RANGE,
    Command,
    Delete,
    Edit,
    Event,
    MemberJoin,
    MemberLeave,
    Message,
    Reaction,
)
from bot.model import Question

__all__ = [
    "EventReader",
    "action_to_dict",
    "dumps_line",
    "event_to_dict",
    "format_ts",
    "parse_event",
    "parse_ts",
    "question_to_dict",
    "read_events",
]

log = logging.getLogger(__name__)

#: Distinct unknown `type` names remembered for warnings; beyond this they are only counted.
_MAX_UNKNOWN_NAMES: Final = 32
#: Longest value quoted back in an error message.
_MAX_QUOTE: Final = 60


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _quote(value: str) -> str:
    """`value` quoted for an error message, shortened when long."""
    if len(value) > _MAX_QUOTE:
        value = value[: _MAX_QUOTE - 3] + "..."
    return repr(value)


# Field checkers: (value, where, field) -> converted value, or raise InputError. `value` is never missing here.


def _id(value: Any, where: str, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, str):
        raise InputError("expected a non-empty string id, got ''", where=where, field=field)
    raise InputError(f"expected a string id, got {_json_type(value)}", where=where, field=field)


def _str(value: Any, where: str, field: str) -> str:
    if isinstance(value, str):
        return value
    raise InputError(f"expected a string, got {_json_type(value)}", where=where, field=field)


def _name(value: Any, where: str, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, str):
        raise InputError("expected a non-empty string, got ''", where=where, field=field)
    raise InputError(f"expected a string, got {_json_type(value)}", where=where, field=field)


def _bool(value: Any, where: str, field: str) -> bool:
    if type(value) is bool:
        return value
    raise InputError(f"expected true or false, got {_json_type(value)}", where=where, field=field)


def _str_list(value: Any, where: str, field: str, *, ids: bool) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        what = "string ids" if ids else "strings"
        raise InputError(f"expected a list of {what}, got {_json_type(value)}", where=where, field=field)
    check = _id if ids else _str
    for i, item in enumerate(value):
        if not isinstance(item, str) or (ids and not item):
            check(item, where, f"{field}[{i}]")
    return tuple(value)


def _ids(value: Any, where: str, field: str) -> tuple[str, ...]:
    return _str_list(value, where, field, ids=True)


def _strs(value: Any, where: str, field: str) -> tuple[str, ...]:
    return _str_list(value, where, field, ids=False)


def parse_ts(value: Any, where: str, field: str = "ts") -> datetime:
    """An ISO 8601 timestamp with an explicit offset or `Z`, as a UTC datetime; anything else is an InputError."""
    if not isinstance(value, str):
        raise InputError(f"expected an ISO 8601 timestamp string, got {_json_type(value)}", where=where, field=field)
    try:
        # fromisoformat accepts any character between date and time; ISO 8601 and RFC 3339 allow only these.
        if "T" not in value and " " not in value and "t" not in value:
            raise ValueError
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"not an ISO 8601 date-time: {_quote(value)}", where=where, field=field) from None
    tz = dt.tzinfo
    if tz is not UTC:
        if tz is None:
            raise InputError(f"timestamp has no offset (add Z or +HH:MM): {_quote(value)}", where=where, field=field)
        try:
            dt = dt.astimezone(UTC)
        except OverflowError:
            raise _out_of_range(value, where, field) from None
    if EARLIEST_TS <= dt < LATEST_TS:
        return dt
    raise _out_of_range(value, where, field)


def _out_of_range(value: str, where: str, field: str) -> InputError:
    return InputError(f"timestamp out of range ({TS_RANGE}): {_quote(value)}", where=where, field=field)


_REQUIRED: Final = True
_OPTIONAL: Final = False
_Checker = Callable[[Any, str, str], Any]

#: Per event type: the dataclass and its fields (name, checker, required) in spec order.
_SCHEMAS: Final[dict[str, tuple[type, tuple[tuple[str, _Checker, bool], ...]]]] = {
    "message": (
        Message,
        (
            ("platform", _str, _OPTIONAL),
            ("community", _id, _REQUIRED),
            ("room", _id, _REQUIRED),
            ("id", _id, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
            ("author", _id, _REQUIRED),
            ("author_name", _str, _OPTIONAL),
            ("text", _str, _REQUIRED),
            ("reply_to", _id, _OPTIONAL),
            ("thread", _id, _OPTIONAL),
            ("mentions", _ids, _OPTIONAL),
            ("is_bot", _bool, _OPTIONAL),
        ),
    ),
    "reaction": (
        Reaction,
        (
            ("community", _id, _REQUIRED),
            ("room", _id, _REQUIRED),
            ("message", _id, _REQUIRED),
            ("author", _id, _REQUIRED),
            ("emoji", _name, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
        ),
    ),
    "edit": (
        Edit,
        (
            ("community", _id, _REQUIRED),
            ("room", _id, _REQUIRED),
            ("id", _id, _REQUIRED),
            ("text", _str, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
        ),
    ),
    "delete": (
        Delete,
        (
            ("community", _id, _REQUIRED),
            ("room", _id, _REQUIRED),
            ("id", _id, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
        ),
    ),
    "member_join": (
        MemberJoin,
        (
            ("community", _id, _REQUIRED),
            ("author", _id, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
        ),
    ),
    "member_leave": (
        MemberLeave,
        (
            ("community", _id, _REQUIRED),
            ("author", _id, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
        ),
    ),
    "command": (
        Command,
        (
            ("community", _id, _REQUIRED),
            ("room", _id, _REQUIRED),
            ("id", _id, _REQUIRED),
            ("author", _id, _REQUIRED),
            ("ts", parse_ts, _REQUIRED),
            ("name", _name, _REQUIRED),
            # `args` and `is_admin` default to () and False (the safe side) when a producer leaves them out.
            ("args", _strs, _OPTIONAL),
            ("is_admin", _bool, _OPTIONAL),
            # Not in spec v1: an optional extension written by adapters for commands sent in a private conversation.
            ("is_dm", _bool, _OPTIONAL),
        ),
    ),
}

_MISSING: Final = object()


def _message_fast(obj: Mapping[str, Any], where: str) -> Message | None:
    """The common case of a valid message, checked inline; None sends the line to the generic path for errors."""
    get = obj.get
    community = get("community")
    room = get("room")
    id_ = get("id")
    author = get("author")
    text = get("text")
    reply_to = get("reply_to")
    thread = get("thread")
    mentions = get("mentions")
    is_bot = get("is_bot")
    author_name = get("author_name")
    platform = get("platform")
    if not (
        type(community) is str
        and community
        and type(room) is str
        and room
        and type(id_) is str
        and id_
        and type(author) is str
        and author
        and type(text) is str
        and (reply_to is None or (type(reply_to) is str and reply_to))
        and (thread is None or (type(thread) is str and thread))
        and (is_bot is None or type(is_bot) is bool)
        and (author_name is None or type(author_name) is str)
        and (platform is None or type(platform) is str)
    ):
        return None
    if mentions is None:
        mentions = ()
    elif type(mentions) is list:
        for m in mentions:
            if type(m) is not str or not m:
                return None
        mentions = tuple(mentions)
    else:
        return None
    raw_ts = get("ts")
    if raw_ts is None:
        return None
    # Every other field is valid here, so a `ts` error is the one the generic path would report.
    ts = parse_ts(raw_ts, where)
    # Positional: measurably faster than keywords on the hot path; the field order is pinned by a test.
    return Message(
        community, room, id_, ts, author, text, reply_to, thread, mentions, bool(is_bot), author_name, platform
    )


def parse_event(obj: Mapping[str, Any], where: str) -> Event | None:
    """Validate one decoded JSON object into an event; None for an unknown `type`; InputError if invalid.

    Unknown extra fields are ignored; an optional field set to null counts as absent.
    """
    kind = obj.get("type", _MISSING)
    if not isinstance(kind, str):
        if kind is _MISSING:
            raise InputError("required field is missing", where=where, field="type")
        raise InputError(f"expected a string, got {_json_type(kind)}", where=where, field="type")
    if kind == "message":
        fast = _message_fast(obj, where)
        if fast is not None:
            return fast
    return _parse_with_schema(obj, where, kind)


def _parse_with_schema(obj: Mapping[str, Any], where: str, kind: str) -> Event | None:
    """The generic, table-driven path: every event type, every error, fields checked in spec order."""
    schema = _SCHEMAS.get(kind)
    if schema is None:
        return None
    cls, fields = schema
    kwargs: dict[str, Any] = {}
    get = obj.get
    for name, check, required in fields:
        value = get(name, _MISSING)
        if value is _MISSING or (value is None and not required):
            if required:
                raise InputError("required field is missing", where=where, field=name)
            continue
        kwargs[name] = check(value, where, name)
    event: Event = cls(**kwargs)
    return event


#: `EventReader._careful` found nothing to parse on the line (blank, comment, or bad and reported).
_SKIP: Final = object()


class EventReader(Iterator[Event]):
    """An iterator of events from a JSONL source, streaming line by line, with counters.

    `first_line` numbers the first line given, in messages (1 for a file; a tail that reads on from the middle of
    one says where it is). `lines`: the number of the last line consumed (for a file, how many); `read`: events
    yielded; `skipped_bad`: bad lines skipped (skip_bad=True);
    `unknown_types`: lines with an unknown `type`, skipped (`unknown_type_names`: counts of the first few names).
    Closes the file it opened when exhausted or closed.
    """

    def __init__(
        self,
        lines: Iterable[str | bytes],
        name: str,
        *,
        skip_bad: bool,
        on_bad: Callable[[InputError], None] | None,
        owned: IO[Any] | None = None,
        first_line: int = 1,
    ) -> None:
        self.name = name
        self._first = first_line
        self.lines = first_line - 1
        self.read = 0
        self.skipped_bad = 0
        self.unknown_types = 0
        self.unknown_type_names: dict[str, int] = {}
        self._skip_bad = skip_bad
        self._on_bad = on_bad
        self._owned = owned
        self._gen = self._events(lines)

    def __iter__(self) -> Iterator[Event]:
        return self._gen

    def __next__(self) -> Event:
        return next(self._gen)

    def __enter__(self) -> EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and close the file if this reader opened it."""
        self._gen.close()
        if self._owned is not None:
            self._owned.close()

    def _bad(self, error: InputError) -> None:
        if not self._skip_bad:
            raise error
        self.skipped_bad += 1
        if self._on_bad is not None:
            self._on_bad(error)
        else:
            log.warning("skipping bad line: %s", error)

    def _unknown(self, kind: str, where: str) -> None:
        self.unknown_types += 1
        names = self.unknown_type_names
        key = kind[:_MAX_QUOTE]
        if key in names:
            names[key] += 1
        elif len(names) < _MAX_UNKNOWN_NAMES:
            names[key] = 1
            log.warning("%s: skipping unknown event type %s (further ones are only counted)", where, _quote(kind))

    def _careful(self, raw: str | bytes, lineno: int) -> Any:
        """One line decoded by the standard library: the JSON value, or `_SKIP` (blank, comment, or bad and
        reported through `_bad`). It names the position of an error exactly."""
        where = f"{self.name}:{lineno}"
        if type(raw) is bytes:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                self._bad(InputError(f"invalid UTF-8 at byte {e.start + 1}", where=where))
                return _SKIP
        else:
            line = raw  # type: ignore[assignment]
        if line[:1] != "{":
            if lineno == 1 and line[:1] == "\ufeff":
                line = line[1:]
            stripped = line.strip()
            if not stripped or stripped.startswith("//"):
                return _SKIP
        try:
            return json.loads(line)
        except json.JSONDecodeError as e:
            # Not `colno`: the trailing newline would make an unfinished object end on a second line.
            column = min(e.pos, len(line.rstrip("\r\n"))) + 1
            self._bad(InputError(f"invalid JSON: {e.msg} (column {column})", where=where))
        except (ValueError, RecursionError) as e:
            problem = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            self._bad(InputError(f"invalid JSON: {problem}", where=where))
        return _SKIP

    def _events(self, lines: Iterable[str | bytes]) -> Iterator[Event]:
        name = self.name
        lineno = self._first - 1
        fast_loads, fast_error = orjson.loads, orjson.JSONDecodeError
        try:
            for raw in lines:
                lineno += 1
                self.lines = lineno
                obj: Any = None
                if type(raw) is bytes and raw[:1] == b"{":
                    # The fast path: orjson decodes a well-formed object straight from the bytes. Anything it
                    # refuses (bad UTF-8, bad JSON, NaN, lone surrogates) takes the careful path below, which
                    # accepts or reports exactly as before.
                    try:
                        obj = fast_loads(raw)
                    except fast_error:
                        obj = None
                if obj is None:
                    obj = self._careful(raw, lineno)
                    if obj is _SKIP:
                        continue
                if type(obj) is not dict:
                    problem = f"expected a JSON object, got {_json_type(obj)}"
                    self._bad(InputError(problem, where=f"{name}:{lineno}"))
                    continue
                try:
                    # `where` is only formatted when needed: parse with a placeholder, then re-raise with it.
                    event = parse_event(obj, "")
                except InputError as e:
                    self._bad(InputError(e.problem, where=f"{name}:{lineno}", field=e.field))
                    continue
                if event is None:
                    self._unknown(obj["type"], f"{name}:{lineno}")
                    continue
                self.read += 1
                yield event
        except UnicodeDecodeError as e:
            # Raised by a text stream while decoding ahead: its position is not reliable, so this is fatal.
            raise InputError(f"invalid text encoding ({e.reason})", where=f"{name}:{lineno + 1}") from None
        finally:
            self.lines = lineno
            if self._owned is not None:
                self._owned.close()


def read_events(
    path: Path | str | None,
    stream: IO[str] | IO[bytes] | None = None,
    *,
    skip_bad: bool = False,
    on_bad: Callable[[InputError], None] | None = None,
) -> EventReader:
    """Stream the events of a JSONL file (or of `stream`, with `path` only naming it in messages).

    Blank lines and `//` lines are skipped, unknown types counted and skipped. A bad line raises InputError, or
    with `skip_bad` is passed to `on_bad` (default: a warning) and reading goes on. A file that cannot be opened
    raises InputError at once.
    """
    if stream is not None:
        label = str(path) if path is not None else str(getattr(stream, "name", "<stream>"))
        return EventReader(stream, label, skip_bad=skip_bad, on_bad=on_bad)
    if path is None:
        raise ValueError("read_events needs a path or a stream")
    try:
        # Binary, so that a line of invalid UTF-8 is reported at its own line number and can be skipped.
        f = Path(path).open("rb")  # noqa: SIM115 (the reader owns and closes it)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", where=str(path)) from None
    return EventReader(f, str(path), skip_bad=skip_bad, on_bad=on_bad, owned=f)


# Writing.


def format_ts(dt: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS[.ffffff]Z` in UTC (microseconds only when non-zero); naive datetimes are refused."""
    if dt.tzinfo is UTC:
        return dt.isoformat()[:-6] + "Z"  # the common case: the text before "+00:00", with no conversion
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime cannot be written: {dt!r}")
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _opt_ts(dt: datetime | None) -> str | None:
    return None if dt is None else format_ts(dt)


def action_to_dict(action: Action) -> dict[str, Any]:
    """An action as a spec action line: every spec field, in spec order, null when unset."""
    return {
        "ts": format_ts(action.ts),
        "action": type(action).name,
        "community": action.community,
        "room": action.room,
        "to": action.to,
        "reply_to": action.reply_to,
        "question": action.question,
        "kind": action.kind,
        "level": action.level,
        "mentions": list(action.mentions),
        "text": action.text,
        "reason": action.reason,
    }


def question_to_dict(q: Question) -> dict[str, Any]:
    """A tracked question as a spec `question` line."""
    return {
        "type": "question",
        "id": q.id,
        "community": q.community,
        "room": q.room,
        "author": q.author,
        "asked_ts": format_ts(q.asked_ts),
        "state": q.state.value,
        "answered_by": q.answered_by,
        "answers": list(q.answers),
        "credited": list(q.credited),
        "first_answer_ts": _opt_ts(q.first_answer_ts),
        "nudges": q.nudges,
    }


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as a spec event line (the inverse of `parse_event`); optional fields only when not default."""
    if isinstance(event, Message):
        d: dict[str, Any] = {"type": "message"}
        if event.platform is not None:
            d["platform"] = event.platform
        d.update(community=event.community, room=event.room, id=event.id, ts=format_ts(event.ts), author=event.author)
        if event.author_name is not None:
            d["author_name"] = event.author_name
        d["text"] = event.text
        if event.reply_to is not None:
            d["reply_to"] = event.reply_to
        if event.thread is not None:
            d["thread"] = event.thread
        if event.mentions:
            d["mentions"] = list(event.mentions)
        if event.is_bot:
            d["is_bot"] = True
        return d
    if isinstance(event, Reaction):
        return {
            "type": "reaction",
            "community": event.community,
            "room": event.room,
            "message": event.message,
            "author": event.author,
            "emoji": event.emoji,
            "ts": format_ts(event.ts),
        }
    if isinstance(event, Edit):
        return {
            "type": "edit",
            "community": event.community,
            "room": event.room,
            "id": event.id,
            "text": event.text,
            "ts": format_ts(event.ts),
        }
    if isinstance(event, Delete):
        return {
            "type": "delete",
            "community": event.community,
            "room": event.room,
            "id": event.id,
            "ts": format_ts(event.ts),
        }
    if isinstance(event, MemberJoin | MemberLeave):
        kind = "member_join" if isinstance(event, MemberJoin) else "member_leave"
        return {"type": kind, "community": event.community, "author": event.author, "ts": format_ts(event.ts)}
    if isinstance(event, Command):
        d = {
            "type": "command",
            "community": event.community,
            "room": event.room,
            "id": event.id,
            "author": event.author,
            "ts": format_ts(event.ts),
            "name": event.name,
            "args": list(event.args),
            "is_admin": event.is_admin,
        }
        if event.is_dm:
            d["is_dm"] = True
        return d
    raise TypeError(f"not an event: {event!r}")


def dumps_line(d: Mapping[str, Any]) -> str:
    """One compact, deterministic JSON line, newline included (keys in insertion order, UTF-8 kept as is)."""
    # orjson writes spec lines (strings, ints, booleans, nulls, lists of strings) byte for byte as the standard
    # library does, ten times faster. It writes floats its own way and NaN as null, and refuses what is not plain
    # JSON (lone surrogates, huge ints, non-dict mappings): those take the standard library, as before.
    if type(d) is dict and float not in set(map(type, d.values())):
        try:
            return orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
