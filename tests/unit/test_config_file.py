"""Loading config.toml: every problem named by file, line and key path; secrets never echoed."""

from __future__ import annotations

import ast
import re
import tomllib
import traceback
import typing
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

import bot.config
from bot.config import Settings, validate_overrides
from bot.config_file import (
    MAX_SECRET_BYTES,
    MatrixSection,
    check_config,
    load_settings,
    parse_settings,
    resolve_secret,
)
from bot.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
SECRET = "s3cr3t-Tok3n.value/with+chars"
DISCORD_OK = '[discord]\ntoken_env = "LIEN_TOKEN"\n'


class DiscordSchema(BaseModel):
    """Stands in for an adapter's own section schema, which main injects (unit tests do not import adapters)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_env: str = "DISCORD_TOKEN"
    token_file: str | None = None
    guild_ids: tuple[int, ...] = ()
    command_sync: Literal["global", "guilds", "off"] = "global"


SECTIONS = {"discord": DiscordSchema}


def _errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "bad.toml", env or {})
    return str(info.value).splitlines()


def _all_text(exc: BaseException) -> str:
    """Everything an operator could see of an exception: str, repr and the formatted traceback with causes."""
    return f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}"


# Each case: id, config text, env, the exact error line expected among the reported ones.
BAD_CONFIGS = [
    (
        "wrong_type_bool",
        '[nudges]\nenabled = "yes"\n',
        {},
        'bad.toml:2: nudges.enabled: must be true or false (got "yes")',
    ),
    (
        "quoted_number_not_coerced",
        '[nudges]\n\nmax_helpers = "3"\n',
        {},
        'bad.toml:3: nudges.max_helpers: must be an integer (got "3")',
    ),
    (
        "float_for_int",
        "[questions]\nmin_words = 3.5\n",
        {},
        "bad.toml:2: questions.min_words: must be an integer (got 3.5)",
    ),
    (
        "out_of_range_high",
        "[nudges]\nmax_helpers = 9\n",
        {},
        "bad.toml:2: nudges.max_helpers: must be at most 5 (got 9)",
    ),
    (
        "out_of_range_low",
        "[lien]\nmax_recipients = 0\n",
        {},
        "bad.toml:2: lien.max_recipients: must be at least 1 (got 0)",
    ),
    (
        "duration_bounded_against_datetime_overflow",
        "[nudges]\nlevel3_minutes = 1_000_000_000_000\n",
        {},
        "bad.toml:2: nudges.level3_minutes: must be at most 527040 (got 1000000000000)",
    ),
    (
        "infinity_refused",
        "[nudges]\ncatch_up_hours = inf\n",
        {},
        "bad.toml:2: nudges.catch_up_hours: must be a finite number (got inf)",
    ),
    (
        "unknown_table_suggests",
        "[nudge]\nenabled = true\n",
        {},
        "bad.toml:1: nudge: unknown key (did you mean nudges?)",
    ),
    (
        "unknown_key_suggests",
        "[nudges]\nenabled = true\nmax_helper = 2\n",
        {},
        "bad.toml:3: nudges.max_helper: unknown key (did you mean max_helpers?)",
    ),
    (
        "unknown_key_lists_allowed",
        "[questions]\nzzz = 1\n",
        {},
        "bad.toml:2: questions.zzz: unknown key (expected one of: mode, min_words)",
    ),
    (
        "bad_time_zone",
        'language = "en"\ntimezone = "Europe/Pariss"\n',
        {},
        "bad.toml:2: timezone: unknown time zone 'Europe/Pariss' (expected an IANA name such as 'Europe/Paris')",
    ),
    (
        "bad_time_zone_in_community",
        '[communities."42"]\ntimezone = "Mars/Olympus"\n',
        {},
        "bad.toml:2: communities.\"42\".timezone: unknown time zone 'Mars/Olympus' "
        "(expected an IANA name such as 'Europe/Paris')",
    ),
    (
        "bad_quiet_hours_format",
        '[nudges.quiet_hours]\nstart = "7:00"\n',
        {},
        'bad.toml:2: nudges.quiet_hours.start: must be a time "HH:MM" on the 24-hour clock, such as "22:00" '
        '(got "7:00")',
    ),
    (
        "quiet_hours_as_toml_time",
        "[nudges.quiet_hours]\nend = 08:00:00\n",
        {},
        'bad.toml:2: nudges.quiet_hours.end: must be a string: put the time in quotes, such as "22:00" '
        "(got a date/time 08:00:00)",
    ),
    (
        "bad_literal",
        '[questions]\nmode = "sometimes"\n',
        {},
        "bad.toml:2: questions.mode: must be 'auto', 'every_thread' or 'off' (got \"sometimes\")",
    ),
    (
        "array_item_type",
        '[lien]\nself_ids = ["lien", 7]\n',
        {},
        "bad.toml:2: lien.self_ids[1]: must be a string (got 7)",
    ),
    ("table_expected", "nudges = 3\n", {}, "bad.toml:1: nudges: must be a table (got 3)"),
    (
        "ceiling_below_floor",
        "[nudges]\nlevel2_floor_minutes = 500\nlevel2_ceiling_minutes = 400\n",
        {},
        "bad.toml:3: nudges.level2_ceiling_minutes: must be >= level2_floor_minutes (500.0) (got 400)",
    ),
    (
        # Found by the fuzzer: defaults were not validated, so room() failed later on a valid-looking config.
        "floor_above_default_ceiling",
        "[nudges]\nlevel2_floor_minutes = 263520\n",
        {},
        "bad.toml:1: nudges.level2_ceiling_minutes: must be >= level2_floor_minutes (263520.0) (got 4320)",
    ),
    (
        "bad_override_in_community_room",
        '[communities."123"]\nlanguage = "fr"\n\n[communities."123".rooms."456"]\nquestions.mode = "sometimes"\n',
        {},
        "bad.toml:5: communities.\"123\".rooms.\"456\".questions.mode: must be 'auto', 'every_thread' or 'off' "
        '(got "sometimes")',
    ),
    (
        "bad_override_matrix_ids_with_dots",
        '[communities."!space:example.org".rooms."!room:example.org".nudges]\nmax_helpers = 6\n',
        {},
        'bad.toml:2: communities."!space:example.org".rooms."!room:example.org".nudges.max_helpers: '
        "must be at most 5 (got 6)",
    ),
    (
        "unknown_key_in_room_override",
        '[communities."1".rooms."2"]\nnudges = { quiet_hour = {} }\n',
        {},
        'bad.toml:2: communities."1".rooms."2".nudges.quiet_hour: unknown key (did you mean quiet_hours?)',
    ),
    (
        "community_only_key_in_room",
        '[communities."1".rooms."2"]\ntimezone = "UTC"\n',
        {},
        'bad.toml:2: communities."1".rooms."2".timezone: unknown key '
        "(expected one of: language, questions, nudges, guard, digest_room)",
    ),
    (
        "room_floor_above_inherited_ceiling",
        '[communities."1"]\nnudges.level1_ceiling_minutes = 60\n'
        '[communities."1".rooms."2"]\nnudges.level1_floor_minutes = 90\n',
        {},
        'bad.toml:4: communities."1".rooms."2".nudges.level1_ceiling_minutes: must be >= level1_floor_minutes (90.0) '
        "(got 60)",
    ),
    (
        "communities_as_array_of_tables",
        '[[communities]]\nlanguage = "fr"\n',
        {},
        "bad.toml:1: communities: must be a table (got an array)",
    ),
    (
        "literal_discord_token",
        f'[discord]\ntoken = "{SECRET}"\n',
        {},
        "bad.toml:2: discord.token: a secret may not be written in the config file (config files get copied, "
        'pasted and committed); put it in an environment variable and set token_env = "NAME", or in a file only '
        'lien can read and set token_file = "/path"',
    ),
    (
        "literal_matrix_password",
        f'[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\npassword = "{SECRET}"\n',
        {},
        "bad.toml:4: matrix.password: a secret may not be written in the config file",
    ),
    (
        "missing_env_var",
        '[discord]\ntoken_env = "LIEN_DISCORD_TOKEN"\n',
        {},
        "bad.toml:2: discord.token_env: environment variable LIEN_DISCORD_TOKEN is not set",
    ),
    (
        "empty_env_var",
        '[discord]\ntoken_env = "LIEN_TOKEN"\n',
        {"LIEN_TOKEN": "  \n"},
        "bad.toml:2: discord.token_env: environment variable LIEN_TOKEN is empty",
    ),
    (
        "secret_pasted_into_token_env",
        f'[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\naccess_token_env = "syt_{SECRET[:6]}"\n',
        {},
        "bad.toml:4: matrix.access_token_env: must be the NAME of an environment variable (capitals, digits, _), "
        "such as LIEN_TOKEN, not the secret itself",
    ),
    (
        "no_credentials_at_all",
        '[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\n',
        {},
        "bad.toml:1: matrix: needs access_token_env or access_token_file or password_env or password_file",
    ),
    (
        "matrix_two_credentials",
        '[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\naccess_token_env = "A"\npassword_env = "B"\n',
        {"A": "a", "B": "b"},
        "bad.toml:1: matrix: set the access_token or the password, not both",
    ),
    (
        "matrix_missing_required",
        '[matrix]\naccess_token_env = "A"\n',
        {"A": "a"},
        "bad.toml:1: matrix.homeserver: is required",
    ),
    (
        "matrix_invite_allow_item",
        '[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\naccess_token_env = "A"\n'
        'invite_allow = ["@admin:example.org", "not a server"]\n',
        {"A": "a"},
        'bad.toml:5: matrix.invite_allow[1]: must be a user id such as "@admin:example.org" or a server name such as '
        '"example.org" (got "not a server")',
    ),
    (
        "matrix_unknown_key_suggests",
        '[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\naccess_token_env = "A"\ndevice = "X"\n',
        {"A": "a"},
        "bad.toml:5: matrix.device: unknown key (did you mean device_id?)",
    ),
    (
        "storage_url_with_password",
        f'[storage]\nurl = "postgresql://lien:{SECRET}@db/lien"\n',
        {},
        "bad.toml:2: storage.url: contains a password; put the whole URL in an environment variable and set url_env",
    ),
    (
        "storage_url_env_unset",
        '[storage]\nurl_env = "LIEN_DATABASE_URL"\n',
        {},
        "bad.toml:2: storage.url_env: environment variable LIEN_DATABASE_URL is not set",
    ),
    (
        "toml_syntax_keeps_line_and_column",
        "a = 1\n\nb = \n",
        {},
        "bad.toml:3: invalid TOML: Invalid value (at line 3, column 5)",
    ),
    (
        "toml_duplicate_key",
        "[nudges]\nenabled = true\nenabled = false\n",
        {},
        "bad.toml:3: invalid TOML: Cannot overwrite a value (at line 3, column 16)",
    ),
    (
        "nesting_too_deep",
        "[lien]\nbot_ids = " + "[" * 20 + "]" * 20 + "\n",
        {},
        "bad.toml:2: lien.bot_ids[0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 16 levels deep",
    ),
]


@pytest.mark.parametrize(("text", "env", "expected"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_file_line_and_key(text: str, env: dict[str, str], expected: str) -> None:
    lines = _errors(text, env)
    assert any(line.startswith(expected) for line in lines), "\n".join(lines)
    assert SECRET not in "\n".join(lines)


def test_unreadable_secret_file_names_key_and_line(tmp_path: Path) -> None:
    text = f'[discord]\nguild_ids = [1]\ntoken_file = "{tmp_path / "missing"}"\n'
    assert _errors(text) == [
        "bad.toml:3: discord.token_file: cannot read the file it names (No such file or directory)"
    ]


def test_secret_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    text = f'[discord]\ntoken_file = "{tmp_path}"\n'
    assert _errors(text) == ["bad.toml:2: discord.token_file: cannot read the file it names (Is a directory)"]


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(" \n")
    text = f'[discord]\ntoken_file = "{tmp_path / "token"}"\n'
    assert _errors(text) == ["bad.toml:2: discord.token_file: the file it names is empty"]


def test_every_problem_is_reported_one_per_line_in_line_order() -> None:
    text = (
        'timezone = "Nowhere/Land"\n'
        "[nudges]\n"
        "max_helpers = 9\n"
        '[communities."1"]\n'
        'language = "de"\n'
        '[communities."1".rooms."2"]\n'
        "nudges.pings_per_day = -1\n"
        "[lien]\n"
        "retention_days = 0\n"
    )
    lines = _errors(text)
    assert [line.split(": ")[0:2] for line in lines] == [
        ["bad.toml:1", "timezone"],
        ["bad.toml:3", "nudges.max_helpers"],
        ["bad.toml:5", 'communities."1".language'],
        ["bad.toml:7", 'communities."1".rooms."2".nudges.pings_per_day'],
        ["bad.toml:9", "lien.retention_days"],
    ]


def test_community_error_is_not_repeated_for_each_room() -> None:
    text = '[communities."1"]\nnudges.max_helpers = 8\n[communities."1".rooms."a"]\n[communities."1".rooms."b"]\n'
    assert _errors(text) == ['bad.toml:2: communities."1".nudges.max_helpers: must be at most 5 (got 8)']


def test_room_repeating_the_bad_value_is_reported_too() -> None:
    text = '[communities."1"]\nnudges.max_helpers = 8\n[communities."1".rooms."a"]\nnudges.max_helpers = 8\n'
    assert _errors(text) == [
        'bad.toml:2: communities."1".nudges.max_helpers: must be at most 5 (got 8)',
        'bad.toml:4: communities."1".rooms."a".nudges.max_helpers: must be at most 5 (got 8)',
    ]


def test_line_numbers_survive_multiline_values_comments_and_crlf() -> None:
    text = (
        "# max_helpers = 1 in a comment\r\n"
        "[lien]\r\n"
        'self_ids = [\r\n  "a",  # a comment ]\r\n  "b",\r\n]\r\n'
        "bot_ids = ['''\r\n[nudges]\r\nmax_helpers = 0\r\n''']\r\n"
        '"command_prefix" = """x = 1\r\n[x]\r\nmax_helpers = 2\r\n"""\r\n'
        "[nudges]\r\n"
        "max_helpers = 9\r\n"
    )
    lines = _errors(text)
    assert [line.split(": ")[0:2] for line in lines] == [
        ["bad.toml:11", "lien.command_prefix"],
        ["bad.toml:16", "nudges.max_helpers"],
    ]


def test_inline_table_key_points_at_its_line() -> None:
    text = 'language = "en"\n\nnudges = { enabled = true, quiet_hours = { start = "9" } }\n'
    assert _errors(text) == [
        'bad.toml:3: nudges.quiet_hours.start: must be a time "HH:MM" on the 24-hour clock, such as "22:00" (got "9")'
    ]


def test_override_errors_are_reported_even_when_the_top_level_is_broken() -> None:
    text = '[nudges]\nmax_helpers = "x"\n[communities."1".rooms."2"]\nlanguage = "xx"\nquestions.mode = "never"\n'
    lines = _errors(text)
    assert [line.split(": ")[0] for line in lines] == ["bad.toml:2", "bad.toml:4", "bad.toml:5"]
    assert lines[2].startswith('bad.toml:5: communities."1".rooms."2".questions.mode: must be')


def test_valid_config_applies_the_override_cascade() -> None:
    text = (
        'timezone = "Europe/Paris"\n'
        "[nudges]\nmax_helpers = 2\n"
        '[communities."1"]\nlanguage = "fr"\nnudges.max_helpers = 4\n'
        '[communities."1".rooms."2"]\nquestions = { mode = "off" }\n'
    )
    settings = parse_settings(text, "ok.toml", {})
    room = settings.room("1", "2")
    assert (room.language, room.timezone, room.nudges.max_helpers, room.questions.mode) == (
        "fr",
        "Europe/Paris",
        4,
        "off",
    )
    assert settings.room("other").nudges.max_helpers == 2


def test_adapter_section_is_kept_raw_and_checked_against_the_injected_schema() -> None:
    text = DISCORD_OK + "guild_ids = [5]\n"
    settings = parse_settings(text, "ok.toml", {"LIEN_TOKEN": SECRET}, sections=SECTIONS)
    assert settings.discord == {"token_env": "LIEN_TOKEN", "guild_ids": [5]}
    assert DiscordSchema.model_validate(settings.discord).guild_ids == (5,)
    assert SECRET not in repr(settings)


def test_injected_schema_errors_name_line_key_and_suggestion() -> None:
    text = '[discord]\ntoken_env = "LIEN_TOKEN"\ncomand_sync = "guilds"\nguild_ids = ["x"]\n'
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "bad.toml", {"LIEN_TOKEN": "t"}, sections=SECTIONS)
    assert str(info.value).splitlines() == [
        "bad.toml:3: discord.comand_sync: unknown key (did you mean command_sync?)",
        'bad.toml:4: discord.guild_ids[0]: must be an integer (got "x")',
    ]


def test_injected_schema_default_token_env_must_be_set() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings('language = "en"\n[discord]\nguild_ids = [1]\n', "bad.toml", {}, sections=SECTIONS)
    assert str(info.value) == "bad.toml:2: discord.token_env: environment variable DISCORD_TOKEN is not set"


def test_without_a_schema_an_adapter_section_is_only_checked_for_secrets() -> None:
    settings = parse_settings("[discord]\nanything = 1\n", "ok.toml", {})
    assert settings.discord == {"anything": 1}


def test_simulate_may_skip_secret_checks() -> None:
    settings = parse_settings(DISCORD_OK, "ok.toml", {}, check_secrets=False)
    assert settings.discord == {"token_env": "LIEN_TOKEN"}


# --- secrets ------------------------------------------------------------------------------------------------------


def test_resolve_secret_reads_and_strips_the_env_var() -> None:
    assert resolve_secret({"token_env": "LIEN_TOKEN"}, "token", {"LIEN_TOKEN": f"  {SECRET}\n"}) == SECRET


def test_resolve_secret_reads_and_strips_the_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"{SECRET}\n")
    assert resolve_secret({"token_file": str(tmp_path / "token")}, "token", {}) == SECRET


def test_resolve_secret_is_none_when_nothing_is_configured() -> None:
    assert resolve_secret({"guild_ids": [1]}, "token", {}) is None


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"token_env": "LIEN_TOKEN"}, "discord.token_env: environment variable LIEN_TOKEN is not set"),
        ({"token": SECRET}, "discord.token: a secret may not be written in the config file"),
        ({"token_env": "A", "token_file": "/x"}, "discord.token_env: set either token_env or token_file, not both"),
        ({"token_env": SECRET}, "discord.token_env: must be the NAME of an environment variable"),
        ({"token_file": f"/nonexistent/{SECRET}"}, "discord.token_file: cannot read the file it names"),
    ],
    ids=["unset_env", "literal", "both", "secret_as_env_name", "missing_file_path_not_echoed"],
)
def test_resolve_secret_errors_name_the_key_never_the_secret(section: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_secret(section, "token", {}, where="discord")
    assert str(info.value).startswith(expected)
    assert SECRET not in _all_text(info.value)


def test_undecodable_secret_file_does_not_leak_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(SECRET.encode() + b"\xff\xfe")
    with pytest.raises(ConfigError) as info:
        resolve_secret({"token_file": str(tmp_path / "token")}, "token", {}, where="discord")
    assert str(info.value) == "discord.token_file: the file it names is not UTF-8 text"
    text = _all_text(info.value)
    assert SECRET not in text and "\\xff" not in text and "0xff" not in text


def test_oversized_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        resolve_secret({"token_file": str(tmp_path / "token")}, "token", {})


def test_secrets_never_appear_in_config_error_text(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(SECRET.encode() + b"\xff")
    text = (
        f'[discord]\ntoken = "{SECRET}"\nadmin_roles = "x"\n'
        f'[matrix]\nhomeserver = "https://m.org"\nuser_id = "@l:m.org"\npassword_file = "{tmp_path / "pw"}"\n'
        f'[storage]\nurl = "postgresql://u:{SECRET}@h/db"\nurl_env = "{SECRET}"\n'
        "[nudges]\nmax_helpers = 99\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "bad.toml", {"LIEN_TOKEN": SECRET})
    shown = _all_text(info.value)
    assert "discord.token:" in shown and "matrix.password_file:" in shown and "nudges.max_helpers" in shown
    assert SECRET not in shown
    assert SECRET.split(".")[0] not in shown


def test_secret_from_env_is_not_echoed_when_other_keys_are_wrong() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(DISCORD_OK + "command_sync = 'now'\n", "bad.toml", {"LIEN_TOKEN": SECRET}, sections=SECTIONS)
    assert "discord.command_sync" in str(info.value)
    assert SECRET not in _all_text(info.value)


# --- files and check-config ---------------------------------------------------------------------------------------


def test_load_settings_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.toml: cannot read the configuration file \(No such file"):
        load_settings(tmp_path / "config.toml", {})


def test_load_settings_names_the_line_of_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'language = "en"\n\ntimezone = "Europe/\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value) == f"{path}:3: not UTF-8 text (TOML files must be UTF-8)"


def test_load_settings_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes('\ufefflanguage = "fr"\n'.encode())
    assert load_settings(path, {}).language == "fr"


def test_check_config_counts_communities_and_room_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[communities."1".rooms."a"]\n[communities."1".rooms."b"]\n[communities."2"]\n')
    assert check_config(path, {}) == (0, f"{path}: OK (2 communities, 2 room overrides)")


def test_check_config_returns_exit_code_2_and_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[nudges]\nmax_helpers = 9\nmin_samples = 0\n")
    assert check_config(path, {}) == (
        2,
        f"{path}:2: nudges.max_helpers: must be at most 5 (got 9)\n"
        f"{path}:3: nudges.min_samples: must be at least 1 (got 0)",
    )


def test_validate_overrides_quotes_ids_in_key_paths() -> None:
    settings = Settings.model_validate(
        {"communities": {"a.b": {"rooms": {"!r:x.org": {"nudges": {"max_helpers": 9}}}}}}
    )
    assert validate_overrides(settings) == [
        'communities."a.b".rooms."!r:x.org".nudges.max_helpers: Input should be less than or equal to 5'
    ]


# --- config.example.toml ------------------------------------------------------------------------------------------

EXAMPLE_ENV = {"DISCORD_TOKEN": "d", "LIEN_MATRIX_TOKEN": "m", "LIEN_DATABASE_URL": "sqlite+aiosqlite:///x.db"}


def _uncommented_example() -> str:
    """The example with its commented-out settings ("#key = ...", "#[table]") switched on."""
    return re.sub(r"(?m)^#(?=[\[A-Za-z\"])", "", EXAMPLE.read_text())


def test_example_config_loads_and_states_the_true_defaults() -> None:
    assert load_settings(EXAMPLE, {}).model_dump() == Settings().model_dump()


def test_example_config_commented_examples_are_valid() -> None:
    settings = parse_settings(_uncommented_example(), "example", EXAMPLE_ENV)
    assert settings.communities and settings.discord and settings.matrix and settings.console == {}
    assert MatrixSection.model_validate(settings.matrix).invite_allow == ("@admin:example.org", "example.org")
    for cid, community in settings.communities.items():
        for rid in community.rooms:
            settings.room(cid, rid)


def _models() -> list[type[BaseModel]]:
    found = [
        obj
        for obj in vars(bot.config).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == "bot.config"
        and not obj.__name__.startswith("_")
    ]
    return [*found, MatrixSection]


def _discord_adapter_fields() -> list[str]:
    """Field names of the Discord adapter's DiscordSettings, read from its source (unit tests import no SDK)."""
    tree = ast.parse((EXAMPLE.parent / "adapters" / "discord_adapter.py").read_text())
    schema = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DiscordSettings")
    return [n.target.id for n in schema.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]


