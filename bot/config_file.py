"""lien's configuration file: TOML text -> validated, frozen `Settings`, or a `ConfigError` naming every problem.

Each problem is one line, `FILE:LINE: key.path: what was expected (got VALUE)`, sorted by line. Secrets never sit in
the file: adapter sections name an environment variable (`token_env`) or a file (`token_file`) instead, and no
message ever contains a secret (nor the value of a key that may hold one).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from bot.config import (
    CommunityOverride,
    RoomOverride,
    RoomSettings,
    Settings,
    _quote_key,
    key_path,
    override_errors,
)
from bot.errors import ConfigError

__all__ = [
    "ADAPTER_SECRETS",
    "DEFAULT_SECTIONS",
    "MatrixSection",
    "check_config",
    "load_settings",
    "parse_settings",
    "resolve_secret",
]

#: How deep tables and arrays may nest; lien's own schema needs 6 (`communities.ID.rooms.ID.nudges.quiet_hours`).
MAX_DEPTH = 16
#: A secret file larger than this is the wrong file (and reading /dev/zero must not hang).
MAX_SECRET_BYTES = 64 * 1024

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
# Key names whose values might be (or be mistaken for) a secret: their value is never echoed.
_SENSITIVE = ("token", "password", "secret", "url", "_env", "_file")

_Loc = tuple[int | str, ...]
_Problem = tuple[_Loc, str]


def _literal_secret_message(name: str) -> str:
    return (
        f"a secret may not be written in the config file (config files get copied, pasted and committed); "
        f'put it in an environment variable and set {name}_env = "NAME", '
        f'or in a file only lien can read and set {name}_file = "/path"'
    )


# --- adapter sections -------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


def _env_name(v: str | None) -> str | None:
    if v is not None and not _ENV_NAME.fullmatch(v):
        raise ValueError(
            "must be the NAME of an environment variable (capitals, digits, _), such as LIEN_TOKEN, "
            "not the secret itself"
        )
    return v


def _file_path(v: str | None) -> str | None:
    if v is not None and (not v.strip() or "\0" in v):
        raise ValueError("must be the path of a file holding the secret")
    return v


def _matrix_target(v: str) -> str:
    if re.fullmatch(r"@[^:\s]+:[^\s]+|[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", v):
        return v
    raise ValueError('must be a user id such as "@admin:example.org" or a server name such as "example.org"')


def _matrix_room(v: str) -> str:
    # Room versions 12 and later have opaque ids without a server name.
    if re.fullmatch(r"![^\s:]+(?::\S+)?|#[^\s:]+:\S+", v):
        return v
    raise ValueError('must be a room id ("!abc:example.org", or "!opaque" in room v12+) or alias ("#lien:example.org")')


class MatrixSection(_Section):
    """The `[matrix]` table; credentials come from `access_token_*` or `password_*` (see `resolve_secret`)."""

    #: Client-server API base URL of the homeserver.
    homeserver: str
    #: lien's full Matrix user id.
    user_id: str
    access_token_env: str | None = None
    access_token_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    #: Reuse one device across restarts (keeps the device list clean); None lets the server pick.
    device_id: str | None = None
    #: Invites are accepted only from these users ("@admin:example.org") or servers ("example.org").
    invite_allow: Annotated[tuple[Annotated[str, AfterValidator(_matrix_target)], ...], Field(strict=False)] = ()
    #: Rooms (ids or aliases) lien joins at start.
    rooms: Annotated[tuple[Annotated[str, AfterValidator(_matrix_room)], ...], Field(strict=False)] = ()
    #: Overrides `lien.command_prefix` on Matrix; None keeps it.
    command_prefix: Annotated[str | None, Field(min_length=1, max_length=20)] = None
    #: The community id lien files this homeserver's rooms under; None: the server name of `user_id`.
    community: Annotated[str | None, Field(min_length=1, max_length=255)] = None

    _env = field_validator("access_token_env", "password_env")(_env_name)
    _file = field_validator("access_token_file", "password_file")(_file_path)

    @field_validator("homeserver")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError('must be a URL such as "https://matrix.example.org"')
        return v

    @field_validator("user_id")
    @classmethod
    def _user(cls, v: str) -> str:
        if not re.fullmatch(r"@[^:\s]+:[^\s]+", v):
            raise ValueError('must be a full user id such as "@lien:example.org"')
        return v


#: The secrets each adapter section names, as `NAME_env` or `NAME_file`; with a schema, exactly one NAME is required.
ADAPTER_SECRETS: dict[str, tuple[str, ...]] = {"discord": ("token",), "matrix": ("access_token", "password")}
#: Section schemas the core knows. The composition root adds the adapters' own (`sections={"discord": ...}`), so
#: that `check-config` judges every section as strictly as the adapter will (bot/ cannot import adapters/).
DEFAULT_SECTIONS: dict[str, type[BaseModel]] = {"matrix": MatrixSection}

_Sections = Mapping[str, type[BaseModel]] | None


# --- secrets ----------------------------------------------------------------------------------------------------


def resolve_secret(section: Mapping[str, Any], name: str, env: Mapping[str, str], *, where: str = "") -> str | None:
    """The secret `name` of a section, read from `{name}_env` or `{name}_file` (stripped); None if neither is set.

    Raises ConfigError naming the key (prefixed by `where`, e.g. "discord") when the variable is unset or empty,
    the file unreadable, or the secret written literally; the message never contains the secret.
    """
    value, problem = _secret(section, name, env)
    if problem is not None:
        loc, message = problem
        raise ConfigError(f"{key_path((*where.split('.'), *loc) if where else loc)}: {message}")
    return value


def _secret(section: Mapping[str, Any], name: str, env: Mapping[str, str]) -> tuple[str | None, _Problem | None]:
    env_key, file_key = f"{name}_env", f"{name}_file"
    if name in section:
        return None, ((name,), _literal_secret_message(name))
    var, file = section.get(env_key), section.get(file_key)
    if var is not None and file is not None:
        return None, ((env_key,), f"set either {env_key} or {file_key}, not both")
    if var is not None:
        try:
            _env_name(var if isinstance(var, str) else "")
        except ValueError as exc:
            return None, ((env_key,), str(exc))
        value = env.get(var)
        if value is None:
            return None, ((env_key,), f"environment variable {var} is not set")
        if not value.strip():
            return None, ((env_key,), f"environment variable {var} is empty")
        return value.strip(), None
    if file is not None:
        if not isinstance(file, str):
            return None, ((file_key,), "must be the path of a file holding the secret")
        # The path is not echoed either: someone may have pasted the secret itself here.
        try:
            with Path(file).expanduser().open("rb") as fh:
                raw = fh.read(MAX_SECRET_BYTES + 1)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid path"
            return None, ((file_key,), f"cannot read the file it names ({reason})")
        if len(raw) > MAX_SECRET_BYTES:
            return None, ((file_key,), f"the file it names is larger than {MAX_SECRET_BYTES // 1024} KiB")
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None, ((file_key,), "the file it names is not UTF-8 text")
        if not text:
            return None, ((file_key,), "the file it names is empty")
        return text, None
    return None, None


# --- loading ----------------------------------------------------------------------------------------------------


def load_settings(
    path: Path, env: Mapping[str, str], *, sections: _Sections = None, check_secrets: bool = True
) -> Settings:
    """Read and validate the TOML file at `path`; raises ConfigError listing every problem with file:line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (TOML files must be UTF-8)") from None
    return parse_settings(text, str(path), env, sections=sections, check_secrets=check_secrets)


