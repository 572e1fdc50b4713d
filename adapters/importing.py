"""Shared plumbing of `lien import`: streaming JSON export reader, bounded-memory time sort, k-way merge, summary.

An export is one JSON object whose `messages` array may hold millions of records. `ExportReader` decodes it
incrementally, keeps the other top-level members as a small header, and yields the records in batches with their
1-based numbers: mostly about 64 KiB of records decoded at once by orjson from the raw bytes, else one at a time by
`json.JSONDecoder` over a sliding text buffer (the header, the first and last records, anything orjson refuses);
the byte offset of a record is computed only when a problem needs it. Each importer (`adapters.import_discord`,
`adapters.import_matrix`) turns a record into entries: sort key, event type and spec line. Lines are exactly what
`adapters.jsonl.event_to_dict` + `dumps_line` write: messages and reactions, the bulk of an export, are built
straight from the record's fields by `message_line` and `reaction_line` (which `event_line` uses too; a test pins
them to the generic path), the rare types go through their `bot.events` dataclass and `event_line`; timestamps in
the exporter's usual form are read by `iso_stamp` with string operations, the same as `parse_ts` + `format_ts`.

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
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

import orjson

from adapters.jsonl import dumps_line, event_to_dict, format_ts, parse_ts
from bot.errors import InputError
from bot.events import EARLIEST_TS, LATEST_TS, TYPE_NAMES, Event, Message, Reaction

__all__ = [
    "Entry",
    "ExportReader",
    "FatalInputError",
    "ImportSummary",
    "Translator",
    "describe",
    "entry",
    "event_line",
    "import_files",
    "iso_stamp",
    "message_head",
    "message_line",
    "need_id",
    "need_obj",
    "opt_bool",
    "opt_list",
    "opt_obj",
    "opt_str",
    "reaction_line",
    "reason_name",
    "run_import",
    "translator_factory",
    "unix_ms_stamp",
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
_B_WS = re.compile(rb"[ \t\n\r]*")
_B_STRUCTURE = re.compile(rb'["\[\]{},]')
_B_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Bytes of records the fast path decodes at once (small batches stay in the CPU caches).
_BATCH: Final = 1 << 16
#: Bytes handed back by the fast path are decoded for the careful one in pieces of this size.
_PIECE: Final = 1 << 17
#: Fast reads refused in a row after which a file is read carefully to its end.
_MAX_MISSES: Final = 4
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

    def translate(self, record: Any) -> Entry | list[Entry] | str:
        """The entry (or entries) of the events one record means, or the reason it carries none; InputError
        (without `where`) if malformed."""
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


def _element_start(region: bytes, index: int) -> int:
    """Offset in `region` (valid JSON values separated by commas) of the value numbered `index` from 0."""
    depth, i, found = 0, 0, 0
    while found < index:
        m = _B_STRUCTURE.search(region, i)
        assert m is not None
        c, i = m.group(), m.end()
        if c == b'"':
            i = _B_STRING_REST.match(region, i).end()  # type: ignore[union-attr]
        elif c in b"[{":
            depth += 1
        elif c in b"]}":
            depth -= 1
        elif depth == 0:
            found += 1
    return _B_WS.match(region, i).end()  # type: ignore[union-attr]


#: Called with a bad record's error and the skip reason to count (None: report only); raises unless skipping.
_Bad = Callable[[InputError, str | None], None]


_BAD: Final = object()
#: `ExportReader.json_record` of a record that the careful path read.
UNREAD: Final = object()


class _Truncated(Exception):
    """The file ended inside a value."""


class ExportReader:
    """Streams the records of one JSON export: the elements of the top-level array `array_key`, in bounded memory.

    Iterate `batches(begin, bad)` for `(number of the first, records)` pairs, or `records(begin, bad)` for
    `(number, record)` pairs; `begin(header)` is called when the array starts, with the members read so far;
    `header` holds all other members once iteration is over. A record that is not valid JSON goes to
    `bad(error, reason)` (which raises, or returns to skip it); damage outside the records raises FatalInputError.
    `where(n)` names record `n` of the current batch with its byte offset.

    Two paths read the array. The careful one decodes one record at a time (`json`'s scanner over a text buffer)
    and words every problem; it reads the header, the first and last records and any stretch the fast one refuses.
    The fast one cuts the raw bytes where a record ends as the first one did (whitespace, `}`, separator: with a
    newline before the `}`, an indented export is cut only between records, since strings hold no raw newline) and
    decodes about `_BATCH` bytes of records in one `orjson.loads`. A stretch that orjson refuses (a malformed
    record, NaN, invalid UTF-8, a cut inside a string of a compact export) is read again by the careful path, so
    the records and the errors are the same whichever path reads them; orjson reads an integer beyond 64 bits as a
    float, hence `json_record` for a record that a translator refuses.
    """

    def __init__(self, path: Path, array_key: str = "messages", *, chunk_size: int = _CHUNK,
                 max_record: int = MAX_RECORD_CHARS) -> None:
        self.path = path
        self.name = str(path)
        self.array_key = array_key
        self.header: dict[str, Any] = {}
        #: Records read so far (up to the end of the current batch).
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
        self._pending = b""  # bytes handed back by the fast path, not decoded yet
        self._decoded = 0  # byte offset, in the file, of the end of what the decoder was given
        self._file_done = False
        self._until = 0  # the careful path hands back to the fast one once past this position of _buf
        self._sig = b""  # how a record ends and the next begins, e.g. b"\n    },\n    "; empty until learnt
        self._close = 0  # length of the part of _sig up to its `}`
        self._exact = False  # _sig has a newline that only a record's end can have: no bracket count needed
        self._misses = 0  # fast reads refused in a row; at _MAX_MISSES the rest of the file is read carefully
        self._batch: tuple[int, int, int, bytes] | None = None  # first number, count, byte offset, bytes
        self._json_batch: tuple[tuple[int, int, int, bytes], list[Any]] | None = None  # _batch as `json` reads it

    # -- buffer ---------------------------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Append the next chunk to the buffer; False when the file is exhausted."""
        if self._eof:
            return False
        if self._pending:
            # Handed back by the fast path: decoded in small pieces, as the careful path may need only a little.
            chunk, self._pending = self._pending[:_PIECE], self._pending[_PIECE:]
        else:
            assert self._file is not None
            chunk = self._file.read(self._chunk)
            self.bytes_read += len(chunk)
        self._decoded += len(chunk)
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
        self._base = self._decoded - pending - _utf8_len(rest)
        self._buf = rest
        self._until -= pos
        return 0

    def _byte_offset(self, pos: int) -> int:
        return self._base + _utf8_len(self._buf[:pos])

    def offset(self, n: int | None = None) -> int:
        """Byte offset, in the file, of record `n` of the current batch (default: the record being read)."""
        batch = self._batch
        if batch is not None:
            first, size, base, region = batch
            index = (self.count if n is None else n) - first
            if 0 <= index < size:
                return base + _element_start(region, index)
        return self._byte_offset(self._start)

    def json_record(self, n: int) -> Any:
        """Record `n` as the careful path reads it when the fast one read it (else `UNREAD`): the two read every
        value alike but an integer beyond 64 bits, which orjson turns into a float, so a record refused for a
        number may be good after all."""
        batch = self._batch
        if batch is None or not 0 <= n - batch[0] < batch[1]:
            return UNREAD
        if self._json_batch is None or self._json_batch[0] is not batch:
            try:
                self._json_batch = batch, json.loads(b"[" + batch[3] + b"]")
            except RecursionError:  # nested deeper than `json` goes (orjson goes a little deeper)
                return UNREAD
        return self._json_batch[1][n - batch[0]]

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
        for first, batch in self.batches(begin, bad):
            for n, record in enumerate(batch, first):
                self.count = n
                yield n, record

    def batches(self, begin: Callable[[dict[str, Any]], None], bad: _Bad) -> Iterator[tuple[int, list[Any]]]:
        """Yield `(number of the first, records)` for consecutive elements of the array, in file order."""
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
            # The careful path, one record per turn (one generator frame: this one).
            scan, separator = self._scan, _SEPARATOR.match
            n = 0
            while True:
                if len(self._buf) - pos < _LOOKAHEAD and not self._eof:
                    pos = self._compact(pos)
                    self._fill()
                n += 1
                self.count = n
                self._start = pos
                self._batch = None
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
                    yield n, [record]
                m = separator(buf, end)
                if m is not None and m.end() < len(buf):
                    pos = m.end()
                    if m.group(1) == "]":
                        break
                    if not self._sig and record is not _BAD:
                        self._learn(self._start, end, pos)
                    if self._sig and pos >= self._until and not self._eof and self._misses < _MAX_MISSES:
                        n, pos = yield from self._fast(pos, n)
                    continue
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
            self._batch = self._json_batch = None
            self._file.close()

    def _learn(self, start: int, end: int, following: int) -> None:
        """Take how the record `_buf[start:end]` ends, up to the next one at `following`, as the fast path's cut."""
        buf = self._buf
        if buf[end - 1] != "}":
            return
        close = end - 1
        while close > start and buf[close - 1] in " \t\r\n":
            close -= 1
        self._sig = buf[close:following].encode("ascii")  # whitespace, `}`, `,`
        self._close = end - close
        # A newline before the `}` (an indented export), or after it when the record has none (one per line).
        self._exact = "\n" in buf[close:end] or ("\n" in buf[end:following] and "\n" not in buf[start:end])

    def _fast(self, pos: int, n: int) -> Generator[tuple[int, list[Any]], None, tuple[int, int]]:
        """The fast path from the careful one's `pos` (a record's start): yields batches until it cannot go on,
        then hands the rest back; returns the number of the last record read and the careful path's position."""
        # Leave the text buffer: the bytes from `pos` on, re-encoded (surrogateescape gives back any invalid byte).
        rest = self._buf[pos:].encode("utf-8", "surrogateescape")
        held = self._decoder.getstate()[0]
        base = self._decoded - len(held) - len(rest)  # file offset of data[0]
        data = rest + held + self._pending
        self._decoder.reset()
        self._buf, self._pending = "", b""
        at, until = 0, 0
        loads, sig = orjson.loads, self._sig
        while True:
            if len(data) - at < 2 * _BATCH and not self._file_done:
                data = data[at:] + self._read_bytes()
                base += at
                at = 0
            i = data.rfind(sig, at, at + _BATCH)
            if i < 0:
                i = data.find(sig, at)  # a record longer than _BATCH
            if i >= 0 and not self._exact:
                i = self._balanced(data, at, i)
            if i < 0:  # no record end in sight (the last record, a huge one): one record the careful way
                self._misses += 1
                self._sig = b""  # learnt again from the next record (the first one may have been unusual)
                break
            cut = i + self._close
            region = data[at:cut]
            try:
                records = loads(b"[" + region + b"]")
            except orjson.JSONDecodeError as e:
                self._misses += 1
                self._sig = b""
                # Refused only at its very end, a stretch was likely cut inside a record (the cut was learnt from
                # an unusual record): the careful path reads one record, learns again, and the fast one retries.
                # Else (or again) it holds a bad record: the careful path reads the whole stretch.
                cut_inside = e.pos >= len(e.doc) - 1 and self._misses == 1
                until = 0 if cut_inside else len(region.decode("utf-8", "surrogateescape"))
                break
            self._misses = 0
            self._batch = (n + 1, len(records), base + at, region)
            self.count = n + len(records)
            yield n + 1, records
            n += len(records)
            at = i + len(sig)
        self._batch = None
        # Back to the careful path at data[at:].
        self._pending = data[at:]
        self._buf = ""
        self._base = self._decoded = base + at
        self._until = until
        return n, self._skip_ws(0)

    def _balanced(self, data: bytes, at: int, i: int) -> int:
        """For a compact export: the last cut at or before `i` after which brackets balance (-1 if none is near)."""
        for _ in range(8):
            run = data[at: i + self._close]
            if run.count(b"{") + run.count(b"[") == run.count(b"}") + run.count(b"]"):
                return i
            i = data.rfind(self._sig, at, i)
            if i < 0:
                break
        return -1

    def _read_bytes(self) -> bytes:
        """The next `2 * _BATCH` bytes of the file or more (fewer at its end), for the fast path."""
        assert self._file is not None
        parts: list[bytes] = []
        size = 0
        while size < 2 * _BATCH:
            chunk = self._file.read(self._chunk)
            if not chunk:
                self._file_done = True
                break
            parts.append(chunk)
            size += len(chunk)
        self.bytes_read += size
        return b"".join(parts)

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
        return f"{self.name}: message #{n} (byte offset {self.offset(n)})"


# -- sorting ------------------------------------------------------------------------------------------------------


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
        self._window = window
        self._queue: list[bytes] = []
        self._heap: list[tuple[int, bytes]] | None = None
        self._seq = 0
        self._prefix = b"%%018d%05d%%012d" % file_index  # sort prefix: key, this file, sequence
        self._spilled: list[Path] = []
        self._out: IO[bytes] | None = None
        self._out_run = -1

    def add_many(self, keys: list[int], lines: list[bytes]) -> None:
        """Add output lines, `keys` being their times (microseconds), in input order."""
        seq = self._seq
        prefixes = map(self._prefix.__mod__, zip(keys, range(seq + 1, seq + 1 + len(keys)), strict=True))
        self._seq = seq + len(keys)
        items = list(map(bytes.__add__, prefixes, lines))
        queue = self._queue
        # In order (the usual case): the whole batch joins the queue at once; `sorted` checks it in one pass.
        if self._heap is None and items and (not queue or items[0] > queue[-1]) and items == sorted(items):
            queue += items
            if len(queue) >= 2 * self._window:
                # Out in batches: the oldest lines go to the current run in one call, `window` of them stay.
                self._emit_many(queue[: len(queue) - self._window])
                del queue[: len(queue) - self._window]
            return
        for item in items:
            self._add(item)

    def add(self, key: int, line: bytes) -> None:
        """Add one output line whose time is `key` (microseconds)."""
        self._seq += 1
        self._add(self._prefix % (key, self._seq) + line)

    def _add(self, item: bytes) -> None:
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
    translate = translator.translate
    counts = dict.fromkeys(TYPE_NAMES.values(), 0)
    try:
        for first, batch in reader.batches(translator.begin, bad):
            if progress is not None:
                progress.update(done_bytes + reader.bytes_read, summary.read + first)
            keys: list[int] = []
            lines: list[bytes] = []
            add_key, add_line = keys.append, lines.append
            n = first - 1
            for record in batch:
                n += 1
                try:
                    result = translate(record)
                except (InputError, ValueError, OverflowError) as e:
                    result = _refused(translate, reader, n, record, e, bad)
                    if result is None:
                        continue
                if type(result) is tuple:  # one event, the usual case
                    key, kind, line = result
                    try:
                        add_line(line.encode())
                    except UnicodeEncodeError:
                        bad(InputError(_NOT_UNICODE, where=reader.where(n)), "bad record")
                        continue
                    add_key(key)
                    counts[kind] += 1
                    continue
                if type(result) is str:
                    summary.skip(result)
                    continue
                try:
                    encoded = [(key, kind, line.encode()) for key, kind, line in result]
                except UnicodeEncodeError:
                    bad(InputError(_NOT_UNICODE, where=reader.where(n)), "bad record")
                    continue
                for key, kind, data in encoded:
                    add_key(key)
                    add_line(data)
                    counts[kind] += 1
            sorter.add_many(keys, lines)
    finally:
        summary.read += reader.count
        summary.events.update({kind: count for kind, count in counts.items() if count})


_NOT_UNICODE: Final = "text is not valid Unicode (invalid UTF-8 or an unpaired surrogate)"


def _refused(translate: Callable[[Any], Entry | list[Entry] | str], reader: ExportReader, n: int, record: Any,
             error: Exception, bad: _Bad) -> Entry | list[Entry] | str | None:
    """Record `n`, refused by `translate`: translated again as `json` reads it if orjson read it (see
    `ExportReader.json_record`); then the error is reported (raised, or None once `bad` skipped the record)."""
    exact = reader.json_record(n)
    # Only a record that reads otherwise (a big integer: the repr tells an int from a float) is translated again.
    if exact is not UNREAD and repr(exact) != repr(record):
        try:
            return translate(exact)
        except (InputError, ValueError, OverflowError) as e:
            error = e
    if isinstance(error, FatalInputError):
        raise FatalInputError(error.problem, where=reader.where(n), field=error.field) from None
    if isinstance(error, InputError):
        bad(InputError(error.problem, where=reader.where(n), field=error.field), "bad record")
    else:  # a timestamp that cannot be written
        bad(InputError(f"cannot be written: {error}", where=reader.where(n)), "bad record")
    return None


# -- spec lines (the bulk types built here, the others by adapters.jsonl; byte for byte the same: tests pin it) ---


#: What a translator makes of one event: its sort key (microseconds since 0001-01-01 UTC), its type, its spec line.
Entry = tuple[int, str, str]

_encode_str = json.encoder.encode_basestring  # what dumps_line uses for strings (ensure_ascii=False)
_HEADS: dict[tuple[str | None, str, str], str] = {}


def _ts_text(ts: datetime) -> str:
    if ts.tzinfo is UTC:
        text = ts.isoformat()
        return text[:-6] + "Z"  # drop "+00:00"
    return format_ts(ts)


def message_head(platform: str | None, community: str, room: str) -> str:
    """The start of a message line, up to `"id":`; the same for every message of a room (cached)."""
    head = _HEADS.get((platform, community, room))
    if head is not None:
        return head
    enc = _encode_str
    head = '{"type":"message",'
    if platform is not None:
        head += f'"platform":{enc(platform)},'
    head += f'"community":{enc(community)},"room":{enc(room)},"id":'
    if len(_HEADS) > 4096:  # rooms are few; a cap keeps a hostile input from growing the cache
        _HEADS.clear()
    _HEADS[(platform, community, room)] = head
    return head


def message_line(head: str, mid: str, ts: str, author: str, author_name: str | None, text: str,
                 reply_to: str | None, thread: str | None, mentions: Iterable[str], is_bot: bool) -> str:
    """`dumps_line(event_to_dict(message))` for a message whose `message_head` is `head` and `format_ts` is `ts`."""
    enc = _encode_str
    # One f-string: the line is copied once, however many optional fields it has.
    name = "" if author_name is None else f',"author_name":{enc(author_name)}'
    reply = "" if reply_to is None else f',"reply_to":{enc(reply_to)}'
    within = "" if thread is None else f',"thread":{enc(thread)}'
    mentioned = f',"mentions":[{",".join(map(enc, mentions))}]' if mentions else ""
    return (f'{head}{enc(mid)},"ts":"{ts}","author":{enc(author)}{name},"text":{enc(text)}{reply}{within}'
            f'{mentioned}{_BOT_END if is_bot else _END}')


_BOT_END: Final = ',"is_bot":true}\n'
_END: Final = "}\n"


def reaction_line(community: str, room: str, message: str, author: str, emoji: str, ts: str) -> str:
    """`dumps_line(event_to_dict(reaction))`, `ts` being the reaction's `format_ts`."""
    enc = _encode_str
    return (f'{{"type":"reaction","community":{enc(community)},"room":{enc(room)},"message":{enc(message)},'
            f'"author":{enc(author)},"emoji":{enc(emoji)},"ts":"{ts}"}}\n')


def event_line(event: Event) -> str:
    """`dumps_line(event_to_dict(event))`, built faster for messages and reactions (the bulk of an export)."""
    cls = type(event)
    if cls is Message:
        e: Message = event  # type: ignore[assignment]
        return message_line(message_head(e.platform, e.community, e.room), e.id, _ts_text(e.ts), e.author,
                            e.author_name, e.text, e.reply_to, e.thread, e.mentions, e.is_bot)
    if cls is Reaction:
        r: Reaction = event  # type: ignore[assignment]
        return reaction_line(r.community, r.room, r.message, r.author, r.emoji, _ts_text(r.ts))
    return dumps_line(event_to_dict(event))


def entry(event: Event) -> Entry:
    """The entry of an event of any type (importers build the bulk types' lines directly)."""
    return (event.ts - _EPOCH) // _US, TYPE_NAMES[type(event)], event_line(event)


# ISO stamps in the exporter's form, `YYYY-MM-DDTHH:MM:SS.mmm+HH:00`, are read with string operations: per local
# hour and offset (`YYYY-MM-DDTHH+HH:00`), `_HOURS` holds the hour's sort key and its UTC text up to the minutes.
_HOURS: dict[str, tuple[int, str] | None] = {}
_MAX_HOURS: Final = 20_000
_HOUR_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}[+-][0-9]{2}:00")
_MINUTES_SECONDS: Final = {f"{i // 60:02d}:{i % 60:02d}": i * 1_000_000 for i in range(3600)}  # "MM:SS" -> µs
_MILLIS: Final = {f"{i:03d}": i * 1000 for i in range(1000)}


