"""`lien demo` as a newcomer runs it: the built-in scenario, persistence across runs, scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "demo", "--db", str(tmp_path / "demo.db"),
                           "--no-interactive", *args], capture_output=True, text=True, timeout=120)


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


def test_script_runs_non_interactively(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("/as zoe\nHow do I reset my password on the forum?\n/wait 31m\n!lien unanswered\n")
    done = demo(tmp_path, "--script", str(script))
    assert done.returncode == 0, done.stderr
    assert "nudge L1" in done.stdout and "Oldest open questions" in done.stdout


def test_a_bad_script_line_exits_2_with_its_line(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("/as zoe\n/wait soon\n")
    done = demo(tmp_path, "--script", str(script))
    assert done.returncode == 2
    assert "s.txt:2" in done.stdout
