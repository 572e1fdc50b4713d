"""Fuzzing the config loader: whatever the text, the only failure is a ConfigError naming the file.

Three sources: arbitrary text, arbitrary TOML-shaped documents, and documents shaped like lien's schema (valid
and invalid values mixed) so that deep keys such as `communities.ID.rooms.ID.nudges.quiet_hours.start` are reached.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from bot.config import CommunityOverride, NudgeSettings, QuestionSettings, Settings
from bot.config_file import MatrixSection, _key_lines, parse_settings
from bot.errors import ConfigError

SOURCE = "fuzz.toml"
SECRET = "fuzz-secret-VALUE-42"
ENV = {"LIEN_TOKEN": SECRET, "LIEN_EMPTY": " "}
SECRET_FILE_MARK = "@SECRET_FILE@"


class DiscordSchema(BaseModel):
    """Stands in for the Discord adapter's schema, injected as main does (with a default token variable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_env: str = "LIEN_TOKEN"
    token_file: str | None = None
    admin_roles: tuple[str, ...] = ()
    command_sync: Literal["global", "guilds", "off"] = "global"
    shard_count: int | None = Field(default=None, ge=1)


SECTIONS = {"discord": DiscordSchema}


# --- serializing to TOML (ours, so the fuzzer controls layout) ------------------------------------------------


def _toml_string(value: str) -> str:
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif c < " " or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(data: dict[str, Any], inline_below: int = 99) -> tuple[str, dict[tuple[str, ...], int]]:
    """TOML text for `data` (tables as [headers] down to `inline_below` levels, inline below), and each key's line."""
    out: list[str] = []
    where: dict[tuple[str, ...], int] = {}

    def table(node: dict[str, Any], path: tuple[str, ...]) -> None:
        if path:
            out.append("[" + ".".join(_toml_key(p) for p in path) + "]")
            where[path] = len(out)
        subtables = []
        for key, value in node.items():
            if isinstance(value, dict) and len(path) < inline_below:
                subtables.append((key, value))
            else:
                out.append(f"{_toml_key(key)} = {_toml_value(value)}")
                where[(*path, key)] = len(out)
        for key, value in subtables:
            table(value, (*path, key))

    table(data, ())
    return "\n".join(out) + "\n", where


# --- strategies ---------------------------------------------------------------------------------------------------

KNOWN_KEYS = sorted(
    {
        name
        for model in (Settings, CommunityOverride, NudgeSettings, DiscordSchema, MatrixSection)
        for name in model.model_fields
    }
    | {"quiet_hours", "start", "end", "mode", "min_words", "rooms", "token", "password", "url", "self_ids"}
)
# Per key name: values that are valid, or wrong in a way lien must explain.
NAMED_STRINGS: dict[str, list[str]] = {
    "timezone": ["UTC", "Europe/Paris", "America/New_York", "Mars/Olympus", "", "../etc"],
    "start": ["22:00", "08:00", "7:00", "24:00"],
    "end": ["08:00", "23:59", "8h"],
    "homeserver": ["https://matrix.example.org", "https://matrix.example.org", "matrix.org"],
    "user_id": ["@lien:example.org", "@lien:example.org", "lien"],
    "_env": ["LIEN_TOKEN", "LIEN_TOKEN", "LIEN_TOKEN", "LIEN_MISSING", "LIEN_EMPTY", "lowercase_env"],
    "_file": [SECRET_FILE_MARK, SECRET_FILE_MARK, "/nonexistent/lien-token", ""],
    "url": ["sqlite+aiosqlite:///lien.db", "postgresql://u:pw@db/lien"],
    "command_prefix": ["!lien", "?", "", "x" * 21],
    "invite_allow": ["@admin:example.org", "example.org", "not a server"],
    "rooms": ["#help:example.org", "!abc:example.org", "help"],
}
NICE_STRINGS = ["", "!lien", "en", "fr", "de", "auto", "off", "guild", "x y", "1234", "é"]

keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=5)
# Cheap fixed values where random generation buys nothing: edges of TOML's types and of lien's ranges.
EDGES = st.sampled_from(
    [
        *(0, -1, 2**63 - 1, -(2**63), 10**30, 527_041, -0.0, 1e308, math.inf, -math.inf, math.nan),
        *(time(8, 0), time(22, 0, 0, 1), datetime(2024, 1, 1, tzinfo=UTC), [], {}, [[]], [1, "a"], {"a": {}}),
    ]
)
scalars = (
    st.booleans()
    | st.integers(min_value=-3, max_value=2000)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(NICE_STRINGS)
    | EDGES
)
documents = st.dictionaries(
    keys,
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=6,
    ),
    max_size=5,
)


def _unwrap(tp: Any) -> Any:
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) is Union or type(tp).__name__ == "UnionType":
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _bounds(field: Any) -> tuple[float, float]:
    lo, hi = -math.inf, math.inf
    for m in field.metadata if field is not None else ():
        lo = max(lo, getattr(m, "ge", None) if getattr(m, "ge", None) is not None else -math.inf)
        lo = max(lo, getattr(m, "gt", None) if getattr(m, "gt", None) is not None else -math.inf)
        hi = min(hi, getattr(m, "le", None) if getattr(m, "le", None) is not None else math.inf)
        hi = min(hi, getattr(m, "lt", None) if getattr(m, "lt", None) is not None else math.inf)
    return lo, hi