def parse_settings(
    text: str, source: str, env: Mapping[str, str], *, sections: _Sections = None, check_secrets: bool = True
) -> Settings:
    """Validate TOML `text` (named `source` in messages) into Settings; raises ConfigError listing every problem.

    `sections` maps adapter section names to their pydantic schemas (added to `DEFAULT_SECTIONS`); the sections
    stay raw dicts in Settings. With `check_secrets`, every `*_env` variable must be set and every `*_file`
    readable (skip it for `simulate`).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}:{_decode_error_line(text, str(exc))}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None
    except ValueError:
        # Python refuses to convert integers of more than 4300 digits.
        raise ConfigError(f"{source}: invalid TOML: a number is too long") from None
    deep = _too_deep(data)
    if deep is not None:
        problems: list[_Problem] = [(deep, f"nested more than {MAX_DEPTH} levels deep")]
    else:
        settings, problems = _validate(data, env, {**DEFAULT_SECTIONS, **(sections or {})}, check_secrets)
        if settings is not None:
            return settings
    raise ConfigError(_render(problems, text, source))


def check_config(path: Path, env: Mapping[str, str], *, sections: _Sections = None) -> tuple[int, str]:
    """For `lien check-config FILE`: (0, one-line summary) or (2, every problem, one per line)."""
    try:
        settings = load_settings(path, env, sections=sections)
    except ConfigError as exc:
        return 2, str(exc)
    communities = len(settings.communities)
    rooms = sum(len(c.rooms) for c in settings.communities.values())
    return 0, (
        f"{path}: OK ({communities} {'community' if communities == 1 else 'communities'}, "
        f"{rooms} room override{'' if rooms == 1 else 's'})"
    )


def _decode_error_line(text: str, message: str) -> int:
    found = re.search(r"at line (\d+)", message)
    if found:
        return int(found.group(1))
    return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))


def _too_deep(data: dict[str, Any]) -> _Loc | None:
    stack: list[tuple[_Loc, Any]] = [((), data)]
    while stack:
        loc, node = stack.pop()
        if len(loc) > MAX_DEPTH:
            return loc[:MAX_DEPTH]
        if isinstance(node, dict):
            stack.extend(((*loc, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*loc, i), v) for i, v in enumerate(node))
    return None


def _validate(
    data: dict[str, Any], env: Mapping[str, str], models: Mapping[str, type[BaseModel]], check_secrets: bool
) -> tuple[Settings | None, list[_Problem]]:
    problems: list[_Problem] = []
    for name in sorted(ADAPTER_SECRETS.keys() | models.keys()):
        section = data.get(name)
        if isinstance(section, dict):
            secrets = ADAPTER_SECRETS.get(name, ())
            problems += _check_adapter(name, section, models.get(name), secrets, env, check_secrets)
    storage = data.get("storage")
    if isinstance(storage, dict):
        problems += _check_storage(storage, env, check_secrets)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems += _explain_all(exc.errors(), Settings, ())
        problems += _override_problems_despite(data)
        return None, problems
    problems += _explain_overrides(override_errors(settings))
    return (None if problems else settings), problems


def _check_adapter(
    name: str,
    section: dict[str, Any],
    model: type[BaseModel] | None,
    secrets: tuple[str, ...],
    env: Mapping[str, str],
    check_secrets: bool,
) -> list[_Problem]:
    problems: list[_Problem] = [((name, s), _literal_secret_message(s)) for s in secrets if s in section]
    effective: Mapping[str, Any] = {k: v for k, v in section.items() if k not in secrets}
    schema_ok = False
    if model is not None:
        try:
            # The schema's defaults count too: an adapter may default token_env to a well-known variable.
            effective, schema_ok = model.model_validate(effective).model_dump(), True
        except ValidationError as exc:
            problems += _explain_all(exc.errors(), model, (name,))
    configured = [
        s for s in secrets if s in section or any(effective.get(f"{s}{k}") is not None for k in ("_env", "_file"))
    ]
    if schema_ok and secrets and not configured:
        problems.append(((name,), f"needs {' or '.join(f'{s}_env or {s}_file' for s in secrets)}"))
    elif len(configured) > 1:
        problems.append(((name,), f"set the {' or the '.join(configured)}, not both"))
    if check_secrets:
        flagged = {loc for loc, _ in problems}
        for s in configured:
            if s in section or {(name, f"{s}_env"), (name, f"{s}_file")} & flagged:
                continue
            _, problem = _secret({k: v for k, v in effective.items() if v is not None}, s, env)
            if problem is not None:
                problems.append(((name, *problem[0]), problem[1]))
    return problems


def _check_storage(storage: dict[str, Any], env: Mapping[str, str], check_secrets: bool) -> list[_Problem]:
    problems: list[_Problem] = []
    url, var = storage.get("url"), storage.get("url_env")
    if isinstance(url, str) and isinstance(var, str):
        problems.append((("storage", "url_env"), "set either url or url_env, not both"))
    if isinstance(url, str) and _has_password(url):
        problems.append(
            (("storage", "url"), "contains a password; put the whole URL in an environment variable and set url_env")
        )
    if isinstance(var, str):
        try:
            _env_name(var)
        except ValueError as exc:
            problems.append((("storage", "url_env"), str(exc)))
        else:
            if check_secrets and var not in env:
                problems.append((("storage", "url_env"), f"environment variable {var} is not set"))
            elif check_secrets and not env[var].strip():
                problems.append((("storage", "url_env"), f"environment variable {var} is empty"))
    return problems


def _has_password(url: str) -> bool:
    # Also catches unencoded passwords containing "/", which urlsplit would not see as user info.
    userinfo = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://([^@]*)@", url)
    if userinfo and ":" in userinfo.group(1) and not userinfo.group(1).startswith("/"):
        return True
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def _override_problems_despite(data: dict[str, Any]) -> list[_Problem]:
    """Override problems when the whole file did not validate: merge the valid communities on the best base."""
    communities = data.get("communities")
    if not isinstance(communities, dict):
        return []
    top = {k: v for k, v in data.items() if k != "communities"}
    only_own = False
    try:
        base = Settings.model_validate(top)
    except ValidationError:
        # The top level is broken (and reported); judge each override on the defaults, but only by what it sets.
        base, only_own = Settings(), True
    valid: dict[str, CommunityOverride] = {}
    for cid, raw in communities.items():
        if not isinstance(raw, dict):
            continue
        rooms = raw.get("rooms")
        if isinstance(rooms, dict):
            raw = {**raw, "rooms": {rid: _salvage(RoomOverride, r) for rid, r in rooms.items() if isinstance(r, dict)}}
        try:
            valid[cid] = CommunityOverride.model_validate(_salvage(CommunityOverride, raw))
        except ValidationError:
            continue  # already reported by the full validation
    errors = override_errors(base.model_copy(update={"communities": valid}))
    if only_own:
        errors = [e for e in errors if _is_set(data, e["loc"])]
    return _explain_overrides(errors)


def _salvage(model: type[BaseModel], raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` without the keys that fail validation (already reported), so the rest can still be checked."""
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
        return {k: v for k, v in raw.items() if k not in bad}
    return raw


