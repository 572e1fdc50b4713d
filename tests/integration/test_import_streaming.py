"""The streaming reader and the bounded-memory sort behind `lien import`: big files, chunk boundaries, byte offsets.

The huge export is generated into tmp_path; memory is measured with tracemalloc while it is imported.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from adapters.importing import ExportReader, FatalInputError, import_files, run_import, translator_factory
from bot.errors import InputError

DATA = Path(__file__).resolve().parents[1] / "data" / "exports"
REPO = Path(__file__).resolve().parents[2]
HEADER = ('{\n  "guild": {"id": "1180000000000000001", "name": "G"},\n  "channel": {"id": "1180000000000000200", '
          '"type": "GuildTextChat", "categoryId": null, "category": null, "name": "help", "topic": null},\n'
          '  "messages": [\n')


def _dce_message(i: int) -> str:
    """One DiscordChatExporter message, in its indented layout, about 700 bytes; every 3rd a reply."""
    reply = i % 3 == 2
    mentions = f'[{{"id": "{1000 + (i - 1) % 50}", "name": "u", "isBot": false}}]' if reply else "[]"
    reference = f',\n      "reference": {{"messageId": "{10**17 + i - 1}", "channelId": "1180000000000000200"}}' \
        if reply else ""
    return (
        f'    {{\n      "id": "{10**17 + i}",\n      "type": "{"Reply" if reply else "Default"}",\n'
        f'      "timestamp": "2026-01-{1 + i // 86400:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}'
        f'.000+00:00",\n      "timestampEdited": null,\n      "callEndedTimestamp": null,\n'
        f'      "isPinned": false,\n      "content": "message number {i}: how do I configure the bridge? é",\n'
        f'      "author": {{\n        "id": "{1000 + i % 50}",\n        "name": "user{i % 50}",\n'
        f'        "discriminator": "0000",\n        "nickname": "User {i % 50}",\n        "color": null,\n'
        f'        "isBot": false,\n        "roles": [],\n'
        f'        "avatarUrl": "https://cdn.discordapp.com/embed/avatars/{i % 5}.png"\n      }},\n'
        f'      "attachments": [],\n      "embeds": [],\n      "stickers": [],\n'
        f'      "reactions": [{{"emoji": {{"id": "", "name": "👍"}}, "count": 1,'
        f' "users": [{{"id": "{1000 + (i + 7) % 50}"}}]}}],\n'
        f'      "mentions": {mentions}{reference},\n      "inlineEmojis": []\n    }}'
    )


def write_huge_export(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER)
        for start in range(0, n, 10_000):
            f.write(",\n".join(_dce_message(i) for i in range(start, min(start + 10_000, n))))
            f.write(",\n" if start + 10_000 < n else "\n")
        f.write(f'  ],\n  "messageCount": {n}\n}}\n')


def test_huge_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    n = 300_000
    export = tmp_path / "huge.json"
    write_huge_export(export, n)
    size = export.stat().st_size
    out = tmp_path / "events.jsonl"
    # A child process, so that its peak resident memory is the import's alone. VmHWM, not ru_maxrss: the latter
    # keeps the high-water mark of the (large) parent the child was forked from.
    child = (
        "import io, json, sys\n"
        "from pathlib import Path\n"
        "from adapters.importing import run_import\n"
        "err = io.StringIO()\n"
        "code = run_import('discord', [Path(sys.argv[1])], Path(sys.argv[2]), False, False, stderr=err)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps({'code': code, 'err': err.getvalue(), 'peak': int(hwm) * 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(export), str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=280, check=True)
    result = json.loads(done.stdout)
    assert result["code"] == 0, result["err"]
    assert size > 200 * 2**20
    # The interpreter, the sort window (20,000 lines) and the read buffer; not the file (about 42 MiB measured).
    assert result["peak"] < 80 * 2**20, f"peak RSS {result['peak'] / 2**20:.0f} MiB for {size / 2**20:.0f} MiB"
    assert f"{n:,} records read, {2 * n:,} events written (message {n:,}, reaction {n:,})" in result["err"]
    previous = ""
    count = 0
    with out.open(encoding="utf-8") as f:
        for line in f:
            ts = json.loads(line)["ts"]
            assert ts >= previous
            previous = ts
            count += 1
    assert count == 2 * n


def test_traced_memory_does_not_grow_with_the_number_of_records(tmp_path: Path) -> None:
    peaks = []
    for n in (5_000, 20_000):
        export = tmp_path / f"export-{n}.json"
        write_huge_export(export, n)
        tracemalloc.start()
        try:
            summary = import_files(translator_factory("discord"), [export], _Sink(),
                                   skip_bad=False, report=print, window=1000, memory_budget=1000, tmpdir=tmp_path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert summary.written == 2 * n
    small, large = peaks
    # Four times the records (about 13 MiB more input): at most a little more memory, never in proportion.
    assert large < small * 1.25, f"{small / 2**20:.1f} MiB for 5,000 records, {large / 2**20:.1f} MiB for 20,000"


class _Sink(io.RawIOBase):
    """A binary output that keeps nothing (the test measures the importer, not the output)."""

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return len(b)


def _records(path: Path, chunk_size: int, bad: Any = None) -> tuple[list[tuple[int, Any]], dict[str, Any]]:
    reader = ExportReader(path, chunk_size=chunk_size)
    found = list(reader.records(lambda header: None, bad or (lambda error, reason: None)))
    return found, reader.header


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_chunk_boundaries_do_not_change_what_is_read(chunk_size: int) -> None:
    for name in ("discord_channel.json", "element_room.json"):
        path = DATA / name
        expected = json.loads(path.read_text("utf-8"))
        records, header = _records(path, chunk_size)
        assert [r for _, r in records] == expected.pop("messages")
        assert [n for n, _ in records] == list(range(1, len(records) + 1))
        assert header == expected


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 1 << 20])
def test_byte_offsets_count_utf8_bytes_across_chunk_boundaries(tmp_path: Path, chunk_size: int) -> None:
    messages = [{"id": str(i), "content": "é🙂" * i} for i in range(1, 6)]
    text = json.dumps({"guild": {"id": "1"}, "messages": messages}, ensure_ascii=False)
    text = text.replace('{"id": "4"', '{"id": "4" "oops": 1')  # message #4 is not valid JSON
    path = tmp_path / "export.json"
    data = b"\xef\xbb\xbf" + text.encode("utf-8")  # with a byte order mark, as some tools write
    path.write_bytes(data)
    errors: list[InputError] = []
    records, _ = _records(path, chunk_size, lambda error, reason: errors.append(error))
    assert [r["id"] for _, r in records] == ["1", "2", "3", "5"]
    (error,) = errors
    start = data.index(b'{"id": "4"')
    problem = data.index(b'"oops"')
    assert error.where == f"{path}: message #4 (byte offset {start})"
    assert error.problem == f"invalid JSON: Expecting ',' delimiter at byte offset {problem}"


def test_invalid_utf8_in_a_written_field_skips_that_record_only(tmp_path: Path) -> None:
    good = '{"id": "%s", "type": "Default", "timestamp": "2026-03-02T10:00:0%s+00:00", "content": "%s", ' \
           '"author": {"id": "9", "avatarUrl": "%s"}}'
    body = ",".join([good % (1, 1, "ok", "x"), good % (2, 2, "bad \udcff", "x"), good % (3, 3, "ok", "\udcfe")])
    raw = ('{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [' + body + "]}").encode(
        "utf-8", "surrogateescape")
    path = tmp_path / "export.json"
    path.write_bytes(raw)
    out = tmp_path / "events.jsonl"
    err = io.StringIO()
    assert run_import("discord", [path], out, False, False, stderr=err) == 2
    offset = raw.index(b'{"id": "2"')
    assert f"message #2 (byte offset {offset}): text is not valid Unicode" in err.getvalue()
    err = io.StringIO()
    assert run_import("discord", [path], out, True, False, stderr=err) == 0
    # Message 3's bad byte is in a field lien does not keep: the message is imported.
    assert [json.loads(line)["id"] for line in out.read_text("utf-8").splitlines()] == ["1", "3"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "(byte offset 0): empty file: not a chat export"),
        (b"[]", "(byte offset 0): not a JSON object (expected '{'): not a chat export"),
        (b'{"guild": {"id": "1"}}', "(byte offset 21): no 'messages' array: not a chat export"),
        (b'{"messages": {}}', "(byte offset 13): messages: expected an array"),
        (b'{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": []} x',
         "(byte offset 63): unexpected data after the top-level object"),
        (b'{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [[] {"a": 2}]}',
         "(byte offset 63): expected ',' or ']' after message #1, found '{'"),
        (b'{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [], "messages": []}',
         "(byte offset 75): a second 'messages' member"),
        (b'{"guild": {"id": "1", "channel": {"id": "5"}, "messages": []}',
         "(byte offset 61): unexpected end of file (truncated export?)"),
        (b'{"guild": {"id": "1"} "channel": {"id": "5"}, "messages": []}',
         "(byte offset 22): expected ',' or '}' in the top-level object, found '\"'"),
    ],
    ids=["empty", "array", "no-messages", "messages-not-array", "trailing-data", "missing-comma",
         "two-arrays", "truncated-header", "header-missing-comma"],
)
def test_damage_outside_the_records_is_fatal_even_with_skip_bad(tmp_path: Path, content: bytes,
                                                                 expected: str) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(content)
    err = io.StringIO()
    assert run_import("discord", [path], tmp_path / "o.jsonl", True, False, stderr=err) == 2
    assert err.getvalue().strip().splitlines()[-1] == f"lien import: {path} {expected}"


def test_members_after_the_array_are_read_as_with_sorted_keys(tmp_path: Path) -> None:
    # `jq -S` puts Element's header after `messages`; the records need none of it.
    element = json.loads((DATA / "element_room.json").read_text("utf-8"))
    path = tmp_path / "sorted.json"
    path.write_text(json.dumps(element, sort_keys=True), "utf-8")
    records, header = _records(path, 1 << 20)
    assert len(records) == len(element["messages"])
    assert header["room_name"] == "Bridge help"


def test_a_record_nested_too_deeply_is_a_bad_record(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "export.json"
    path.write_text('{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [' + deep + ', {"id": "2", '
                    '"type": "Default", "timestamp": "2026-03-02T10:00:00Z", "content": "", "author": {"id": "9"}}]}',
                    "utf-8")
    out = io.BytesIO()
    errors: list[str] = []
    summary = import_files(translator_factory("discord"), [path], out, skip_bad=True, report=errors.append)
    assert errors == [f"skipped {path}: message #1 (byte offset 60): invalid JSON: nested too deeply"]
    assert summary.written == 1


def test_a_record_whose_end_cannot_be_found_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    # The syntax error is far from the end of the file, so this is not a truncation; the brackets never close.
    path.write_text('{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [{"a": 1 "b": [2, 3, 4, 5, 6, 7, '
                    '8, 9, 10, 11, 12}', "utf-8")
    with pytest.raises(FatalInputError, match=r"message #1 \(byte offset 60\): invalid JSON: .*cannot be found"):
        import_files(translator_factory("discord"), [path], io.BytesIO(), skip_bad=True, report=print)


def test_empty_export_writes_nothing_and_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text('{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [ ], "messageCount": 0}', "utf-8")
    err = io.StringIO()
    assert run_import("discord", [path], tmp_path / "o.jsonl", False, False, stderr=err) == 0
    assert (tmp_path / "o.jsonl").read_bytes() == b""
    assert "0 records read, 0 events written; 0 records skipped" in err.getvalue()


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    err = io.StringIO()
    missing = tmp_path / "missing.json"
    assert run_import("discord", [missing], None, False, False, stderr=err, stdout=io.BytesIO()) == 2
    assert err.getvalue().startswith(f"lien import: {missing}: cannot read: No such file or directory")


def _skewed_element_export(path: Path, stamps: list[int]) -> None:
    events = [{"type": "m.room.message", "sender": "@a:s", "origin_server_ts": ms, "event_id": f"${i}",
               "room_id": "!r:s", "content": {"msgtype": "m.text", "body": str(i)}} for i, ms in enumerate(stamps)]
    path.write_text(json.dumps({"room_name": "R", "messages": events}), "utf-8")


def test_small_disorder_is_sorted_in_memory_without_temporary_files(tmp_path: Path) -> None:
    # Federation lets a remote server's clock run behind: its events arrive after later-stamped ones.
    export = tmp_path / "skewed.json"
    _skewed_element_export(export, [1000, 3000, 2000, 2500, 4000, 3500, 5000])
    spill = tmp_path / "spill"
    spill.mkdir()
    out = io.BytesIO()
    import_files(translator_factory("matrix"), [export], out, skip_bad=False, report=print, window=3,
                 tmpdir=spill)
    assert [json.loads(line)["text"] for line in out.getvalue().splitlines()] == ["0", "2", "3", "1", "5", "4", "6"]
    assert list(spill.iterdir()) == []


@pytest.mark.parametrize("fan_in", [128, 2], ids=["one-pass", "multi-pass"])
def test_many_runs_from_many_files_merge_in_order_with_bounded_open_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fan_in: int
) -> None:
    monkeypatch.setattr("adapters.importing.MAX_FAN_IN", fan_in)
    files = []
    for f in range(3):
        export = tmp_path / f"room{f}.json"
        # Reverse order: with a window of 2 lines, each file spills several runs.
        _skewed_element_export(export, [10_000 - 7 * i - f for i in range(12)])
        files.append(export)
    spill = tmp_path / "spill"
    spill.mkdir()
    out = io.BytesIO()
    summary = import_files(translator_factory("matrix"), files, out, skip_bad=False, report=print, window=2,
                           memory_budget=0, tmpdir=spill)
    stamps = [json.loads(line)["ts"] for line in out.getvalue().splitlines()]
    assert summary.written == 36
    assert stamps == sorted(stamps)
    assert list(spill.iterdir()) == []  # temporary runs are removed


def test_out_file_in_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    err = io.StringIO()
    target = tmp_path / "missing" / "events.jsonl"
    assert run_import("discord", [DATA / "discord_thread.json"], target, False, False, stderr=err) == 2
    assert err.getvalue().startswith(f"lien import: {target}: cannot write here: No such file or directory")


# -- the fast path (orjson over byte batches) reads exactly what the careful one reads ---------------------------


def _read_both_ways(path: Path, bad: Any = None) -> tuple[list[tuple[int, Any]], list[int]]:
    """The records as the reader yields them, and the sizes of the batches it yielded them in."""
    reader = ExportReader(path)
    found, sizes = [], []
    for first, batch in reader.batches(lambda header: None, bad or (lambda error, reason: None)):
        sizes.append(len(batch))
        found.extend(enumerate(batch, first))
    return found, sizes


@pytest.mark.parametrize(("layout", "tricky"), [("indented", True), ("one-per-line", True), ("compact", False),
                                               ("compact", True)])
def test_the_fast_path_reads_what_json_reads_whatever_the_layout(tmp_path: Path, layout: str, tricky: bool) -> None:
    # Brackets, braces, commas and the record separator itself inside strings must not end a record.
    texts = ['{"a": [1, {"b": "}"}]}, ]', "}\n    },\n    {", "]]]] }}}}", "[[[[ {{{{", "\\", '"', "é🙂\u2028\x00"] \
        if tricky else ["plain text", "é🙂"]
    messages = [{"id": str(i), "type": "Default", "timestamp": f"2026-03-02T10:{i // 60 % 60:02d}:{i % 60:02d}+01:00",
                 "content": texts[i % len(texts)] * (i % 3), "author": {"id": str(i % 7), "roles": [{"id": "1"}]},
                 "reactions": [{"emoji": {"id": "", "name": "👍"}, "count": 1, "users": [{"id": "3"}]}] * (i % 2),
                 "n": [2**64 - 1, -(2**63), 1.5, 1e-7, 0] if i % 50 == 7 else None}
                for i in range(3000)]
    doc = {"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": messages, "messageCount": 3000}
    if layout == "indented":
        text = json.dumps(doc, indent=2, ensure_ascii=False)
    elif layout == "compact":
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    else:
        text = '{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [\n' + ",\n".join(
            json.dumps(m, ensure_ascii=False) for m in messages) + "\n]}"
    path = tmp_path / "export.json"
    path.write_text(text, "utf-8")
    found, sizes = _read_both_ways(path)
    assert repr([r for _, r in found]) == repr(messages)  # ints stay ints, floats floats
    assert [n for n, _ in found] == list(range(1, 3001))
    fast = sum(size for size in sizes if size > 1)
    if tricky and layout == "compact":
        return  # cut candidates inside strings: read carefully, at the old speed, but read right
    assert fast > 2900, f"{fast} of 3000 records read by the fast path"


def test_bad_records_among_many_are_reported_at_the_same_places_by_both_paths(tmp_path: Path) -> None:
    good = '{"id": "%d", "type": "Default", "timestamp": "2026-03-02T10:00:00.%03d+00:00", "content": "ok %d", ' \
           '"author": {"id": "9", "name": "n"}}'
    bad_json = {40: '{"id": "40" "x": 1}', 400: "NaN", 700: '{"id": "700", "a": Infinity}', 900: '{"a": "\\ud800"}'}
    bad_fields = {100: '{"id": "100", "type": "Default"}', 500: '{"id": "500", "type": 3}', 800: "12",
                  1200: '{"id": "1200", "type": "Default", "timestamp": "2026-03-02T10:00:00.000+00:00", '
                        '"content": "x", "author": {"id": 5}}'}
    records = [bad_json.get(i) or bad_fields.get(i) or good % (i, i % 1000, i) for i in range(1500)]
    head = '{"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": [\n  '
    raw = (head + ",\n  ".join(records) + "\n]}").encode("utf-8")
    raw = raw.replace(b"ok 1300", b"ok \xff1300")  # invalid UTF-8 in a written field
    path = tmp_path / "export.json"
    path.write_bytes(raw)
    errors: list[str] = []
    summary = import_files(translator_factory("discord"), [path], io.BytesIO(), skip_bad=True,
                           report=errors.append)
    starts = [raw.index(b'"ok \xff1300' if i == 1300 else (records[i].encode() if i not in (800,) else b"12,"))
              for i in (40, 100, 400, 500, 700, 800, 900, 1200)]
    offsets = [int(e.split("byte offset ")[1].split(")")[0]) for e in errors]
    numbers = [int(e.split("message #")[1].split(" ")[0]) for e in errors]
    assert numbers == [41, 101, 401, 501, 701, 801, 901, 1201, 1301]
    assert offsets[:8] == starts
    assert offsets[8] == raw.rindex(b"\n  ", 0, raw.index(b"ok \xff1300")) + 3
    assert "invalid JSON: Expecting ',' delimiter at byte offset" in errors[0]
    assert errors[1].endswith("timestamp: required field is missing")
    assert errors[7].endswith("author.id: expected a string id, got number")
    assert errors[8].endswith("text is not valid Unicode (invalid UTF-8 or an unpaired surrogate)")
    # NaN and Infinity are JSON only to `json`, whose reading counts: NaN is a number, not an object.
    assert errors[2].endswith("expected a JSON object, got number")
    assert summary.written == 1500 - 9
    assert summary.read == 1500


def test_an_integer_beyond_64_bits_is_read_as_json_reads_it(tmp_path: Path) -> None:
    # orjson would read these as floats: the importer must not refuse them, nor count them otherwise.
    messages = [{"id": str(i), "type": "Default", "timestamp": f"2026-03-02T10:00:{i:02d}.000+00:00", "content": "",
                 "author": {"id": "9"},
                 "reactions": [{"emoji": {"name": "x"}, "count": 10**30 if i == 20 else 1, "users": [{"id": "3"}]}]}
                for i in range(40)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"guild": {"id": "1"}, "channel": {"id": "5"}, "messages": messages}, indent=2))
    summary = import_files(translator_factory("discord"), [path], io.BytesIO(), skip_bad=False, report=print)
    assert summary.written == 80
    assert summary.notes["reactions_without_users"] == 10**30 - 1


def test_records_longer_than_a_batch_or_the_buffer_are_read_between_fast_batches(tmp_path: Path) -> None:
    messages = [{"id": str(i), "content": ("x" * (3 << 20) if i == 700 else "y" * (200_000 if i % 500 == 9 else 10))}
                for i in range(2000)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"guild": {"id": "1"}, "messages": messages}, indent=2), "utf-8")
    found, sizes = _read_both_ways(path)
    assert [r for _, r in found] == messages
    assert sum(size for size in sizes if size > 1) > 1900


def test_an_unusual_first_record_does_not_keep_the_rest_from_the_fast_path(tmp_path: Path) -> None:
    # The cut is learnt from the first record; `{}` ends unlike the indented records after it.
    messages = [{}, *({"id": str(i), "author": {"id": "9"}, "content": "c"} for i in range(20_000))]
    path = tmp_path / "export.json"
    body = "[\n    {},\n" + json.dumps(messages[1:], indent=2)[2:]
    path.write_text('{"guild": {"id": "1"}, "messages": ' + body + "}", "utf-8")
    found, sizes = _read_both_ways(path)
    assert [r for _, r in found] == messages
    # Nearly all: the refused stretch costs one record (the careful path keeps the last 64 KiB once there).
    assert sum(size for size in sizes if size > 1) > 19_000
