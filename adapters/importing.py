"""Shared plumbing of `lien import`: streaming JSON export reader, bounded-memory time sort, k-way merge, summary.

An export is one JSON object whose `messages` array may hold millions of records. `ExportReader` decodes it
incrementally (`json.JSONDecoder.raw_decode` over a sliding text buffer), keeps the other top-level members as a
small header, and yields one record at a time with its 1-based number; the byte offset of the current record is
computed only when a problem needs it. Each importer (`adapters.import_discord`, `adapters.import_matrix`) turns
records into core events; events become spec lines exactly as `adapters.jsonl.event_to_dict` + `dumps_line` write
them (`event_line` builds the two commonest types faster, byte for byte the same: a test pins it).

Ordering: output is sorted by `ts`; equal stamps keep file order, then input order. Each file goes through a
replacement-selection sort holding about `window` lines: in-order input costs one comparison per line, disorder
within the window is absorbed, worse disorder (a reverse-order export) makes more sorted runs. A file larger than
the window goes through a temporary run file; all files' runs are merged with a k-way merge, so memory stays
bounded whatever the input size. Small imports never touch the disk. A message id (or an identical
event) seen again at the same time, as overlapping exports of one channel produce, is written once: the first
file given wins.

Problems: a malformed record is reported as `file: message #N (byte offset B): field: problem` and is fatal
(exit 2), or with `skip_bad` is reported, counted and skipped. Records that carry nothing for lien (system
messages, state events...) are skipped and counted by reason: nothing is lost silently.
"""

from __future__ import annotations

import codecs
import contextlib
import heapq
import json
import json.encoder
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

from adapters.jsonl import dumps_line, event_to_dict, format_ts
from bot.errors import InputError
from bot.events import TYPE_NAMES, Event, Message, Reaction

__all__ = [
    "ExportReader",
    "FatalInputError",
    "ImportSummary",
    "Translator",
    "describe",
    "event_line",
    "import_files",
    "need_id",
    "need_obj",
    "opt_bool",
    "opt_list",
    "opt_obj",
    "opt_str",
    "reason_name",
    "run_import",
    "translator_factory",
]

#: Records whose undecoded text exceeds this are refused (a guard against a file that is not an export).
MAX_RECORD_CHARS: Final = 64 << 20
#: Lines each file's sort holds back (up to twice this while in order); disorder within it needs no extra run.
DEFAULT_WINDOW: Final = 20_000
#: Sorted lines of finished files kept in memory, all files together, before they go to temporary files.
MEMORY_BUDGET: Final = 100_000
#: Most run files merged at once (open file handles); more are merged in several passes.
MAX_FAN_IN: Final = 128
#: Distinct skip reasons counted by name; the rest are counted together.
_MAX_REASONS: Final = 40

