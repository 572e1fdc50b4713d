"""The `[matrix]` table: validated by `MatrixSettings` (errors naming `matrix.KEY`) and wired by `build_adapters`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.matrix_adapter import MatrixAdapter, MatrixSettings
from bot.clock import SystemClock
from bot.config import Settings
from bot.config_file import parse_settings
from bot.errors import ConfigError
from bot.main import build_adapters

BASE: dict[str, Any] = {"homeserver": "https://matrix.example.org", "user_id": "@lien:example.org",
                        "access_token_env": "LIEN_MATRIX_TOKEN"}


def test_minimal_table_gets_the_documented_defaults() -> None:
    ms = MatrixSettings.from_section(BASE)
    assert (ms.invite_allow, ms.rooms, ms.device_id, ms.command_prefix, ms.community) == ((), (), None, None, None)
    assert ms.community_id == "example.org"  # the server name of lien's user id


def test_lists_arrive_as_toml_arrays_and_room_v12_ids_without_a_server_are_rooms() -> None:
    ms = MatrixSettings.from_section({**BASE, "community": "example", "invite_allow": ["@admin:example.org",
                                                                                       "example.org"],
                                      "rooms": ["#help:example.org", "!abc:example.org",
                                                "!2OtxvStijjrRUebSYbqxCbWG04hi_DtYJzxhQYJymwc"]})
    assert ms.invite_allow == ("@admin:example.org", "example.org")
    assert len(ms.rooms) == 3
    assert ms.community_id == "example"


@pytest.mark.parametrize(("table", "key"), [
    ({k: v for k, v in BASE.items() if k != "homeserver"}, "matrix.homeserver"),
    ({**BASE, "homeserver": "matrix.example.org"}, "matrix.homeserver"),
    ({**BASE, "user_id": "lien"}, "matrix.user_id"),
    ({**BASE, "rooms": ["help"]}, "matrix.rooms.0"),
    ({**BASE, "invite_allow": ["not a server"]}, "matrix.invite_allow.0"),
    ({**BASE, "access_token_env": "syt_secret_token_pasted"}, "matrix.access_token_env"),
    ({**BASE, "roms": ["#help:example.org"]}, "matrix.roms"),
    ({**BASE, "community": ""}, "matrix.community"),
    ({**BASE, "timeout_minutes": 10}, "matrix.timeout_minutes"),
], ids=["missing-homeserver", "homeserver-not-url", "bad-user-id", "bad-room", "bad-inviter", "secret-as-env-name",
        "typo", "empty-community", "timeout-is-the-guards"])
def test_problems_name_the_matrix_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        MatrixSettings.from_section(table)
    assert f"{key}:" in str(err.value)
    assert "syt_secret_token_pasted" not in str(err.value)


def test_build_adapters_gives_a_matrix_adapter_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    section = {**BASE, "rooms": ["#help:example.org"], "invite_allow": ["example.org"], "command_prefix": "!l"}
    settings = Settings.model_validate({"matrix": section})

    clock = SystemClock()
    [adapter] = build_adapters(settings, store=object(), clock=clock, env={"LIEN_MATRIX_TOKEN": "tok\n"})

    assert isinstance(adapter, MatrixAdapter)
    assert (adapter.homeserver, adapter.user_id, adapter.community) == (
        "https://matrix.example.org", "@lien:example.org", "example.org")
    assert adapter._access_token == "tok"
    assert adapter._join_at_start == ("#help:example.org",)
    assert adapter._allowed == frozenset({"example.org"})
    assert adapter._prefix == "!l"
    assert adapter._clock is clock  # the composition root's clock, never one the adapter reads ad hoc


def test_every_matrix_key_is_accepted_where_the_core_alone_checks_the_file(tmp_path: Path) -> None:
    # `lien simulate --config` validates [matrix] with the core's schema, not the adapter's: a file that the live
    # run accepts must not be refused there.
    text = ('[matrix]\nhomeserver = "https://m.example.org"\nuser_id = "@lien:example.org"\n'
            'access_token_env = "LIEN_MATRIX_TOKEN"\ncommunity = "our-space"\nrooms = ["#help:example.org"]\n'
            'invite_allow = ["example.org"]\ncommand_prefix = "!l"\ndevice_id = "LIENDEV"\n')
    settings = parse_settings(text, "config.toml", {}, check_secrets=False)
    assert settings.matrix is not None
    assert MatrixSettings.from_section(settings.matrix).community_id == "our-space"


async def _no_kv(*_: str) -> None:
    return None


def test_build_adapters_refuses_an_unset_token_variable_naming_the_key() -> None:
    settings = Settings.model_validate({"matrix": BASE})
    with pytest.raises(ConfigError) as err:
        build_adapters(settings, store=object(), clock=object(), env={})
    assert "matrix.access_token_env" in str(err.value)
