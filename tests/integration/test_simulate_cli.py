"""`lien simulate` as a user runs it: golden output, determinism, exit codes and bad-line handling."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent.parent / "data" / "simulate"
GOLDEN_EVENTS = DATA / "basic.events.jsonl"
GOLDEN_EXPECTED = DATA / "basic.expected.jsonl"


def simulate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "simulate", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_simulate_matches_the_golden_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    done = simulate(str(GOLDEN_EVENTS), "--until", "2026-03-04T00:00:00Z", "--out", str(out))
    assert done.returncode == 0, done.stderr
    if os.environ.get("LIEN_UPDATE_GOLDEN") == "1":
        GOLDEN_EXPECTED.write_bytes(out.read_bytes())
    assert out.read_bytes() == GOLDEN_EXPECTED.read_bytes()


def test_simulate_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert simulate(str(GOLDEN_EVENTS), "--out", str(a)).returncode == 0
    assert simulate(str(GOLDEN_EVENTS), "--out", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_golden_output_has_the_spec_shape() -> None:
    lines = [json.loads(line) for line in GOLDEN_EXPECTED.read_text().splitlines()]
    actions = [d for d in lines if "action" in d]
    questions = [d for d in lines if d.get("type") == "question"]
    assert lines[-1]["type"] == "summary" and lines[-1]["questions"] == len(questions)
    assert [d["ts"] for d in actions] == sorted(d["ts"] for d in actions)
    assert [q["id"] for q in questions] == sorted(q["id"] for q in questions)
    states = {q["id"]: q["state"] for q in questions}
    assert states == {"m1": "resolved", "m4": "resolved", "m6": "stale", "m7": "withdrawn", "m9": "stale"}
    refusal = next(d for d in actions if d["action"] == "refuse")
    assert refusal["reason"] == "mass_dm" and "@everyone" not in refusal["text"]
    assert all(len(d["mentions"]) <= 3 for d in actions)
    assert lines[-1]["unknown_types"] == 1


def test_a_bad_line_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = GOLDEN_EVENTS.read_text().splitlines()
    bad.write_text("\n".join([*good[:3], '{"type":"message","community":"g1","room":"r","id":"x",'
                              '"ts":"2026-03-02T09:00:00","author":"a","text":"hi"}', *good[3:]]) + "\n")
    done = simulate(str(bad))
    assert done.returncode == 2
    assert f"{bad}:4: ts:" in done.stderr


def test_skip_bad_reports_counts_and_keeps_the_good_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = GOLDEN_EVENTS.read_text().splitlines()
    bad.write_text("\n".join([*good[:3], "{not json", *good[3:]]) + "\n")
    out = tmp_path / "out.jsonl"
    done = simulate(str(bad), "--skip-bad", "--until", "2026-03-04T00:00:00Z", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{bad}:4:" in done.stderr
    lines = out.read_text().splitlines()
    summary = json.loads(lines[-1])
    assert summary["skipped_bad"] == 1 and summary["events"] == 13
    assert lines[:-1] == GOLDEN_EXPECTED.read_text().splitlines()[:-1]


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = simulate(str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2 and "nope.jsonl" in done.stderr


@pytest.mark.parametrize("config, needle", [
    ("[nudges]\nmax_helpers = 9\n", "nudges.max_helpers"),
    ("[questions]\nmode = 'sometimes'\n", "questions.mode"),
], ids=["out-of-range", "bad-choice"])
def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path, config: str, needle: str) -> None:
    cfg = tmp_path / "lien.toml"
    cfg.write_text(config)
    done = simulate(str(GOLDEN_EVENTS), "--config", str(cfg))
    assert done.returncode == 2
    assert needle in done.stderr and "lien.toml:" in done.stderr


def test_a_replay_database_leaves_nothing_for_a_live_run_to_send(tmp_path: Path) -> None:
    # A simulation performs nothing: a live lien started on its database must not deliver its nudges.
    import sqlite3

    db, out = tmp_path / "replay.db", tmp_path / "out.jsonl"
    done = simulate(str(GOLDEN_EVENTS), "--until", "2026-03-04T00:00:00Z", "--out", str(out), "--db", str(db))
    assert done.returncode == 0, done.stderr
    nudged = [d for d in map(json.loads, out.read_text().splitlines()) if d.get("kind") == "nudge"]
    assert nudged, "the golden scenario nudges"
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM nudges WHERE state = 'sent'").fetchone()[0] == len(nudged)
        assert con.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0] == 0


def test_an_output_path_that_cannot_be_written_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "out.jsonl"
    done = simulate(str(GOLDEN_EVENTS), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"lien simulate: {out}: No such file or directory"]


def test_events_out_of_time_order_are_late_deliveries(tmp_path: Path) -> None:
    """A file not in `ts` order: virtual time does not go back (actions stay in time order), and a message stamped
    before the question it follows in the file does not answer it (no negative time to first answer)."""
    def message(id_: str, ts: str, author: str, text: str) -> str:
        return json.dumps({"type": "message", "community": "g", "room": "r", "id": id_, "ts": ts, "author": author,
                           "text": text})

    events = tmp_path / "disorder.jsonl"
    events.write_text("\n".join([
        message("q1", "2026-03-02T10:00:00Z", "alice", "How do I rotate the proxy logs?"),
        message("a0", "2026-03-02T09:00:00Z", "bob", "use logrotate with copytruncate"),
        message("q2", "2026-03-02T12:00:00Z", "carol", "Why does the nightly build time out?"),
        message("q3", "2026-03-02T08:00:00Z", "dave", "Where are the release notes kept?"),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    done = simulate(str(events), "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    actions = [d["ts"] for d in lines if "action" in d]
    assert actions and actions == sorted(actions)
    questions = {d["id"]: d for d in lines if d.get("type") == "question"}
    assert questions["q1"]["answers"] == [] and questions["q1"]["first_answer_ts"] is None
    assert set(questions) == {"q1", "q2", "q3"}


@pytest.mark.parametrize("ts", ["9999-12-31T20:00:00Z", "0001-01-01T00:00:00Z"])
def test_a_time_at_the_ends_of_the_calendar_is_a_bad_line_not_a_crash(tmp_path: Path, ts: str) -> None:
    """A replay runs on 7 days past its last event and looks back over retention: a stamp at datetime's ends made
    that arithmetic overflow (a traceback, exit 1)."""
    events = tmp_path / "ends.jsonl"
    events.write_text(json.dumps({"type": "message", "community": "g", "room": "r", "id": "m1", "ts": ts,
                                  "author": "alice", "text": "How do I rotate the proxy logs?"}) + "\n")
    done = simulate(str(events))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"lien simulate: {events}:1: ts: timestamp out of range (years 1970 to 9998 in "
                                   f"UTC): '{ts}'")


def test_a_bad_until_names_the_option_once(tmp_path: Path) -> None:
    done = simulate(str(GOLDEN_EVENTS), "--until", "2026-03-04T00:00:00")
    assert done.returncode == 2
    assert done.stderr == ("lien simulate: --until: timestamp has no offset (add Z or +HH:MM): "
                           "'2026-03-04T00:00:00'\n")


def test_dash_reads_the_events_from_standard_input(tmp_path: Path) -> None:
    """`lien import ... | lien simulate -`: the same output as from the file."""
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "bot", "simulate", "-", "--until", "2026-03-04T00:00:00Z",
                           "--out", str(out)], input=GOLDEN_EVENTS.read_bytes(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == GOLDEN_EXPECTED.read_bytes()
    bad = subprocess.run([sys.executable, "-m", "bot", "simulate", "-"], input=b"not json\n", capture_output=True,
                         timeout=120)
    assert bad.returncode == 2
    assert bad.stderr == b"lien simulate: <stdin>:1: invalid JSON: Expecting value (column 1)\n"


def test_a_report_reads_standard_input_too(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    done = subprocess.run([sys.executable, "-m", "bot", "report", "-", "--out", str(page)],
                          input=GOLDEN_EVENTS.read_bytes(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "standard input" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("mode", ["observe", "enforce"])
def test_spam_replying_to_a_question_is_not_its_answer(tmp_path: Path, mode: str) -> None:
    """A new member's invite-link spam posted as a reply to a question: the guard flags it, and it must not count
    as the answer (which silenced the question's nudges) nor as help given (a help edge for the spammer)."""
    config = tmp_path / "lien.toml"
    config.write_text(f'[guard]\nmode = "{mode}"\n')
    lines = [
        {"type": "message", "community": "g", "room": "r", "id": "q1", "ts": "2026-03-02T10:00:00Z",
         "author": "alice", "text": "How do I rotate the proxy logs?"},
        {"type": "member_join", "community": "g", "author": "spammer", "ts": "2026-03-02T10:00:30Z"},
        {"type": "message", "community": "g", "room": "r", "id": "s1", "ts": "2026-03-02T10:01:00Z",
         "author": "spammer", "text": "free nitro https://discord.gg/abcdef", "reply_to": "q1"},
        {"type": "message", "community": "g", "room": "r2", "id": "q2", "ts": "2026-03-02T10:02:00Z",
         "author": "carol", "text": "Why does the nightly build time out?"},
        {"type": "message", "community": "g", "room": "r2", "id": "a2", "ts": "2026-03-02T10:03:00Z",
         "author": "bob", "text": "the cache volume is full", "reply_to": "q2"},
    ]
    events = tmp_path / "spam.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    out, db = tmp_path / "out.jsonl", tmp_path / "sim.db"
    done = simulate(str(events), "--config", str(config), "--db", str(db), "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(d.get("kind") == "guard" and d["reply_to"] == "s1" for d in records)  # the guard did flag it
    questions = {d["id"]: d for d in records if d.get("type") == "question"}
    assert questions["q1"]["answers"] == [] and questions["q1"]["nudges"] > 0
    assert questions["q2"]["answers"] == ["a2"]  # an ordinary reply still answers
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT helper FROM help_edges ORDER BY helper").fetchall() == [("bob",)]