_CHUNK: Final = 1 << 20
#: The reader refills before a record when fewer characters than this remain, so records rarely straddle chunks.
_LOOKAHEAD: Final = 1 << 16
_WS = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")
_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Sort prefix of a line: 18-digit microseconds since 0001-01-01 UTC, 5-digit file index, 12-digit sequence.
_EPOCH: Final = datetime(1, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_KEY_LEN: Final = 18
_PREFIX_LEN: Final = 18 + 5 + 12
_MAX_FILES: Final = 99_999
_MESSAGE_LINE = b'{"type":"message"'
_TS_FIELD = b',"ts":'


class FatalInputError(InputError):
    """Bad input that `--skip-bad` cannot skip: the file as a whole is unusable (not an export, no header...)."""


class Translator(Protocol):
    """Turns the records of one export file into core events."""

    def begin(self, header: Mapping[str, Any]) -> None:
        """Check the top-level members read before the records; raise FatalInputError when they are unusable."""
        ...

    def translate(self, record: Any) -> list[Event] | str:
        """The events one record means, or the reason it carries none; InputError (without `where`) if malformed."""
        ...


def _utf8_len(text: str) -> int:
    # surrogateescape: bytes that were not UTF-8 count as the single bytes they were.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def describe(value: Any) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


#: Called with a bad record's error and the skip reason to count (None: report only); raises unless skipping.
_Bad = Callable[[InputError, str | None], None]


_BAD: Final = object()


class _Truncated(Exception):
    """The file ended inside a value."""


class ExportReader:
    """Streams the records of one JSON export: the elements of the top-level array `array_key`, in bounded memory.

    Iterate `records(begin, bad)` for `(number, record)` pairs; `begin(header)` is called when the array starts,
    with the members read so far; `header` holds all other members once iteration is over. A record that is not
    valid JSON goes to `bad(error, reason)` (which raises, or returns to skip it); damage outside the records
    raises FatalInputError. `offset()` is the byte offset of the current record.
    """

    def __init__(self, path: Path, array_key: str = "messages", *, chunk_size: int = _CHUNK,
                 max_record: int = MAX_RECORD_CHARS) -> None:
        self.path = path
        self.name = str(path)
        self.array_key = array_key
        self.header: dict[str, Any] = {}
        self.count = 0
        self._chunk = chunk_size
        self._max = max_record
        decoder = json.JSONDecoder()
        self._raw = decoder.raw_decode
        self._scan = decoder.scan_once
        self._file: IO[bytes] | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._buf = ""
        self._base = 0  # byte offset of _buf[0] in the file
        self._eof = False
        self._start = 0  # position of the current record in _buf
        #: Bytes read from the file so far (for progress).
        self.bytes_read = 0

    # -- buffer ---------------------------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Append the next chunk to the buffer; False when the file is exhausted."""
        if self._eof:
            return False
        assert self._file is not None
        chunk = self._file.read(self._chunk)
        self.bytes_read += len(chunk)
        text = self._decoder.decode(chunk, final=not chunk)
        if not chunk:
            self._eof = True
        if text:
            self._buf += text
            return True
        return not self._eof

    def _compact(self, pos: int) -> int:
        """Drop what lies before `pos`; returns `pos` in the new buffer (0)."""
        rest = self._buf[pos:]
        # Bytes decoded so far, minus what is kept: cheaper than measuring the dropped text.
        pending = len(self._decoder.getstate()[0])
        self._base = self.bytes_read - pending - _utf8_len(rest)
        self._buf = rest
        return 0

    def _byte_offset(self, pos: int) -> int:
        return self._base + _utf8_len(self._buf[:pos])

    def offset(self) -> int:
        """Byte offset, in the file, of the record last yielded or being read."""
        return self._byte_offset(self._start)

    def _skip_ws(self, pos: int) -> int:
        while True:
            end = _WS.match(self._buf, pos).end()  # type: ignore[union-attr]
            if end < len(self._buf) or not self._fill():
                return end

    def _peek(self, pos: int) -> str:
        return self._buf[pos] if pos < len(self._buf) else ""

    def _value(self, pos: int) -> tuple[Any, int]:
        """Decode the JSON value at `pos`, reading more of the file while it is incomplete."""
        while True:
            buf = self._buf
            try:
                value, end = self._raw(buf, pos)
            except json.JSONDecodeError as e:
                near_end = e.pos >= len(buf) - 16 or e.msg.startswith("Unterminated string")
                if not near_end:
                    raise
                if self._eof:
                    raise _Truncated from None
                self._grow(pos)
                continue
            if end >= len(buf) and not self._eof:
                # A number or literal may continue in the next chunk.
                self._grow(pos)
                continue
            return value, end

    def _grow(self, pos: int) -> None:
        if len(self._buf) - pos > self._max:
            raise FatalInputError(f"a single value is larger than {self._max >> 20} MiB: not an export?",
                                  where=f"{self.name} (byte offset {self._byte_offset(pos)})")
        self._fill()

    def _skip_value(self, pos: int) -> int | None:
        """Position of the `,` or `]` ending the (malformed) array element at `pos`, or None if none is found."""
        depth, i = 0, pos
        while True:
            if i - pos > self._max:
                return None
            m = _STRUCTURE.search(self._buf, i)
            if m is None:
                i = len(self._buf)
                if not self._fill():
                    return None
                continue
            c, i = m.group(), m.end()
            if c == '"':
                while (s := _STRING_REST.match(self._buf, i)) is None:
                    if not self._fill():
                        return None
                i = s.end()
            elif c in "[{":
                depth += 1
            elif c in "]}":
                if depth == 0 and c == "]":
                    return m.start()
                depth = max(depth - 1, 0)
            elif depth == 0:
                return m.start()

    # -- structure ------------------------------------------------------------------------------------------------

    def _fatal(self, problem: str, pos: int) -> FatalInputError:
        return FatalInputError(problem, where=f"{self.name} (byte offset {self._byte_offset(pos)})")

    def records(self, begin: Callable[[dict[str, Any]], None], bad: _Bad) -> Iterator[tuple[int, Any]]:
        """Yield `(number, record)` for each element of the array, in file order (see the class docstring)."""
        try:
            self._file = self.path.open("rb")
        except OSError as e:
            raise FatalInputError(f"cannot read: {e.strerror or e}", where=self.name) from None
        try:
            pos = self._until_array()
            begin(self.header)
            pos = self._skip_ws(pos)
            if self._peek(pos) == "]":
                self._after_array(pos + 1)
                return
            # The hot loop (one generator frame: this one).
            scan, separator = self._scan, _SEPARATOR.match
            n = 0
            while True:
                if len(self._buf) - pos < _LOOKAHEAD and not self._eof:
                    pos = self._compact(pos)
                    self._fill()
                n += 1
                self.count = n
                self._start = pos
                buf = self._buf
                # Fast path: a whole value followed by a separator, all inside the buffer.
                try:
                    record, end = scan(buf, pos)
                except (StopIteration, json.JSONDecodeError, RecursionError):
                    end = -1
                if end < 0 or (end >= len(buf) - 1 and not self._eof):
                    try:
                        record, end = self._value(pos)
                    except _Truncated:
                        bad(InputError("unexpected end of file inside this message (truncated export?)",
                                       where=self.where(n)), "truncated record")
                        return
                    except (json.JSONDecodeError, RecursionError) as e:
                        end = self._bad_record(n, pos, e, bad)
                        record = _BAD
                    buf = self._buf
                if record is not _BAD:
                    yield n, record
                m = separator(buf, end)
                if m is not None and m.end() < len(buf):
                    pos = m.end()
                    if m.group(1) == ",":
                        continue
                    break
                pos = self._skip_ws(end)
                c = self._peek(pos)
                if c == ",":
                    pos = self._skip_ws(pos + 1)
                    continue
                if c == "]":
                    pos += 1
                    break
                if not c:
                    self._start = pos
                    # Every message so far was read: only the end of the file is missing, nothing is skipped.
                    bad(InputError("unexpected end of file after this message (truncated export?)",
                                   where=self.where(n)), None)
                    return
                raise self._fatal(f"expected ',' or ']' after message #{n}, found {c!r}", pos)
            self._after_array(pos)
        finally:
            self._file.close()

    def _until_array(self) -> int:
        """Read the members before the array into `header`; the position just after its `[`."""
        pos = self._skip_ws(0)
        if self._buf.startswith("\ufeff"):
            pos = self._skip_ws(1)
        if self._peek(pos) != "{":
            problem = "empty file" if pos >= len(self._buf) else "not a JSON object (expected '{')"
            raise self._fatal(f"{problem}: not a chat export", pos)
        pos = self._skip_ws(pos + 1)
        if self._peek(pos) == "}":
            raise self._fatal(f"no '{self.array_key}' array: not a chat export", pos)
        while True:
            key, pos = self._member_name(pos)
            if key == self.array_key:
                if self._peek(pos) != "[":
                    raise self._fatal(f"{key}: expected an array", pos)
                return pos + 1
            self.header[key], pos = self._header_value(pos)
            following = self._next_member(pos)
            if following is None:
                raise self._fatal(f"no '{self.array_key}' array: not a chat export", pos)
            pos = following

    def _after_array(self, pos: int) -> None:
        """Read the members after the array (e.g. `messageCount`) and check that the document ends."""
        following = self._next_member(pos)
        while following is not None:
            key, pos = self._member_name(following)
            if key == self.array_key:
                raise self._fatal(f"a second '{key}' member", pos)
            self.header[key], pos = self._header_value(pos)
            following = self._next_member(pos)

    def _member_name(self, pos: int) -> tuple[str, int]:
        """Read `"name":` at `pos`; the name and the position of the value."""
        if self._peek(pos) != '"':
            raise self._fatal("expected a member name in the top-level object", pos)
        key, pos = self._header_value(pos)
        pos = self._skip_ws(pos)
        if self._peek(pos) != ":":
            raise self._fatal("expected ':' after a member name", pos)
        return key, self._skip_ws(pos + 1)

    def _next_member(self, pos: int) -> int | None:
        """After a member's value: the position of the next member, or None when the object (and file) ends."""
        pos = self._skip_ws(pos)
        c = self._peek(pos)
        if c == ",":
            return self._skip_ws(pos + 1)
        if c == "}":
            pos = self._skip_ws(pos + 1)
            if pos < len(self._buf):
                raise self._fatal("unexpected data after the top-level object", pos)
            return None
        if not c:
            raise self._fatal("unexpected end of file (truncated export?)", pos)
        raise self._fatal(f"expected ',' or '}}' in the top-level object, found {c!r}", pos)

    def _header_value(self, pos: int) -> tuple[Any, int]:
        try:
            return self._value(pos)
        except _Truncated:
            raise self._fatal("unexpected end of file (truncated export?)", pos) from None
        except json.JSONDecodeError as e:
            raise self._fatal(f"invalid JSON: {e.msg}", e.pos) from None
        except RecursionError:
            raise self._fatal("invalid JSON: nested too deeply", pos) from None

    def _bad_record(self, n: int, pos: int, e: Exception, bad: _Bad) -> int:
        """Report a record that is not valid JSON; the position of the separator after it."""
        if isinstance(e, json.JSONDecodeError):
            problem = f"invalid JSON: {e.msg} at byte offset {self._byte_offset(e.pos)}"
        else:
            problem = "invalid JSON: nested too deeply"
        error = InputError(problem, where=self.where(n))
        skipped_to = self._skip_value(pos)
        if skipped_to is None:
            raise FatalInputError(f"{problem}; the end of this message cannot be found", where=self.where(n))
        bad(error, "bad record")
        return skipped_to

    def where(self, n: int) -> str:
        """`file: message #N (byte offset B)` for the current record."""
        return f"{self.name}: message #{n} (byte offset {self.offset()})"


# -- sorting ------------------------------------------------------------------------------------------------------


def _sort_key(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


class _RunWriter:
    """Sorted runs of prefixed lines in temporary files (in a directory made on first use, under `parent`)."""

    def __init__(self, parent: Path | None) -> None:
        self.parent = parent
        self.dir: Path | None = None
        self.count = 0

    def new(self) -> tuple[Path, IO[bytes]]:
        """A new, empty run file open for writing."""
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="lien-import-", dir=self.parent))
        self.count += 1
        path = self.dir / f"run-{self.count:06d}"
        return path, path.open("wb", buffering=1 << 16)

    def cleanup(self) -> None:
        """Remove the run files."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class _FileSorter:
    """Sorts one file's lines in bounded memory, spilling sorted runs to disk only when it must.

    While lines arrive in order they wait in a queue of `window` to `2 * window` lines (one comparison each, out in
    batches). The first line out of order turns the queue into a heap of replacement selection: a line smaller than
    the one going out waits for the next run, so disorder within the window still yields a single run.
    """

    def __init__(self, runs: _RunWriter, file_index: int, window: int) -> None:
        self._runs = runs
        self._fi = file_index
        self._window = window
        self._queue: list[bytes] = []
        self._heap: list[tuple[int, bytes]] | None = None
        self._seq = 0
        self._spilled: list[Path] = []
        self._out: IO[bytes] | None = None
        self._out_run = -1

    def add(self, key: int, line: bytes) -> None:
        """Add one output line whose time is `key` (microseconds)."""
        self._seq += 1
        item = b"%018d%05d%012d" % (key, self._fi, self._seq) + line
        heap = self._heap
        if heap is None:
            queue = self._queue
            if not queue or item > queue[-1]:
                queue.append(item)
                if len(queue) >= 2 * self._window:
                    # Out in batches: the oldest half goes to the current run in one call.
                    self._emit_many(queue[: self._window])
                    del queue[: self._window]
                return
            # The queue is sorted, hence already a valid heap; all of it belongs to the current run.
            run = max(self._out_run, 0)
            heap = self._heap = [(run, queued) for queued in queue]
            queue.clear()
        if len(heap) < self._window:  # nothing has gone out yet: every line is in run 0
            heapq.heappush(heap, (0, item))
            return
        run, top = heap[0]
        # A line smaller than the one going out now cannot join the current run: it waits for the next one.
        heapq.heapreplace(heap, (run if item > top else run + 1, item))
        self._emit(run, top)

    def _emit_many(self, items: list[bytes]) -> None:
        self._emit(0, items[0])
        self._out.writelines(items[1:])  # type: ignore[union-attr]

    def _emit(self, run: int, item: bytes) -> None:
        if run != self._out_run:
            if self._out is not None:
                self._out.close()
            path, self._out = self._runs.new()
            self._spilled.append(path)
            self._out_run = run
        self._out.write(item)  # type: ignore[union-attr]

    def finish(self, budget: int) -> tuple[list[Path], list[bytes] | None]:
        """The file's sorted runs on disk, and its lines in memory when they never spilled and fit `budget`."""
        heap, queue = self._heap, self._queue
        if not self._spilled:
            held = len(heap) if heap is not None else len(queue)
            if held <= budget:
                lines = [item for _, item in sorted(heap)] if heap is not None else queue
                self._heap, self._queue = None, []
                return [], lines
        if heap is None:
            if queue:
                self._emit_many(queue)
            self._queue = []
        else:
            while heap:
                run, item = heapq.heappop(heap)
                self._emit(run, item)
        if self._out is not None:
            self._out.close()
        return self._spilled, None