def test_example_config_documents_every_field_of_every_model() -> None:
    text = EXAMPLE.read_text()
    written = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*=", text))
    written |= {part for header in re.findall(r"(?m)^#?\[([^\]]+)\]", text) for part in header.split(".")}
    missing = {f"{m.__name__}.{name}" for m in _models() for name in m.model_fields if name not in written}
    missing |= {f"DiscordSettings.{name}" for name in _discord_adapter_fields() if name not in written}
    assert len(_models()) >= 10 and len(_discord_adapter_fields()) >= 5
    assert not missing, f"config.example.toml does not document: {sorted(missing)}"


# Shown only as a prose alternative, because setting both is an error.
ALTERNATIVES = {"storage.url"}


def test_example_config_sets_every_core_key_where_it_belongs() -> None:
    """Each section of the (uncommented) example holds all the fields of the model it configures."""
    data = tomllib.loads(_uncommented_example())
    missing: list[str] = []

    def walk(model: type[BaseModel], node: dict[str, typing.Any], path: str) -> None:
        for name, field in model.model_fields.items():
            if name not in node:
                if f"{path}{name}" not in ALTERNATIVES:
                    missing.append(f"{path}{name}")
                continue
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, node[name], f"{path}{name}.")

    walk(Settings, data, "")
    community = next(iter(data["communities"].values()))
    walk(bot.config.CommunityOverride, community, "communities.ID.")
    walk(bot.config.RoomOverride, next(iter(community["rooms"].values())), "communities.ID.rooms.ID.")
    assert not missing, missing
