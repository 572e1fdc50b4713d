"""`lien demo` as a newcomer runs it: the built-in scenario, persistence across runs, scripts."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "demo", "--db", str(tmp_path / "demo.db"),
                           "--no-interactive", *args], capture_output=True, text=True, timeout=120)


def demo_script(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """Run `text` as the demo script `tmp_path / "s.txt"` (what errors name)."""
    script = tmp_path / "s.txt"
    script.write_text(text)
    return demo(tmp_path, "--script", str(script))


def test_builtin_scenario_shows_nudges_with_reasons_and_refusals(tmp_path: Path) -> None:
    done = demo(tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "nudge L1" in out
    level2 = next(line for line in out.splitlines() if "nudge L2" in line)
    assert "@carol" in level2 and "alice helped you before" in level2
    assert "mass_invite" in out and "mass_dm" in out
    assert "@everyone" not in out.replace("dm-all", "")


def test_second_run_shows_the_state_the_first_left(tmp_path: Path) -> None:
    assert "Earlier runs" not in demo(tmp_path).stdout
    second = demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Earlier runs left 1 open question" in second.stdout
    # The first run's pending nudge is a week overdue: said in the demo's words, not as a log warning.
    assert "1 of their nudge(s) fell due more than `catch_up_hours` before" in second.stdout
    assert "WARNING" not in second.stderr


def test_script_runs_non_interactively(tmp_path: Path) -> None:
    done = demo_script(tmp_path, "/as zoe\nHow do I reset my password on the forum?\n/wait 31m\n!lien unanswered\n")
    assert done.returncode == 0, done.stderr
    assert "nudge L1" in done.stdout and "Oldest open questions" in done.stdout


def test_a_bad_script_line_exits_2_with_its_line(tmp_path: Path) -> None:
    done = demo_script(tmp_path, "/as zoe\n/wait soon\n")
    assert done.returncode == 2
    assert "s.txt:2" in done.stdout


@pytest.mark.parametrize(("line", "problem"), [
    ("/as", "usage: /as NAME"),
    ("/room  ", "usage: /room NAME"),
    # Virtual time past the calendar's end was an OverflowError traceback.
    ("/wait 9999999999d", "too long a wait: '9999999999d' (at most 366d at a time)"),
    ("/wait 367d", "too long a wait: '367d' (at most 366d at a time)"),
])
def test_a_console_line_that_cannot_be_done_says_why(tmp_path: Path, line: str, problem: str) -> None:
    done = demo_script(tmp_path, f"/as zoe\n{line}\n")
    assert done.returncode == 2, done.stderr
    assert f"  ! {tmp_path / 's.txt'}:2: {problem}" in done.stdout.splitlines()
    assert "Traceback" not in done.stderr


def test_help_lists_the_console_commands(tmp_path: Path) -> None:
    done = demo_script(tmp_path, "/help\n/wait 366d\n")
    assert done.returncode == 0, done.stderr
    for command in ("/as NAME", "/reply LABEL TEXT", "/wait 30m", "/help", "/quit"):
        assert command in done.stdout


async def test_two_runs_started_in_the_same_second_do_not_share_message_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run's messages are new messages, not the first run's seen again (this crashed once)."""
    from adapters.console import run_demo
    from bot import clock
    from bot.config import Settings
    from bot.main import _sqlite_url, open_store

    frozen = datetime(2026, 11, 27, 13, 8, 24, tzinfo=UTC)
    monkeypatch.setattr(clock.SystemClock, "now", lambda self: frozen)
    settings = Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}}})
    outs = []
    for _ in range(2):
        out = io.StringIO()
        async with open_store(_sqlite_url(tmp_path / "demo.db")) as store:
            assert await run_demo(settings, store, script=None, speed=600, interactive=False, out=out) == 0
        outs.append(out.getvalue())
    assert "Earlier runs left 1 open question" in outs[1]
    assert "nudge L1" in outs[1] and "alice helped you before" in outs[1]


def test_a_script_that_cannot_be_read_stops_before_the_database_is_touched(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    done = demo(tmp_path, "--script", str(missing))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"lien demo: {missing}: No such file or directory"]
    assert not (tmp_path / "demo.db").exists()


@pytest.mark.parametrize("speed", ["0", "-3", "nan", "inf", "1e9", "fast"])
def test_a_speed_that_cannot_drive_virtual_time_is_refused(tmp_path: Path, speed: str) -> None:
    """Zero or negative froze or reversed the interactive clock; NaN or a huge speed crashed it."""
    done = demo(tmp_path, "--speed", speed)
    assert done.returncode == 2
    assert "lien demo: error: argument --speed: " in done.stderr
    assert not (tmp_path / "demo.db").exists()


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert re.fullmatch(r"lien \d+\.\d+\.\d+\S*\n", done.stdout)