def _is_set(data: Any, loc: Iterable[int | str]) -> bool:
    node = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# --- messages ---------------------------------------------------------------------------------------------------


def _explain_overrides(errors: list[ErrorDetails]) -> list[_Problem]:
    problems: list[_Problem] = []
    for err in errors:
        loc = tuple(err["loc"])
        cut = 4 if len(loc) > 4 and loc[2] == "rooms" else 2
        problems.append((loc, _explain(err, RoomSettings, loc[cut:])))
    return problems


def _explain_all(errors: list[ErrorDetails], root: type[BaseModel], prefix: _Loc) -> list[_Problem]:
    return [((*prefix, *err["loc"]), _explain(err, root, tuple(err["loc"]))) for err in errors]


_EXPECTED = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
}


def _explain(err: ErrorDetails, root: type[BaseModel], loc: _Loc) -> str:
    """What was expected at `loc` (relative to `root`), plus the value found unless it may be a secret."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _fields_at(root, loc[:-1]) or []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc else []
        if close:
            return f"unknown key (did you mean {close[0]}?)"
        return f"unknown key (expected one of: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "string_type" and isinstance(err.get("input"), time | datetime | date):
        message = 'must be a string: put the time in quotes, such as "22:00"'
    elif kind in _EXPECTED:
        message = _EXPECTED[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
        bound = next(k for k in words if k in ctx)
        limit = ctx[bound]
        message = f"must be {words[bound]} {int(limit) if isinstance(limit, float) and limit.is_integer() else limit}"
    elif kind == "string_too_short":
        n = ctx.get("min_length", 1)
        message = "must not be empty" if n == 1 else f"must be at least {n} characters long"
    elif kind == "string_too_long":
        message = f"must be at most {ctx.get('max_length')} characters long"
    elif kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        message = (
            'must be a time "HH:MM" on the 24-hour clock, such as "22:00"'
            if pattern == _HHMM
            else (f"must match {pattern}")
        )
    elif kind == "literal_error":
        message = f"must be {ctx.get('expected')}"
    elif kind == "value_error":
        message = err["msg"].removeprefix("Value error, ")
    else:
        message = err["msg"]
    if any(s in str(part).lower() for part in loc for s in _SENSITIVE):
        return message
    got = _describe(err.get("input"))
    if kind == "value_error" and got.strip('"') in message:
        return message
    return f"{message} (got {got})"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = _quote_key(value)
        return text if len(text) <= 60 else text[:56] + '…"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, datetime | date | time):
        return f"a date/time {value.isoformat()}"
    return type(value).__name__


def _fields_at(model: type[BaseModel], loc: _Loc) -> list[str] | None:
    """Field names of the model found at `loc` below `model`, if the path leads to one."""
    node: Any = model
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            node = _unwrap(field.annotation)
        elif get_origin(node) is dict:
            node = _unwrap(get_args(node)[1])
        else:
            return None
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _render(problems: list[_Problem], text: str, source: str) -> str:
    lines = _key_lines(text)
    rendered: list[tuple[int, int, str]] = []
    for order, (loc, message) in enumerate(problems):
        line = _line_of(loc, lines)
        where = f"{source}:{line}" if line else source
        rendered.append((line or 0, order, f"{where}: {key_path(loc)}: {message}" if loc else f"{where}: {message}"))
    return "\n".join(r[2] for r in sorted(rendered))


def _line_of(loc: _Loc, lines: dict[tuple[str, ...], int]) -> int | None:
    keys: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        keys.append(part)
    for n in range(len(keys), 0, -1):
        found = lines.get(tuple(keys[:n]))
        if found is not None:
            return found
    return None


# --- where each key is written ----------------------------------------------------------------------------------
# A small scanner over text that tomllib has already accepted: it records the line of each table header and each
# `key = value`, skipping over values (multi-line strings and arrays included). Keys inside inline tables share
# the line of the key that holds them, which is what a reader needs.

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    pos, line, n = 0, 1, len(text)
    while pos < n:
        pos = _skip_blank(text, pos)
        if pos >= n:
            break
        c = text[pos]
        if c == "\n":
            line += 1
            pos += 1
        elif c in "\r":
            pos += 1
        elif c == "#":
            pos = _end_of_line(text, pos)
        elif c == "[":
            key, pos = _read_key(text, pos + (2 if text.startswith("[[", pos) else 1))
            if key is None:
                break
            table = key
            _record(lines, key, line)
            pos = _end_of_line(text, pos)
        else:
            key, pos = _read_key(text, pos)
            if key is None:
                break
            _record(lines, table + key, line)
            pos = _skip_blank(text, pos)
            if pos >= n or text[pos] != "=":
                break
            pos, line = _skip_value(text, pos + 1, line)
    return lines


def _record(lines: dict[tuple[str, ...], int], key: tuple[str, ...], line: int) -> None:
    for i in range(1, len(key) + 1):
        lines.setdefault(key[:i], line)


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _end_of_line(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _read_key(text: str, pos: int) -> tuple[tuple[str, ...] | None, int]:
    parts: list[str] = []
    n = len(text)
    while True:
        pos = _skip_blank(text, pos)
        if pos >= n:
            return None, pos
        c = text[pos]
        if c == '"':
            end = _basic_string_end(text, pos + 1)
            try:
                parts.append(tomllib.loads(f"k = {text[pos:end]}")["k"])
            except tomllib.TOMLDecodeError:
                return None, end
            pos = end
        elif c == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                return None, n
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            start = pos
            while pos < n and text[pos] in _BARE:
                pos += 1
            if pos == start:
                return None, pos
            parts.append(text[start:pos])
        pos = _skip_blank(text, pos)
        if pos < n and text[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


def _basic_string_end(text: str, pos: int) -> int:
    """Index just past the closing quote of a one-line basic string whose body starts at `pos`."""
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == "\\":
            pos += 2
        elif c == '"':
            return pos + 1
        elif c == "\n":
            return pos
        else:
            pos += 1
    return n


def _multiline_end(text: str, pos: int, quote: str) -> int:
    """Index just past the closing delimiter (and up to two extra quotes) of a multi-line string body at `pos`."""
    n = len(text)
    while pos < n:
        if quote == '"""' and text[pos] == "\\":
            pos += 2
        elif text.startswith(quote, pos):
            end = pos + 3
            while end < n and end < pos + 5 and text[end] == quote[0]:
                end += 1
            return end
        else:
            pos += 1
    return n


def _skip_value(text: str, pos: int, line: int) -> tuple[int, int]:
    """Skip the value starting at `pos`; returns the position of the newline ending it and the updated line."""
    depth, n = 0, len(text)
    while pos < n:
        c = text[pos]
        if c == "\n":
            if depth == 0:
                return pos, line
            line += 1
            pos += 1
        elif c == "#":
            pos = _end_of_line(text, pos)
        elif text.startswith('"""', pos) or text.startswith("'''", pos):
            end = _multiline_end(text, pos + 3, text[pos : pos + 3])
            line += text.count("\n", pos, end)
            pos = end
        elif c == '"':
            pos = _basic_string_end(text, pos + 1)
        elif c == "'":
            end = text.find("'", pos + 1)
            pos = n if end < 0 else end + 1
        else:
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth = max(0, depth - 1)
            pos += 1
    return pos, line