def iso_stamp(value: Any, field: str) -> tuple[int, str]:
    """The sort key and `format_ts` text of an ISO 8601 stamp, read as `parse_ts` reads it (InputError if bad)."""
    if type(value) is str and len(value) == 29 and value[13] == ":" and value[16] == ":" and value[19] == ".":
        hour = value[:13] + value[23:]
        cached = _HOURS.get(hour, _MISSING)
        if cached is _MISSING:
            cached = _hour(hour)
        seconds, millis = _MINUTES_SECONDS.get(value[14:19]), _MILLIS.get(value[20:23])
        if cached is not None and seconds is not None and millis is not None:
            start, prefix = cached  # type: ignore[misc]
            text = f"{prefix}{value[14:23]}000Z" if millis else f"{prefix}{value[14:19]}Z"
            return start + seconds + millis, text
    ts = parse_ts(value, "", field)
    return (ts - _EPOCH) // _US, format_ts(ts)


def _hour(hour: str) -> tuple[int, str] | None:
    """`_HOURS[hour]`, computed (None: not the common form, or a stamp that `parse_ts` refuses)."""
    cached = None
    if _HOUR_FORM.fullmatch(hour):
        try:
            ts = parse_ts(f"{hour[:13]}:00:00{hour[13:]}", "")
        except InputError:
            pass
        else:
            cached = (ts - _EPOCH) // _US, format_ts(ts)[:14]  # "YYYY-MM-DDTHH:" in UTC (whole-hour offset)
    if len(_HOURS) >= _MAX_HOURS:
        _HOURS.clear()
    _HOURS[hour] = cached
    return cached


