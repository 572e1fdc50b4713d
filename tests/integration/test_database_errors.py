"""A database lien cannot use is named, with the reason, in one line: never a driver traceback, never a password,
and a report never creates the file it was asked to read; an output file never overwrites an input. Real SQLite
files, real migrations, real sockets."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage.migrate import migrate

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "data" / "simulate" / "basic.events.jsonl"


def lien(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env)


def one_line_error(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The error, checked to be a single line that names the command (no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lien {command}: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("as_url", [True, False], ids=["url", "plain-path"])
def test_a_report_reads_a_database_a_replay_left(tmp_path: Path, as_url: bool) -> None:
    """`lien simulate --db FILE` then `lien report --db` of the same FILE (a plain path was 'not a database URL')."""
    db = tmp_path / "sim.db"
    assert lien("simulate", str(EVENTS), "--db", str(db), "--out", str(tmp_path / "out.jsonl")).returncode == 0
    done = lien("report", "--db", f"sqlite:///{db}" if as_url else str(db), "--out", str(tmp_path / "page.html"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "page.html").stat().st_size > 0


@pytest.mark.parametrize("as_url", [True, False], ids=["url", "plain-path"])
def test_a_report_of_a_missing_file_says_so_and_creates_nothing(tmp_path: Path, as_url: bool) -> None:
    missing = tmp_path / "typo.db"
    done = lien("report", "--db", f"sqlite:///{missing}" if as_url else str(missing),
                "--out", str(tmp_path / "page.html"))
    assert done.returncode == 2
    assert one_line_error(done, "report") == f"lien report: --db: no database at {missing}"
    assert not missing.exists()


def test_a_report_refuses_a_file_that_is_not_lien_s(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, but long enough to have a header " * 4)
    done = lien("report", "--db", f"sqlite:///{text}", "--out", str(tmp_path / "page.html"))
    assert done.returncode == 1
    assert one_line_error(done, "report") == f"lien report: cannot open the database {text}: file is not a database"

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    done = lien("report", "--db", f"sqlite:///{other}", "--out", str(tmp_path / "page.html"))
    assert done.returncode == 2
    assert one_line_error(done, "report").endswith(f"{other} is not a lien database (no schema revision in it)")


def test_a_report_asks_for_a_migration_of_an_older_schema_and_leaves_it_as_it_is(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    asyncio.run(migrate(f"sqlite:///{old}", "0002_help_edges_covering"))
    done = lien("report", "--db", f"sqlite:///{old}", "--out", str(tmp_path / "page.html"))
    assert done.returncode == 2
    line = one_line_error(done, "report")
    assert "at schema revision 0002_help_edges_covering" in line and "lien migrate" in line
    with sqlite3.connect(old) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002_help_edges_covering",)]


def test_an_unreachable_server_is_named_without_its_password(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    done = lien("report", "--db", "postgresql://lien:s3cret-pw@127.0.0.1:1/lien", "--out", str(tmp_path / "p.html"))
    assert done.returncode == 1
    line = one_line_error(done, "report")
    assert line.startswith("lien report: cannot reach the database postgresql://lien:***@127.0.0.1:1/lien: ")
    assert "s3cret" not in done.stderr + done.stdout


def test_urls_lien_cannot_use_are_refused_before_connecting(tmp_path: Path) -> None:
    out = str(tmp_path / "p.html")
    done = lien("report", "--db", "://lien.db", "--out", out)  # (a plain path is a SQLite file)
    assert done.returncode == 2 and "not a database URL" in one_line_error(done, "report")
    done = lien("report", "--db", "mysql://lien:pw@127.0.0.1/lien", "--out", out)
    assert done.returncode == 2
    assert one_line_error(done, "report").startswith("lien report: lien cannot use mysql databases")


def test_a_database_in_a_missing_directory_is_named_by_every_command(tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "dir" / "lien.db"
    simulate = lien("simulate", str(EVENTS), "--db", str(db), "--out", str(tmp_path / "out.jsonl"))
    demo = lien("demo", "--db", str(db), "--no-interactive")
    for done, command in ((simulate, "simulate"), (demo, "demo")):
        assert done.returncode == 1
        assert one_line_error(done, command) == (
            f"lien {command}: cannot open the database {db}: the directory {db.parent} does not exist")
    assert not db.parent.exists()


def test_the_configured_database_url_is_checked_with_its_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "lien.toml"
    config.write_text('[lien]\nmax_recipients = 3\n\n[storage]\nurl = "mysql://lien@db/lien"\n', encoding="utf-8")
    done = lien("check-config", str(config))
    assert done.returncode == 2
    assert f"{config}:5: storage.url: expected a SQLite or PostgreSQL URL" in done.stderr

    config.write_text('[storage]\nurl_env = "LIEN_TEST_UNSET_DB_URL"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "LIEN_TEST_UNSET_DB_URL"}
    done = lien("migrate", "--config", str(config), env=env)
    assert done.returncode == 2
    assert one_line_error(done, "migrate") == (
        "lien migrate: storage.url_env: the environment variable LIEN_TEST_UNSET_DB_URL is not set")
    done = lien("migrate", "--config", str(config), env={**env, "LIEN_TEST_UNSET_DB_URL": "not a url"})
    assert done.returncode == 2
    assert one_line_error(done, "migrate").startswith("lien migrate: storage.url: not a database URL")


@pytest.mark.parametrize("command", ["simulate", "report", "import"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path: Path, command: str) -> None:
    """`--out` naming the input truncated it before it was read (simulate) or replaced it once read (report, import):
    the user's file was lost."""
    source = tmp_path / ("export.json" if command == "import" else "events.jsonl")
    source.write_bytes(b'{"guild": {"id": "1"}, "channel": {"id": "2"}, "messages": []}' if command == "import"
                       else EVENTS.read_bytes())
    before = source.read_bytes()
    link = tmp_path / "same-file-other-name"
    link.hardlink_to(source)
    args = {"simulate": ["simulate", str(source)], "report": ["report", str(source)],
            "import": ["import", "discord", str(source)]}[command]
    for out in (source, link):
        done = lien(*args, "--out", str(out))
        assert done.returncode == 2
        assert one_line_error(done, command) == (f"lien {command}: --out: {out} is also an input file: write the "
                                                 "output to another file")
        assert source.read_bytes() == before
