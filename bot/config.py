"""Configuration: one TOML file, validated once into frozen models, then passed down.

Overrides cascade: defaults < top-level sections < `[communities."ID"]` < `[communities."ID".rooms."ROOM"]`.
`Settings.room(community, room)` returns the merged, validated `RoomSettings` (cached).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from bot.errors import ConfigError
from bot.guard_rules import GuardSettings

#: Hard ceiling on how many people any single action may address, whatever the config says.
HARD_MAX_RECIPIENTS = 5
# Upper bounds on durations, so that `now + delay` can never overflow a datetime (a typo must not crash a timer).
_YEAR_MINUTES = 366 * 24 * 60
_DECADE_DAYS = 3660

Language = Literal["en", "fr"]
QuestionMode = Literal["auto", "every_thread", "off"]


class _Frozen(BaseModel):
    # strict: a config file saying `enabled = "no"` or `max_helpers = "3"` is a mistake, not something to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


def _check_zone(v: str | None) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r} (expected an IANA name such as 'Europe/Paris')") from exc
    return v


class QuestionSettings(_Frozen):
    """How questions are detected in a room."""

    mode: QuestionMode = "auto"
    #: Messages shorter than this (in words) are never taken for questions ("ok?", "?").
    min_words: Annotated[int, Field(ge=1, le=50)] = 3


class QuietHours(_Frozen):
    """Local times (community time zone) during which nudges wait; start > end wraps midnight."""

    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "22:00"
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "08:00"
    enabled: bool = True


class NudgeSettings(_Frozen):
    """The escalation ladder, its adaptive delays and the budgets that keep it quiet."""

    enabled: bool = True
    #: Level 1 fires at clamp(room p75 of time to first answer, level1_floor, level1_ceiling) minutes.
    level1_floor_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES)] = 30
    level1_ceiling_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES, validate_default=True)] = 24 * 60
    level1_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.75
    #: Level 2 fires at clamp(room p90, level2_floor, level2_ceiling) minutes after the question.
    level2_floor_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES)] = 120
    level2_ceiling_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES, validate_default=True)] = 3 * 24 * 60
    level2_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.90
    #: Level 3 (private advice to the asker) fires this long after the question.
    level3_minutes: Annotated[float, Field(gt=0, le=_YEAR_MINUTES)] = 24 * 60
    #: Questions answered in the room during this many days feed its delays; fewer than `min_samples` -> floors.
    history_days: Annotated[int, Field(ge=1, le=_DECADE_DAYS)] = 30
    min_samples: Annotated[int, Field(ge=1)] = 10
    #: Members mentioned at level 2 (hard maximum 5).
    max_helpers: Annotated[int, Field(ge=0, le=HARD_MAX_RECIPIENTS)] = 3
    #: The same asker gets level 1 at most once per this many days per room.
    asker_cooldown_days: Annotated[float, Field(ge=0, le=_DECADE_DAYS)] = 7
    #: A member is pinged at most this often.
    pings_per_day: Annotated[int, Field(ge=0)] = 1
    pings_per_week: Annotated[int, Field(ge=0)] = 3
    #: Helpers must have posted in the room within this many days.
    helper_active_days: Annotated[int, Field(ge=1, le=_DECADE_DAYS)] = 30
    #: Half-life of help history when ranking helpers.
    half_life_days: Annotated[float, Field(gt=0, le=_DECADE_DAYS)] = 30
    #: lien posts at most one message per this many seconds per room (queued, never dropped).
    room_pace_seconds: Annotated[float, Field(ge=0, le=24 * 3600)] = 10
    quiet_hours: QuietHours = QuietHours()
    #: A join wave (this many joins within `join_wave_minutes`) freezes nudges until an admin resumes.
    join_wave_joins: Annotated[int, Field(ge=2)] = 50
    join_wave_minutes: Annotated[int, Field(ge=1, le=_YEAR_MINUTES)] = 60
    #: Timers overdue by less than this at start are fired; older ones are marked skipped_overdue.
    catch_up_hours: Annotated[float, Field(ge=0, le=366 * 24)] = 24

    # validate_default on the ceilings: a floor raised above the default ceiling must fail here, not in room().
    @field_validator("level1_ceiling_minutes", "level2_ceiling_minutes")
    @classmethod
    def _ceiling_above_floor(cls, v: int, info: Any) -> int:
        floor_name = info.field_name.replace("ceiling", "floor")
        floor = info.data.get(floor_name, 0)
        if v < floor:
            raise ValueError(f"must be >= {floor_name} ({floor})")
        return v


class RoomSettings(_Frozen):
    """Everything that may differ per room, after merging the cascade."""

    language: Language = "en"
    timezone: str = "UTC"
    questions: QuestionSettings = QuestionSettings()
    nudges: NudgeSettings = NudgeSettings()
    guard: GuardSettings = GuardSettings()
    #: Room where reports for moderators go (guard, join waves); None -> the room where it happened.
    moderators_room: str | None = None
    digest_room: str | None = None

    _known_zone = field_validator("timezone")(_check_zone)


class RoomOverride(_Frozen):
    """What a `[communities."ID".rooms."ROOM"]` table may set; checked in full by `validate_overrides`."""

    language: Language | None = None
    questions: dict[str, Any] | None = None
    nudges: dict[str, Any] | None = None
    guard: dict[str, Any] | None = None
    digest_room: str | None = None


class CommunityOverride(RoomOverride):
    """What a `[communities."ID"]` table may set, plus its room overrides."""

    timezone: str | None = None
    moderators_room: str | None = None
    rooms: dict[str, RoomOverride] = {}

    _known_zone = field_validator("timezone")(_check_zone)


class LienSection(_Frozen):
    """Settings of lien itself."""

    command_prefix: Annotated[str, Field(min_length=1, max_length=20)] = "!lien"
    #: The most people any action may address; hard maximum 5.
    max_recipients: Annotated[int, Field(ge=1, le=HARD_MAX_RECIPIENTS)] = 3
    #: Rows older than this are purged daily; help edges survive only as aggregates.
    retention_days: Annotated[int, Field(ge=1, le=10 * _DECADE_DAYS)] = 180
    # strict=False on tuples only: TOML arrays arrive as lists.
    #: lien's own author ids on each platform, so it never tracks itself.
    self_ids: Annotated[tuple[str, ...], Field(strict=False)] = ("lien",)
    #: Other bots' author ids (marked is_bot even when the platform does not say so).
    bot_ids: Annotated[tuple[str, ...], Field(strict=False)] = ()


#: The databases lien runs on, as URL schemes (a driver may follow: `sqlite+aiosqlite://`).
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def database_scheme(url: str) -> str:
    """The database part of a URL's scheme: `postgresql` for `postgresql+asyncpg://...`, '' for no scheme."""
    head, sep, _ = url.partition(":")
    return head.partition("+")[0].lower() if sep else ""