_UNIX_EPOCH_US: Final = (datetime(1970, 1, 1, tzinfo=UTC) - _EPOCH) // _US
_LATEST_UNIX_MS: Final = (LATEST_TS - EARLIEST_TS) // timedelta(milliseconds=1)  # EARLIEST_TS is the Unix epoch
_UNIX_HOURS: dict[int, str] = {}


def unix_ms_stamp(ms: int) -> tuple[int, str]:
    """The sort key and `format_ts` text of milliseconds since 1970; OverflowError when out of the times lien reads
    (`bot.events.EARLIEST_TS` to `LATEST_TS`, as `parse_ts`)."""
    if not 0 <= ms < _LATEST_UNIX_MS:
        raise OverflowError(f"{ms} ms since 1970 is out of range")
    hour, rest = divmod(ms, 3_600_000)
    prefix = _UNIX_HOURS.get(hour)
    if prefix is None:
        ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
        prefix = format_ts(ts)[:14]
        if len(_UNIX_HOURS) >= _MAX_HOURS:
            _UNIX_HOURS.clear()
        _UNIX_HOURS[hour] = prefix
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{prefix}{minutes:02d}:{seconds:02d}" + (f".{millis:03d}000Z" if millis else "Z")
    return _UNIX_EPOCH_US + ms * 1000, text


