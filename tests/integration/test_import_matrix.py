"""`lien import matrix`, fed from an Element "Export chat" JSON file in tests/data/exports/.

The sample is shaped as Element's JSON exporter writes it (room_name, room_creator, topic, export_date, exported_by,
then `messages`: raw events, redacted ones with `unsigned.redacted_because`), and covers a rich reply with its
fallback, a thread with a falling-back reply, an edit, a redaction, reactions, joins, a profile change and a leave.
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
ROOM = "!hlpQkzVbXnJpWcRt:example.org"
SERVER = "example.org"
A, B, C, D = "@alice:example.org", "@bob:example.org", "@carol:matrix.org", "@dave:example.org"
Q, ANS, TROOT = "$q1-How_configure_bridge", "$a1-one_rooms_block", "$t1-why_container_restarts"


def run(files: list[Path], tmp_path: Path, *, skip_bad: bool = False,
        community: str | None = None) -> tuple[int, list[dict[str, Any]], str]:
    out = tmp_path / "events.jsonl"
    err = io.StringIO()
    code = run_import("matrix", files, out, skip_bad, False, stderr=err, community=community)
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()] if out.exists() else []
    return code, lines, err.getvalue()


def message(mid: str, ts: str, author: str, text: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "message", "platform": "matrix", "community": SERVER, "room": ROOM, "id": mid,
                         "ts": ts, "author": author, "text": text}
    d.update(extra)
    return d


def member(kind: str, author: str, ts: str) -> dict[str, Any]:
    return {"type": kind, "community": SERVER, "author": author, "ts": ts}


ROOM_EVENTS = [
    member("member_join", A, "2026-03-02T09:00:01Z"),
    member("member_join", B, "2026-03-02T09:01:00Z"),
    message(Q, "2026-03-02T10:00:00Z", A, "How do I configure the bridge for two rooms?"),
    # The `> <@alice...> ...` fallback quote is stripped; the reply and the mention come from the relation.
    message(ANS, "2026-03-02T10:04:30Z", B, "Use one [[rooms]] block per room.", reply_to=Q, mentions=[A]),
    {"type": "reaction", "community": SERVER, "room": ROOM, "message": ANS, "author": A, "emoji": "✅",
     "ts": "2026-03-02T10:05:00Z"},
    {"type": "reaction", "community": SERVER, "room": ROOM, "message": ANS, "author": C, "emoji": "👍",
     "ts": "2026-03-02T10:05:10Z"},
    member("member_join", C, "2026-03-02T10:06:40Z"),
    message(TROOT, "2026-03-02T10:10:00Z", C, "Why does my container restart every few minutes?"),
    # In a thread, the falling-back in_reply_to is not a reply.
    message("$t2-dave-thread", "2026-03-02T10:15:00Z", D, "Check the health check settings of the service.",
            thread=TROOT, mentions=[C]),
    {"type": "edit", "community": SERVER, "room": ROOM, "id": TROOT,
     "text": "Why does my container restart every few minutes? (docker compose)", "ts": "2026-03-02T10:16:00Z"},
    message("$n1-bot-notice", "2026-03-02T10:16:40Z", "@helperbot:example.org", "Reminder: read the FAQ.",
            is_bot=True),
    {"type": "delete", "community": SERVER, "room": ROOM, "id": "$x1-deleted-by-dave", "ts": "2026-03-02T10:19:10Z"},
    message("$i1-image", "2026-03-02T10:21:40Z", B, ""),
    member("member_join", D, "2026-03-02T10:23:20Z"),
    member("member_leave", B, "2026-03-02T10:25:00Z"),
]


def test_element_export_gives_exactly_these_events(tmp_path: Path) -> None:
    code, lines, _ = run([DATA / "element_room.json"], tmp_path)
    assert code == 0
    assert lines == ROOM_EVENTS


def test_skipped_events_are_counted_by_reason(tmp_path: Path) -> None:
    _, _, err = run([DATA / "element_room.json"], tmp_path)
    assert err.strip().splitlines()[-1] == (
        "lien import: 1 file(s), 19 records read, 15 events written (message 6, member_join 4, reaction 2, "
        "delete 1, edit 1, member_leave 1); 4 records skipped (event type: m.room.create 1, "
        "membership: profile change 1, not decrypted at export 1, redacted 1)")


def test_community_option_overrides_the_room_server(tmp_path: Path) -> None:
    code, lines, _ = run([DATA / "element_room.json"], tmp_path, community="bridge-space")
    assert code == 0
    assert {e["community"] for e in lines} == {"bridge-space"}


def _export(tmp_path: Path, events: list[Any]) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"room_name": "R", "room_creator": "A", "topic": "", "export_date": "01-03-2026",
                                "exported_by": "A", "messages": events}), "utf-8")
    return path


#: Byte offset of the first record in files written by `_export` (just after `"messages": [`).
FIRST = len('{"room_name": "R", "room_creator": "A", "topic": "", "export_date": "01-03-2026", '
            '"exported_by": "A", "messages": [')


def _event(eid: str, **fields: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": A, "origin_server_ts": 1772442000000, "event_id": eid,
            "room_id": "!v12RoomIdWithoutServer", "content": {"msgtype": "m.text", "body": "hi"}, **fields}


def test_room_without_server_name_needs_community_even_with_skip_bad(tmp_path: Path) -> None:
    path = _export(tmp_path, [_event("$1")])
    code, _, err = run([path], tmp_path, skip_bad=True)
    assert code == 2
    assert err.strip() == (f"lien import: {path}: message #1 (byte offset {FIRST}): room_id: room "
                           "!v12RoomIdWithoutServer has no server name (room version 12 or later): pass "
                           "--community NAME")
    code, lines, _ = run([path], tmp_path, community="example.org")
    assert code == 0
    assert lines[0]["community"] == "example.org"


def test_malformed_events_fatal_or_skipped_with_their_positions(tmp_path: Path) -> None:
    name = DATA / "element_malformed.json"
    code, _, err = run([name], tmp_path)
    assert code == 2
    assert err.strip() == (f"lien import: {name}: message #2 (byte offset 492): origin_server_ts: expected "
                           "milliseconds since 1970 (an integer), got string")
    code, lines, err = run([name], tmp_path, skip_bad=True)
    assert code == 0
    assert [e["text"] for e in lines] == ["first good message", "last good message"]
    assert f"lien import: skipped {name}: message #3 (byte offset 831): content.m.relates_to.key: required " \
           "field is missing" in err


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (_event("$1", content={"msgtype": "m.text"}), "content.body: required field is missing"),
        (_event("$1", content={"msgtype": "m.text", "body": "x", "m.relates_to": {"rel_type": "m.replace"}}),
         "content.m.relates_to.event_id: required field is missing"),
        (_event("$1", content={"msgtype": "m.text", "body": "x",
                               "m.relates_to": {"rel_type": "m.replace", "event_id": "$0"}}),
         "content.m.new_content: required field is missing"),
        (_event("$1", content={"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": "@a:b"}}),
         "content.m.mentions.user_ids: expected an array, got string"),
        (_event("$1", type="m.room.redaction", content={}), "redacts: required field is missing (top level or in "
                                                            "content)"),
        (_event("$1", type="m.room.member", content={"membership": "join"}), "state_key: required field is "
                                                                             "missing"),
        (_event("$1", origin_server_ts=10**20), "origin_server_ts: timestamp out of range (years 1970 to 9998 in UTC): "
                                                 "100000000000000000000"),
        (_event("", ), "event_id: expected a non-empty string id, got ''"),
        ([1, 2], "expected a JSON object, got array"),
    ],
    ids=["no-body", "edit-no-target", "edit-no-new-content", "mentions-not-list", "redaction-no-target",
         "member-no-state-key", "ts-out-of-range", "empty-event-id", "not-an-object"],
)
def test_each_malformed_event_names_its_field(tmp_path: Path, event: Any, expected: str) -> None:
    if isinstance(event, dict):
        event = {**event, "room_id": "!r:example.org"}
    path = _export(tmp_path, [event])
    code, _, err = run([path], tmp_path)
    assert code == 2
    assert err.strip() == f"lien import: {path}: message #1 (byte offset {FIRST}): {expected}"


def test_redaction_may_name_its_target_in_content_as_in_room_v11(tmp_path: Path) -> None:
    event = _event("$9", type="m.room.redaction", room_id="!r:example.org", content={"redacts": "$1"})
    code, lines, _ = run([_export(tmp_path, [event])], tmp_path)
    assert code == 0
    assert lines == [{"type": "delete", "community": "example.org", "room": "!r:example.org", "id": "$1",
                      "ts": "2026-03-02T09:00:00Z"}]


def test_declined_invite_is_not_a_leave_and_pills_count_as_mentions(tmp_path: Path) -> None:
    events = [
        _event("$1", type="m.room.member", state_key=B, content={"membership": "leave"},
               unsigned={"prev_content": {"membership": "invite"}}),
        _event("$2", content={"msgtype": "m.text", "body": "Bob: see this", "format": "org.matrix.custom.html",
                              "formatted_body": '<a href="https://matrix.to/#/@bob:example.org">Bob</a>: see this'}),
    ]
    events = [{**e, "room_id": "!r:example.org"} for e in events]
    code, lines, err = run([_export(tmp_path, events)], tmp_path)
    assert code == 0
    assert [(e["type"], e.get("mentions")) for e in lines] == [("message", [B])]
    assert "membership: leave 1" in err


def test_discord_export_given_to_the_matrix_importer_is_refused(tmp_path: Path) -> None:
    code, _, err = run([DATA / "discord_thread.json"], tmp_path, skip_bad=True)
    assert code == 2
    assert "this looks like a DiscordChatExporter export: use `lien import discord`" in err


def test_round_trip_simulate_finds_the_sample_questions(tmp_path: Path) -> None:
    code, _, _ = run([DATA / "element_room.json"], tmp_path)
    assert code == 0
    result = subprocess.run([sys.executable, "-m", "bot", "simulate", str(tmp_path / "events.jsonl")], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True)
    questions = {q["id"]: q for q in map(json.loads, result.stdout.splitlines()) if q.get("type") == "question"}
    assert {qid: q["state"] for qid, q in questions.items()} == {Q: "resolved", TROOT: "answered"}
    assert questions[Q]["credited"] == [B]
    assert questions[TROOT]["answers"] == ["$t2-dave-thread"]