def _candidates(tp: Any, name: str, field: Any = None) -> list[Any]:
    """Values for a leaf field: valid ones (repeated, so most documents are valid) and a few wrong ones."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    junk: list[Any] = [math.nan, time(22, 0), [], {}]
    if origin is Literal:
        return [*get_args(tp)] * 8 + ["", "x", 1]
    if tp is bool:
        return [True, False] * 8 + ["yes", 1]
    if tp in (int, float):
        lo, hi = _bounds(field)
        lo_v = 0 if lo == -math.inf else lo
        hi_v = lo_v + 10_000 if hi == math.inf else hi
        inside = sorted({lo_v, hi_v, (lo_v + hi_v) // 2, lo_v + 1 if lo_v + 1 <= hi_v else lo_v})
        inside = [v for v in inside if (lo < v < hi) or v in (lo, hi)] or [lo_v]
        if tp is float:
            inside = [float(v) for v in inside] + [(lo_v + hi_v) / 3]
            inside = [v for v in inside if lo <= v <= hi and (lo != v or "gt" not in repr(field.metadata))]
        return inside * 8 + [lo_v - 1, hi_v + 1, "3", True, 10**30, math.inf, *junk]
    if origin is tuple:
        item = NAMED_STRINGS.get(name, ["lien", "bot"])
        if _unwrap(get_args(tp)[0]) is int:
            return [[], [1], [123456789012345678]] * 2 + [[0], ["12"], [True], "1"]
        return [[], [item[0]], item[:2]] * 2 + [item, [1], "lien"]
    named = next((v for k, v in NAMED_STRINGS.items() if name == k or (k[0] == "_" and name.endswith(k))), None)
    return [*(named or NICE_STRINGS)] * 8 + [3, *junk]


def _random_value(rng: random.Random, tp: Any, name: str, field: Any = None) -> Any:
    """A value for field `name` of type `tp`: nested tables for models and id maps, candidates for leaves."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if name in ("questions", "nudges") and origin is dict:
        tp = {"questions": QuestionSettings, "nudges": NudgeSettings}[name]
    tp = {"discord": DiscordSchema, "matrix": MatrixSection}.get(name, tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _random_table(rng, tp)
    if name in ("communities", "rooms") and origin is dict:
        ids = rng.sample(["1", "123456789012345678", "!room:example.org", "a.b", "", "é\u2028"], k=rng.randint(1, 2))
        return {i: _random_value(rng, get_args(tp)[1], "") for i in ids}
    if origin is dict:
        return {}
    return rng.choice(_candidates(tp, name, field))


def _random_table(rng: random.Random, model: type[BaseModel]) -> dict[str, Any]:
    """A table setting a few of `model`'s fields, now and then with an unknown key."""
    fields = model.model_fields
    names = rng.sample(sorted(fields), k=rng.randint(0, min(4, len(fields))))
    names += [n for n, f in fields.items() if f.is_required() and n not in names and rng.random() < 0.9]
    table = {n: _random_value(rng, fields[n].annotation, n, fields[n]) for n in names}
    credentials = [n for n in fields if n.endswith(("_env", "_file"))]
    if credentials and not any(n in table for n in credentials) and rng.random() < 0.8:
        table[credentials[0]] = "LIEN_TOKEN"
    if rng.random() < 0.1:
        table.setdefault(rng.choice(["typo", "token", "nudge", "quiet_hour", "max_helper"]), 1)
    return table


def schema_document(seed: int) -> dict[str, Any]:
    """A document shaped like lien's schema; half of them override communities and rooms, the deepest part.

    Built from one seed rather than from many hypothesis draws: drawing each key costs ~10x the parse itself.
    """
    rng = random.Random(seed)
    data = _random_table(rng, Settings)
    if rng.random() < 0.5:
        data["communities"] = _random_value(rng, Settings.model_fields["communities"].annotation, "communities")
    return data


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "token"
    path.write_text(f"{SECRET}\n")
    return path


def _parse_and_check(text: str) -> None:
    """Parse; success must give settings whose every room merges; failure must be a ConfigError naming the file."""
    note(text)
    try:
        settings = parse_settings(text, SOURCE, ENV, sections=SECTIONS)
    except ConfigError as exc:
        message = str(exc)
        assert message
        assert all(line.startswith(f"{SOURCE}:") for line in message.splitlines()), message
        assert SECRET not in message
        return
    settings.room("no-such-community")
    for cid, community in settings.communities.items():
        settings.room(cid)
        for rid in community.rooms:
            settings.room(cid, rid)


# --- properties ---------------------------------------------------------------------------------------------------


# Text made of TOML's own punctuation is often valid TOML with odd keys, quoting and nesting.
toml_ish_text = st.lists(
    st.sampled_from([*"[]{}=\"'#.,\n\t \\:-_aé1", "nudges", "communities", '"""', "'''", "1_0", "\r\n"])
).map("".join)


@given(st.text() | toml_ish_text)
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    _parse_and_check(text)


@given(documents, st.integers(min_value=0, max_value=3))
def test_arbitrary_toml_documents_raise_only_config_error(data: dict[str, Any], inline_below: int) -> None:
    text, where = to_toml(data, inline_below)
    # The line finder must point at the line where each key was written (inline tables: the line holding them).
    found = _key_lines(text)
    assert {path: found.get(path) for path in where} == where
    _parse_and_check(text)


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=1, max_value=6))
def test_schema_shaped_documents_raise_only_config_error(secret_file: Path, seed: int, inline_below: int) -> None:
    text, _ = to_toml(schema_document(seed), inline_below)
    _parse_and_check(text.replace(_toml_string(SECRET_FILE_MARK), _toml_string(str(secret_file))))


def test_serializer_round_trips_through_tomllib() -> None:
    import tomllib

    data = {"a": [1, 2.5, 'x\u0001"\\'], "b": {"c d": {"e": True}}, "t": time(22, 0)}
    assert tomllib.loads(to_toml(data)[0]) == data
    assert tomllib.loads(to_toml(data, inline_below=0)[0]) == data
