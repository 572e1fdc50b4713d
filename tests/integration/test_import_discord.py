"""`lien import discord`, fed from DiscordChatExporter-shaped exports in tests/data/exports/.

The samples follow the exporter's JSON writer: guild/channel header, messages with kind names, ISO timestamps with
the exporter's local offset, authors with roles, reactions with (newer exporter) or without (older) their users,
a thread export whose `categoryId` is its parent channel, and a forum post whose first message has the post's id.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.importing import run_import

DATA = Path(__file__).resolve().parents[1] / "data" / "exports"
REPO = Path(__file__).resolve().parents[2]
GUILD = "1180000000000000001"
HELP = "1180000000000000200"
ALICE, BOB, CAROL, DAVE, ERIN = (f"118000000000000010{i}" for i in range(1, 6))
THREAD = "1180000000000000300"


def run(files: list[Path], tmp_path: Path, *, skip_bad: bool = False, kind: str = "discord",
        **kw: Any) -> tuple[int, list[dict[str, Any]], str]:
    """Import into a file; (exit code, output lines as dicts, stderr)."""
    out = tmp_path / "events.jsonl"
    err = io.StringIO()
    code = run_import(kind, files, out, skip_bad, False, stderr=err, **kw)
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()] if out.exists() else []
    return code, lines, err.getvalue()


def message(mid: str, ts: str, author: str, name: str, text: str, *, room: str = HELP, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "message", "platform": "discord", "community": GUILD, "room": room, "id": mid,
                         "ts": ts, "author": author, "author_name": name, "text": text}
    d.update(extra)
    return d


def reaction(message_id: str, author: str, emoji: str, ts: str) -> dict[str, Any]:
    return {"type": "reaction", "community": GUILD, "room": HELP, "message": message_id, "author": author,
            "emoji": emoji, "ts": ts}


CHANNEL_EVENTS = [
    {"type": "member_join", "community": GUILD, "author": CAROL, "ts": "2026-03-02T08:58:12.345000Z"},
    message("1180000000000001002", "2026-03-02T09:00:00Z", ALICE, "Alice",
            "How do I configure the bridge for two rooms?"),
    message("1180000000000001003", "2026-03-02T09:04:30.120000Z", BOB, "Bob",
            f"Use one [[rooms]] block per room, <@{ALICE}>.", reply_to="1180000000000001002", mentions=[ALICE]),
    # Reactions are not dated by the export: they take the message's time, right after it.
    reaction("1180000000000001003", ALICE, "✅", "2026-03-02T09:04:30.120000Z"),
    reaction("1180000000000001003", ALICE, "👍", "2026-03-02T09:04:30.120000Z"),
    reaction("1180000000000001003", CAROL, "👍", "2026-03-02T09:04:30.120000Z"),
    reaction("1180000000000001003", CAROL, "thanks:1180000000000000900", "2026-03-02T09:04:30.120000Z"),
    message("1180000000000001004", "2026-03-02T09:05:00Z", "1180000000000000199", "HelperBot",
            "Reminder: the FAQ is pinned in #announcements.", is_bot=True),
    message("1180000000000001006", "2026-03-02T09:20:00Z", CAROL, "Carol",
            "Does anyone know why the deploy fails with a timeout?"),
    message("1180000000000001008", "2026-03-02T09:31:00Z", ERIN, "Erin", "good morning everyone"),
]

THREAD_EVENTS = [
    message("1180000000000003001", "2026-03-02T09:30:05Z", DAVE, "Dave",
            "Why does my container restart every few minutes?", thread=THREAD),
    message("1180000000000003002", "2026-03-02T09:41:00Z", ERIN, "Erin",
            f"<@{DAVE}> check the health check settings of the service.", reply_to="1180000000000003001",
            thread=THREAD, mentions=[DAVE]),
    message("1180000000000003003", "2026-03-02T09:45:00Z", DAVE, "Dave", "thanks, that worked!", thread=THREAD),
]


def test_channel_export_gives_exactly_these_events(tmp_path: Path) -> None:
    code, lines, _ = run([DATA / "discord_channel.json"], tmp_path)
    assert code == 0
    assert lines == CHANNEL_EVENTS


def test_summary_counts_read_written_and_skipped_by_reason(tmp_path: Path) -> None:
    _, _, err = run([DATA / "discord_channel.json"], tmp_path)
    summary = err.strip().splitlines()[-1]
    assert "8 records read, 10 events written (message 5, reaction 4, member_join 1)" in summary
    assert "2 records skipped (system message: ChannelPinnedMessage 1, system message: ThreadCreated 1)" in summary
    # The 👀 reaction lists a count of 2 and no users; HelperBot's own reaction is not imported.
    assert "reactions_without_users 2" in summary
    assert "bot_reactions 1" in summary


def test_thread_export_maps_to_parent_room_and_thread_id(tmp_path: Path) -> None:
    code, lines, _ = run([DATA / "discord_thread.json"], tmp_path)
    assert code == 0
    assert lines == THREAD_EVENTS


def test_forum_post_is_a_thread_of_the_forum_channel_whose_starter_has_the_post_id(tmp_path: Path) -> None:
    code, lines, _ = run([DATA / "discord_forum_post.json"], tmp_path)
    assert code == 0
    post = "1180000000000000400"
    assert [(e["room"], e["thread"], e["id"]) for e in lines] == [
        ("1180000000000000250", post, post), ("1180000000000000250", post, "1180000000000004002")]


def test_several_files_are_merged_in_time_order(tmp_path: Path) -> None:
    code, lines, err = run([DATA / "discord_channel.json", DATA / "discord_thread.json"], tmp_path)
    assert code == 0
    assert lines == sorted(CHANNEL_EVENTS + THREAD_EVENTS, key=lambda e: e["ts"])
    assert "2 file(s), 11 records read, 13 events written" in err


def test_overlapping_exports_of_one_channel_write_each_event_once(tmp_path: Path) -> None:
    export = json.loads((DATA / "discord_channel.json").read_text("utf-8"))
    later = dict(export, messages=export["messages"][2:], messageCount=6)
    # The later export saw an edit of Carol's question: the first file given wins.
    later["messages"][3] = dict(later["messages"][3], content="edited later")
    second = tmp_path / "later.json"
    second.write_text(json.dumps(later), "utf-8")
    code, lines, err = run([DATA / "discord_channel.json", second], tmp_path)
    assert code == 0
    assert lines == CHANNEL_EVENTS
    assert "8 duplicate events dropped (message 4, reaction 4)" in err
    assert "warning" not in err


def test_reverse_order_export_is_sorted_through_temporary_runs(tmp_path: Path) -> None:
    export = json.loads((DATA / "discord_channel.json").read_text("utf-8"))
    export["messages"].reverse()
    reversed_file = tmp_path / "reversed.json"
    reversed_file.write_text(json.dumps(export), "utf-8")
    from adapters.importing import import_files, translator_factory

    out = io.BytesIO()
    # A window of 2 lines forces replacement selection to spill several runs and merge them.
    import_files(translator_factory("discord"), [reversed_file], out, skip_bad=False, report=print, window=2,
                 memory_budget=0, tmpdir=tmp_path)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == CHANNEL_EVENTS


def test_malformed_record_is_fatal_with_file_number_offset_and_field(tmp_path: Path) -> None:
    code, lines, err = run([DATA / "discord_malformed.json"], tmp_path)
    assert code == 2
    assert err.strip() == (f"lien import: {DATA / 'discord_malformed.json'}: message #2 (byte offset 1220): "
                           "author.id: required field is missing")
    assert not (tmp_path / "events.jsonl").exists()  # no partial output on failure
    assert lines == []


def test_skip_bad_reports_each_bad_record_and_keeps_the_good_ones_around_it(tmp_path: Path) -> None:
    code, lines, err = run([DATA / "discord_malformed.json"], tmp_path, skip_bad=True)
    assert code == 0
    assert [e["text"] for e in lines] == ["first good message", "last good message"]
    name = DATA / "discord_malformed.json"
    assert err.splitlines()[:3] == [
        f"lien import: skipped {name}: message #2 (byte offset 1220): author.id: required field is missing",
        f"lien import: skipped {name}: message #3 (byte offset 1884): timestamp: timestamp has no offset "
        "(add Z or +HH:MM): '2026-03-04T10:02:00.000'",
        f"lien import: skipped {name}: message #4 (byte offset 2581): invalid JSON: Expecting ',' delimiter "
        "at byte offset 2648",
    ]
    assert "5 records read, 2 events written (message 2); 3 records skipped (bad record 3)" in err


def test_truncated_export_is_fatal_or_keeps_every_complete_message(tmp_path: Path) -> None:
    code, _, err = run([DATA / "discord_truncated.json"], tmp_path)
    assert code == 2
    assert "message #4 (byte offset 6038): unexpected end of file inside this message (truncated export?)" in err
    code, lines, err = run([DATA / "discord_truncated.json"], tmp_path, skip_bad=True)
    assert code == 0
    assert lines == CHANNEL_EVENTS[:7]
    assert "1 records skipped (truncated record 1)" in err


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"guild": {"id": "0", "name": "Direct Messages"},
          "channel": {"id": "5", "type": "DirectTextChat", "categoryId": None, "name": "bob"}},
         "channel.type: a direct-message export: lien imports no private conversations"),
        ({"channel": {"id": "5", "type": "GuildTextChat"}},
         "guild: required field is missing (not a DiscordChatExporter JSON export)"),
        ({"room_name": "Bridge help", "export_date": "09-03-2026"},
         "guild: required field is missing (not a DiscordChatExporter JSON export: this looks like an Element "
         "export, use `lien import matrix`)"),
        ({"guild": {"id": "1", "name": "G"}, "channel": {"id": "7", "type": "GuildPublicThread", "categoryId": None}},
         "channel.categoryId: a thread export needs its parent channel id here"),
        ({"guild": {"id": 1}, "channel": {"id": "5"}}, "guild.id: expected a string id, got number"),
    ],
    ids=["dm-refused", "no-guild", "element-file", "thread-without-parent", "numeric-guild-id"],
)
def test_unusable_header_is_fatal_even_with_skip_bad(tmp_path: Path, header: dict[str, Any], expected: str) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({**header, "messages": []}), "utf-8")
    code, _, err = run([path], tmp_path, skip_bad=True)
    assert code == 2
    assert err.strip() == f"lien import: {path}: {expected}"


def test_reply_link_only_from_reply_messages_and_null_reference_means_deleted(tmp_path: Path) -> None:
    base = {"timestamp": "2026-03-02T10:00:00+00:00", "content": "x", "author": {"id": "9", "name": "n"}}
    messages = [
        {**base, "id": "1", "type": "Reply", "reference": {"messageId": "0", "channelId": "5", "guildId": "1"}},
        {**base, "id": "2", "type": "Reply", "reference": {"messageId": None, "channelId": "5", "guildId": "1"}},
        # A forwarded message carries a reference too, but it answers nothing.
        {**base, "id": "3", "type": "Default", "reference": {"type": "Forward", "messageId": "0"}},
        {**base, "id": "4", "type": "20"},  # an application command the exporter cannot name
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"guild": {"id": "1"}, "channel": {"id": "5", "type": "GuildTextChat"},
                                "messages": messages}), "utf-8")
    code, lines, _ = run([path], tmp_path)
    assert code == 0
    assert [(e["id"], e.get("reply_to")) for e in lines] == [("1", "0"), ("2", None), ("3", None), ("4", None)]


def test_bot_join_and_unknown_system_kinds_are_counted_not_written(tmp_path: Path) -> None:
    base = {"timestamp": "2026-03-02T10:00:00+00:00", "content": ""}
    messages = [
        {**base, "id": "1", "type": "GuildMemberJoin", "author": {"id": "7", "isBot": True}},
        {**base, "id": "2", "type": "46", "author": {"id": "8"}},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": messages}), "utf-8")
    code, lines, err = run([path], tmp_path)
    assert (code, lines) == (0, [])
    assert "2 records skipped (bot joined 1, system message: 46 1)" in err


def test_message_count_mismatch_is_warned(tmp_path: Path) -> None:
    export = json.loads((DATA / "discord_thread.json").read_text("utf-8"))
    export["messageCount"] = 5
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export), "utf-8")
    code, _, err = run([path], tmp_path)
    assert code == 0
    assert f"warning: {path}: messageCount says 5 but the file holds 3 messages" in err


def test_output_goes_to_stdout_when_no_out_file(tmp_path: Path) -> None:
    out, err = io.BytesIO(), io.StringIO()
    code = run_import("discord", [DATA / "discord_thread.json"], None, False, False, stderr=err, stdout=out)
    assert code == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == THREAD_EVENTS


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = tmp_path / "many.json"
    messages = [{"id": str(i), "type": "Default", "timestamp": "2026-03-02T10:00:00+00:00", "content": "hi",
                 "author": {"id": "9"}} for i in range(5000)]
    path.write_text(json.dumps({"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": messages}), "utf-8")
    tty = Tty()
    assert run_import("discord", [path], tmp_path / "a.jsonl", False, True, stderr=tty) == 0
    assert "reading [" in tty.getvalue() and "records" in tty.getvalue()
    assert tty.getvalue().count("\r\x1b[K") >= 1  # erased before the summary
    quiet = Tty()
    assert run_import("discord", [path], tmp_path / "b.jsonl", False, False, stderr=quiet) == 0
    assert "reading [" not in quiet.getvalue()


def test_round_trip_simulate_finds_the_sample_questions(tmp_path: Path) -> None:
    files = [DATA / "discord_channel.json", DATA / "discord_thread.json", DATA / "discord_forum_post.json"]
    code, _, _ = run(files, tmp_path)
    assert code == 0
    result = subprocess.run([sys.executable, "-m", "bot", "simulate", str(tmp_path / "events.jsonl")], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True)
    questions = {q["id"]: q for q in map(json.loads, result.stdout.splitlines()) if q.get("type") == "question"}
    assert {qid: q["state"] for qid, q in questions.items()} == {
        "1180000000000001002": "resolved",  # Bob replied, Alice reacted ✅ on the answer
        "1180000000000001006": "stale",  # nobody answered Carol: nudged until the last level
        "1180000000000003001": "resolved",  # answered in the thread, Dave thanked
        "1180000000000000400": "answered",  # the forum post got an answer
    }
    assert questions["1180000000000001002"]["credited"] == [BOB]
    assert questions["1180000000000003001"]["room"] == HELP