def _read_run(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=1 << 16) as f:
        yield from f


def _merge_runs(runs: list[Path], writer: _RunWriter) -> list[Path]:
    """Merge runs in groups until at most MAX_FAN_IN remain (bounded open files)."""
    while len(runs) > MAX_FAN_IN:
        group, runs = runs[:MAX_FAN_IN], runs[MAX_FAN_IN:]
        path, out = writer.new()
        with out:
            out.writelines(heapq.merge(*(_read_run(p) for p in group)))
        for p in group:
            p.unlink()
        runs.append(path)
    return runs


# -- summary and progress -----------------------------------------------------------------------------------------


class ImportSummary:
    """What an import read, wrote and skipped; `line()` is the summary printed on stderr."""

    def __init__(self) -> None:
        self.files = 0
        self.read = 0
        self.written = 0
        self.events: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        #: Counts of things inside records that were not turned into events (e.g. reactions_without_users).
        self.notes: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.warnings: list[str] = []

    def skip(self, reason: str) -> None:
        """Count one record skipped for `reason`."""
        if reason not in self.skipped and len(self.skipped) >= _MAX_REASONS:
            reason = "other reasons"
        self.skipped[reason] += 1

    def line(self) -> str:
        """One human-readable summary line."""
        def counts(c: Mapping[str, int]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

        parts = [f"{self.files} file(s), {self.read:,} records read, {self.written:,} events written"]
        if self.written:
            parts[0] += f" ({counts(self.events)})"
        skipped = sum(self.skipped.values())
        parts.append(f"{skipped:,} records skipped" + (f" ({counts(self.skipped)})" if skipped else ""))
        dups = sum(self.duplicates.values())
        if dups:
            parts.append(f"{dups:,} duplicate events dropped ({counts(self.duplicates)})")
        parts.extend(f"{k} {v:,}" for k, v in sorted(self.notes.items()))
        return "; ".join(parts)


class _Progress:
    """A one-line progress bar on stderr, redrawn at most a few times a second; silent when disabled."""

    def __init__(self, stream: IO[str], enabled: bool, total_bytes: int) -> None:
        self.stream = stream
        self.enabled = enabled
        self.total = max(total_bytes, 1)
        self.start = time.monotonic()
        self.last = self.start - self.INTERVAL  # the first update draws at once
        self.shown = False

    INTERVAL: Final = 0.2

    def update(self, done_bytes: int, records: int, phase: str = "reading") -> None:
        """Redraw the bar if it is enabled and was not drawn in the last INTERVAL seconds."""
        now = time.monotonic()
        if not self.enabled or now - self.last < self.INTERVAL:
            return
        self.last = now
        frac = min(done_bytes / self.total, 1.0)
        bar = "#" * int(frac * 30)
        rate = records / max(now - self.start, 1e-9)
        self.stream.write(f"\r{phase} [{bar:<30}] {frac:4.0%} {records:,} records ({rate:,.0f}/s) ")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the bar (before a message is printed, and at the end)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


# -- the import ---------------------------------------------------------------------------------------------------


TranslatorFactory = Callable[[str, Counter[str]], Translator]


def translator_factory(kind: str, community: str | None = None) -> TranslatorFactory:
    """Per-file translators for an export `kind` (`discord` or `matrix`)."""
    if kind == "discord":
        from adapters import import_discord

        return lambda name, notes: import_discord.DiscordTranslator(name, notes)
    if kind == "matrix":
        from adapters import import_matrix

        return lambda name, notes: import_matrix.MatrixTranslator(name, notes, community=community)
    raise FatalInputError(f"unknown export kind {kind!r} (expected discord or matrix)")


def import_files(
    factory: TranslatorFactory,
    files: Iterable[Path],
    out: IO[bytes],
    *,
    skip_bad: bool,
    report: Callable[[str], None],
    summary: ImportSummary | None = None,
    progress: _Progress | None = None,
    window: int = DEFAULT_WINDOW,
    memory_budget: int = MEMORY_BUDGET,
    tmpdir: Path | None = None,
) -> ImportSummary:
    """Import `files` with translators from `factory`, writing spec event lines to `out` in `ts` order.

    `report` receives one message per skipped bad record. Raises InputError (FatalInputError for whole-file
    problems) on the first bad record unless `skip_bad`.
    """
    summary = summary if summary is not None else ImportSummary()
    files = list(files)
    if len(files) > _MAX_FILES:
        raise FatalInputError(f"too many files ({len(files)}); at most {_MAX_FILES}")

    def bad(error: InputError, reason: str | None) -> None:
        if not skip_bad:
            raise error
        if reason is not None:
            summary.skip(reason)
        report(f"skipped {error}" if reason is not None else str(error))

    writer = _RunWriter(tmpdir)
    try:
        runs: list[Path] = []
        memory: list[list[bytes]] = []
        budget = memory_budget
        done_bytes = 0
        for index, path in enumerate(files):
            summary.files += 1
            sorter = _FileSorter(writer, index, window)
            reader = ExportReader(path)
            _import_one(factory(reader.name, summary.notes), reader, sorter, summary, bad, progress, done_bytes)
            done_bytes += reader.bytes_read
            _check_count(reader, summary)
            spilled, kept = sorter.finish(budget)
            runs.extend(spilled)
            if kept is not None:
                budget -= len(kept)
                memory.append(kept)
        runs = _merge_runs(runs, writer)
        sources: list[Iterator[bytes]] = [iter(m) for m in memory] + [_read_run(p) for p in runs]
        if progress is not None:
            progress.clear()
        _write_merged(heapq.merge(*sources) if len(sources) != 1 else sources[0], out, summary)
    finally:
        writer.cleanup()
    return summary


def _import_one(
    translator: Translator,
    reader: ExportReader,
    sorter: _FileSorter,
    summary: ImportSummary,
    bad: _Bad,
    progress: _Progress | None,
    done_bytes: int,
) -> None:
    translate, add, line_of = translator.translate, sorter.add, event_line
    counts: dict[type, int] = dict.fromkeys(TYPE_NAMES, 0)
    try:
        for n, record in reader.records(translator.begin, bad):
            if progress is not None and not n & 0xFFF:
                progress.update(done_bytes + reader.bytes_read, summary.read + n)
            try:
                result = translate(record)
            except FatalInputError as e:
                raise FatalInputError(e.problem, where=reader.where(n), field=e.field) from None
            except InputError as e:
                bad(InputError(e.problem, where=reader.where(n), field=e.field), "bad record")
                continue
            if type(result) is str:
                summary.skip(result)
                continue
            try:
                if len(result) == 1:
                    ev = result[0]
                    add((ev.ts - _EPOCH) // _US, line_of(ev).encode())
                    counts[type(ev)] += 1
                    continue
                lines = [((ev.ts - _EPOCH) // _US, line_of(ev).encode()) for ev in result]
            except UnicodeEncodeError:
                bad(InputError("text is not valid Unicode (invalid UTF-8 or an unpaired surrogate)",
                               where=reader.where(n)), "bad record")
                continue
            except (ValueError, OverflowError) as e:  # a timestamp that cannot be written
                bad(InputError(f"cannot be written: {e}", where=reader.where(n)), "bad record")
                continue
            for key, line in lines:
                add(key, line)
            for ev in result:
                counts[type(ev)] += 1
    finally:
        summary.read += reader.count
        for cls, count in counts.items():
            if count:
                summary.events[TYPE_NAMES[cls]] += count


_encode_str = json.encoder.encode_basestring  # what dumps_line uses for strings (ensure_ascii=False)
_HEADS: dict[tuple[str | None, str, str], str] = {}


def _ts_text(ts: datetime) -> str:
    if ts.tzinfo is UTC:
        text = ts.isoformat()
        return text[:-6] + "Z"  # drop "+00:00"
    return format_ts(ts)


def event_line(event: Event) -> str:
    """`dumps_line(event_to_dict(event))`, built faster for messages and reactions (the bulk of an export).

    Byte-identical to the generic path (tests pin it); other event types take the generic path.
    """
    cls = type(event)
    if cls is Message:
        e: Message = event  # type: ignore[assignment]
        head = _HEADS.get((e.platform, e.community, e.room))
        if head is None:
            head = _message_head(e.platform, e.community, e.room)
        enc = _encode_str
        parts = [head, enc(e.id), ',"ts":"', _ts_text(e.ts), '","author":', enc(e.author)]
        if e.author_name is not None:
            parts += (',"author_name":', enc(e.author_name))
        parts += (',"text":', enc(e.text))
        if e.reply_to is not None:
            parts += (',"reply_to":', enc(e.reply_to))
        if e.thread is not None:
            parts += (',"thread":', enc(e.thread))
        if e.mentions:
            parts += (',"mentions":[', ",".join(map(enc, e.mentions)), "]")
        parts.append(',"is_bot":true}\n' if e.is_bot else "}\n")
        return "".join(parts)
    if cls is Reaction:
        r: Reaction = event  # type: ignore[assignment]
        enc = _encode_str
        return "".join((
            '{"type":"reaction","community":', enc(r.community), ',"room":', enc(r.room), ',"message":',
            enc(r.message), ',"author":', enc(r.author), ',"emoji":', enc(r.emoji), ',"ts":"', _ts_text(r.ts),
            '"}\n',
        ))
    return dumps_line(event_to_dict(event))


def _message_head(platform: str | None, community: str, room: str) -> str:
    enc = _encode_str
    head = '{"type":"message",'
    if platform is not None:
        head += f'"platform":{enc(platform)},'
    head += f'"community":{enc(community)},"room":{enc(room)},"id":'
    if len(_HEADS) > 4096:  # rooms are few; a cap keeps a hostile input from growing the cache
        _HEADS.clear()
    _HEADS[(platform, community, room)] = head
    return head


def _check_count(reader: ExportReader, summary: ImportSummary) -> None:
    declared = reader.header.get("messageCount")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != reader.count:
        summary.warnings.append(f"{reader.name}: messageCount says {declared:,} but the file holds "
                                f"{reader.count:,} messages")


def _write_merged(lines: Iterator[bytes], out: IO[bytes], summary: ImportSummary) -> None:
    group = b""
    seen: set[bytes] = set()
    write = out.write
    written = 0
    for item in lines:
        key = item[:_KEY_LEN]
        if key != group:
            group = key
            seen = set()
        body = item[_PREFIX_LEN:]
        ident = body[: body.find(_TS_FIELD)] if body.startswith(_MESSAGE_LINE) else body
        if ident in seen:
            kind = body[9: body.find(b'"', 9)].decode("ascii", "replace")
            summary.duplicates[kind] += 1
            summary.events[kind] -= 1
            continue
        seen.add(ident)
        write(body)
        written += 1
    summary.written = written


def run_import(
    kind: str,
    files: list[Path],
    out: Path | None,
    skip_bad: bool,
    progress: bool,
    *,
    community: str | None = None,
    stderr: IO[str] | None = None,
    stdout: IO[bytes] | None = None,
) -> int:
    """`lien import KIND FILE...`: write the events of the exports to `out` (default stdout); the exit code.

    0 when every record was imported or skipped as asked, 2 on bad input (the message names file, record number,
    byte offset and field). `progress` shows a progress bar when stderr is a terminal. The summary goes to stderr.
    """
    err = stderr if stderr is not None else sys.stderr

    def report(message: str) -> None:
        bar.clear()
        print(f"lien import: {message}", file=err)

    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    bar = _Progress(err, progress and err.isatty(), total)
    summary = ImportSummary()
    tmp_out: Path | None = None
    try:
        factory = translator_factory(kind, community)
        if out is None:
            sink = stdout if stdout is not None else sys.stdout.buffer
            import_files(factory, files, sink, skip_bad=skip_bad, report=report, summary=summary, progress=bar)
            sink.flush()
        else:
            # Written beside the target and renamed at the end: a failed import never leaves a partial file.
            try:
                fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
            except OSError as e:
                raise FatalInputError(f"cannot write here: {e.strerror or e}", where=str(out)) from None
            tmp_out = Path(name)
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                import_files(factory, files, f, skip_bad=skip_bad, report=report, summary=summary, progress=bar)
            os.replace(tmp_out, out)
            tmp_out = None
    except InputError as e:
        report(str(e))
        return 2
    except OSError as e:
        report(f"cannot write output: {e.strerror or e}")
        return 1
    finally:
        bar.clear()
        if tmp_out is not None:
            tmp_out.unlink(missing_ok=True)
    for warning in summary.warnings:
        report(f"warning: {warning}")
    report(summary.line())
    return 0


# -- field checks shared by the importers (raise InputError without `where`; the caller adds the position) -------


def need_obj(obj: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any]:
    """`obj[key]`, which must be a JSON object."""
    value = obj.get(key, _MISSING)
    if type(value) is dict:
        return value
    if value is _MISSING:
        raise InputError("required field is missing", field=field)
    raise InputError(f"expected an object, got {describe(value)}", field=field)


def opt_obj(obj: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any] | None:
    """`obj[key]` when it is a JSON object, None when missing or null; anything else is an error."""
    value = obj.get(key)
    if value is None or type(value) is dict:
        return value
    raise InputError(f"expected an object, got {describe(value)}", field=field)


def need_id(obj: Mapping[str, Any], key: str, field: str) -> str:
    """`obj[key]`, which must be a non-empty string."""
    value = obj.get(key, _MISSING)
    if type(value) is str and value:
        return value
    if value is _MISSING:
        raise InputError("required field is missing", field=field)
    if value == "":
        raise InputError("expected a non-empty string id, got ''", field=field)
    raise InputError(f"expected a string id, got {describe(value)}", field=field)


def opt_str(obj: Mapping[str, Any], key: str, field: str) -> str | None:
    """`obj[key]` when it is a string, None when missing or null; anything else is an error."""
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise InputError(f"expected a string, got {describe(value)}", field=field)


def opt_list(obj: Mapping[str, Any], key: str, field: str) -> list[Any]:
    """`obj[key]` when it is an array, [] when missing or null; anything else is an error."""
    value = obj.get(key)
    if type(value) is list:
        return value
    if value is None:
        return []
    raise InputError(f"expected an array, got {describe(value)}", field=field)


def opt_bool(obj: Mapping[str, Any], key: str, field: str) -> bool:
    """`obj[key]` when it is true or false, False when missing or null; anything else is an error."""
    value = obj.get(key)
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise InputError(f"expected true or false, got {describe(value)}", field=field)


def reason_name(value: str) -> str:
    """A record-supplied name shortened for use in a skip reason."""
    return value if len(value) <= 40 else value[:37] + "..."


class _Missing:
    pass


_MISSING: Final = _Missing()