class StorageSection(_Frozen):
    """Where state lives: a SQLite path (default) or a SQLAlchemy URL (PostgreSQL for large deployments)."""

    path: str = "lien.db"
    url: str | None = None
    url_env: str | None = None

    @field_validator("url")
    @classmethod
    def _supported(cls, url: str | None) -> str | None:
        # The URL is not repeated in the message: it may hold a password.
        if url is not None and database_scheme(url) not in DATABASE_SCHEMES:
            raise ValueError("expected a SQLite or PostgreSQL URL (sqlite:///lien.db, postgresql://user@host/lien)")
        return url

    def resolved_url(self, env: dict[str, str]) -> str:
        if self.url_env:
            if self.url_env not in env:
                raise ConfigError(f"storage.url_env: the environment variable {self.url_env} is not set")
            return env[self.url_env]
        if self.url:
            return self.url
        return f"sqlite+aiosqlite:///{self.path}"


class Settings(_Frozen):
    """The whole validated configuration."""

    lien: LienSection = LienSection()
    storage: StorageSection = StorageSection()
    language: Language = "en"
    timezone: str = "UTC"
    moderators_room: str | None = None
    digest_room: str | None = None
    questions: QuestionSettings = QuestionSettings()
    nudges: NudgeSettings = NudgeSettings()
    guard: GuardSettings = GuardSettings()
    communities: dict[str, CommunityOverride] = {}
    #: Adapter sections are validated by their adapters; kept raw here.
    discord: dict[str, Any] | None = None
    matrix: dict[str, Any] | None = None
    console: dict[str, Any] | None = None
    bridge: dict[str, Any] | None = None

    _known_zone = field_validator("timezone")(_check_zone)

    @cached_property
    def _room_cache(self) -> dict[tuple[str, str | None], RoomSettings]:
        return {}

    def room(self, community: str, room: str | None = None) -> RoomSettings:
        """The merged settings for a room (or for the community when `room` is None)."""
        key = (community, room)
        cache = self._room_cache
        found = cache.get(key)
        if found is None:
            found = cache[key] = self._merge(community, room)
        return found

    def every_room(self) -> Iterator[RoomSettings]:
        """The defaults, then every configured community and room, merged: for a bound that must hold in all."""
        yield self._merge(None, None)
        for community, override in self.communities.items():
            for room in (None, *override.rooms):
                yield self.room(community, room)

    def _merge(self, community: str | None, room: str | None) -> RoomSettings:
        base: dict[str, Any] = {
            "language": self.language,
            "timezone": self.timezone,
            "moderators_room": self.moderators_room,
            "digest_room": self.digest_room,
            "questions": self.questions.model_dump(),
            "nudges": self.nudges.model_dump(),
            "guard": self.guard.model_dump(),
        }
        layers: list[RoomOverride] = []
        comm = self.communities.get(community) if community is not None else None
        if comm is not None:
            layers.append(comm)
            if room is not None and room in comm.rooms:
                layers.append(comm.rooms[room])
        for layer in layers:
            for name, value in layer.model_dump(exclude_none=True, exclude={"rooms"}).items():
                if isinstance(value, dict) and isinstance(base.get(name), dict):
                    base[name] = _deep_merge(base[name], value)
                else:
                    base[name] = value
        return RoomSettings.model_validate(base)


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def override_errors(settings: Settings) -> list[ErrorDetails]:
    """Validate every community and room override; pydantic errors with `loc` starting at `communities`.

    A room that merely inherits its community's error is not reported again.
    """
    found: list[ErrorDetails] = []
    for cid, comm in settings.communities.items():
        inherited: set[tuple[tuple[int | str, ...], str]] = set()
        for room in [None, *comm.rooms]:
            try:
                settings._merge(cid, room)
            except ValidationError as exc:
                prefix: tuple[str, ...] = ("communities", cid) if room is None else ("communities", cid, "rooms", room)
                for err in exc.errors():
                    seen = (tuple(err["loc"]), err["msg"])
                    if room is None:
                        inherited.add(seen)
                    elif seen in inherited and not _sets(comm.rooms[room], err["loc"]):
                        continue
                    found.append({**err, "loc": (*prefix, *err["loc"])})
    return found


def _sets(layer: RoomOverride, loc: tuple[int | str, ...]) -> bool:
    node: Any = layer.model_dump(exclude_none=True)
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def key_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic `loc` as a TOML key path: `communities."123".rooms."456".questions.mode`, `lien.self_ids[0]`."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        is_id = (i == 1 and loc[0] == "communities") or (i == 3 and loc[0] == "communities" and loc[2] == "rooms")
        bare = part.replace("_", "").replace("-", "").isascii() and part.replace("_", "").replace("-", "").isalnum()
        text = part if bare and not is_id else _quote_key(part)
        out += text if not out else f".{text}"
    return out


def _quote_key(key: str) -> str:
    """`key` as a TOML basic string, every non-printable character escaped (so a message stays one line)."""
    out = []
    for c in key:
        if c in '"\\':
            out.append("\\" + c)
        elif not c.isprintable():
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def validate_overrides(settings: Settings) -> list[str]:
    """Validate every community and room override; returns problems as `key.path: message`."""
    return [f"{key_path(tuple(err['loc']))}: {err['msg']}" for err in override_errors(settings)]