def _check_count(reader: ExportReader, summary: ImportSummary) -> None:
    declared = reader.header.get("messageCount")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != reader.count:
        summary.warnings.append(f"{reader.name}: messageCount says {declared:,} but the file holds "
                                f"{reader.count:,} messages")


def _ident(body: bytes) -> bytes:
    """What makes two lines of one time the same event: a message's id (its line up to `ts`), else the line."""
    return body[: body.find(_TS_FIELD)] if body.startswith(_MESSAGE_LINE) else body


def _write_merged(lines: Iterator[bytes], out: IO[bytes], summary: ImportSummary) -> None:
    group = b""
    first = b""  # the first line of the current group (lines of one time)
    seen: set[bytes] | None = None  # the group's idents, made when a second line of that time comes
    bodies: list[bytes] = []
    write, append = out.write, bodies.append
    written = 0
    for item in lines:
        key = item[:_KEY_LEN]
        body = item[_PREFIX_LEN:]
        if key != group:
            group, first, seen = key, body, None
        else:
            if seen is None:
                seen = {_ident(first)}
            ident = _ident(body)
            if ident in seen:
                kind = body[9: body.find(b'"', 9)].decode("ascii", "replace")
                summary.duplicates[kind] += 1
                summary.events[kind] -= 1
                continue
            seen.add(ident)
        append(body)
        if len(bodies) >= 4096:
            written += len(bodies)
            write(b"".join(bodies))
            bodies.clear()
    written += len(bodies)
    write(b"".join(bodies))
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
