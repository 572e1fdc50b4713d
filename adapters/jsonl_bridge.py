"""The JSONL bridge: lien driven by files, to plug it into other tools (and the crash tests).

Another program appends events (one JSON object per line, `spec/events.md`) to an **inbox** file; the bridge
tails it and hands each event to lien. Every action lien performs is appended to an **outbox** file as one JSON
line (the spec's action fields plus `key`, the idempotency key of nudges, null for other actions), flushed and
fsync'd before `perform` returns, so a consumer never reads an action that was not durably written.

Restart safety:
- the byte offset of the next unread inbox line is kept in a small position file (default `INBOX.pos`), replaced
  atomically after each event; after a crash at most the event in hand is read again, and the engine ignores
  events it has already stored;
- `already_sent(action)` looks for the action's key in the outbox file, so a crash between writing a nudge and
  marking it sent does not write it twice;
- a torn last line in the outbox (the process was killed in the middle of a write) is cut off at start: it was
  never acknowledged, so the runtime performs that action again.

Only complete lines (ending in a newline) are read from the inbox: a writer may append a line in several writes.
Bad lines are logged with `file:line` and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.jsonl import EventReader, action_to_dict, dumps_line
from bot.actions import Action
from bot.errors import ConfigError, InputError
from bot.events import Event
from bot.ports import EventHandler
from bot.tasks import TaskSet

log = logging.getLogger(__name__)


def _warn_skipped(error: InputError) -> None:
    log.warning("skipped bad line %s", error)


#: Most bytes read from the inbox per poll, so that a huge backlog is handled in bounded steps.
_CHUNK = 1 << 20


class BridgeSettings(BaseModel):
    """The `[bridge]` table: where the inbox and the outbox are, and how often the inbox is polled."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    #: Events file lien reads (JSON Lines, spec format); created empty if missing.
    inbox: Annotated[str, Field(min_length=1)]
    #: Actions file lien appends to (JSON Lines); created if missing.
    outbox: Annotated[str, Field(min_length=1)]
    #: Where the read position in the inbox is kept between runs; default: the inbox path plus ".pos".
    position: Annotated[str | None, Field(min_length=1)] = None
    #: Seconds between two looks at the inbox for new lines.
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.2

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> BridgeSettings:
        """Validate the raw `[bridge]` table; errors name the key as `bridge.KEY`."""
        try:
            return cls.model_validate(section or {})
        except ValidationError as exc:
            problems = "; ".join(f"bridge.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ConfigError(problems) from exc


class JsonlBridge:
    """`bot.ports.Adapter` over an inbox file of events and an outbox file of actions."""

    platform = "bridge"

    def __init__(self, inbox: Path, outbox: Path, *, position: Path | None = None, poll_seconds: float = 0.2) -> None:
        self.inbox, self.outbox = Path(inbox), Path(outbox)
        self.position = Path(position) if position is not None else self.inbox.with_name(self.inbox.name + ".pos")
        self.poll_seconds = poll_seconds
        self._on_event: EventHandler | None = None
        self._offset = 0
        self._lineno = 0
        #: In the middle of skipping an over-long line.
        self._long_line = False
        #: Unknown event types met so far, with counts (the first few names are logged, then only counted).
        self._unknown_types: dict[str, int] = {}
        self._tasks = TaskSet(logger=log)
        self._write_lock = asyncio.Lock()
        #: Keys found in the outbox file, and how many of its bytes were scanned for them.
        self._keys: set[str] = set()
        self._scanned = 0

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> JsonlBridge:
        """A bridge on the paths of a validated `[bridge]` table."""
        return cls(Path(settings.inbox), Path(settings.outbox),
                   position=Path(settings.position) if settings.position else None,
                   poll_seconds=settings.poll_seconds)

    # -- Adapter protocol --------------------------------------------------------------------------------------

    async def start(self, on_event: EventHandler) -> None:
        """Open the files and read the inbox backlog (each event awaited) before returning; then keep tailing.

        Returning only once caught up lets the composition root start timers on caught-up state: an answer
        written while lien was down cancels its nudge before the overdue timer fires.
        """
        self._on_event = on_event
        await asyncio.to_thread(self._open_files)
        while await self._read_new():
            pass
        self._tasks.spawn(self._tail(), name=f"bridge tail {self.inbox}")
        log.info("bridge reading %s from byte %d, writing %s", self.inbox, self._offset, self.outbox)

    async def perform(self, action: Action) -> None:
        """Append the action as one JSON line to the outbox, fsync'd before returning."""
        record = {**action_to_dict(action), "key": action.key}
        line = dumps_line(record).encode("utf-8")
        async with self._write_lock:
            await asyncio.to_thread(self._append, line)
            if action.key is not None:
                self._keys.add(action.key)

    async def already_sent(self, action: Action) -> bool:
        """True when the outbox file already holds a line with this action's key."""
        if action.key is None:
            return False
        async with self._write_lock:
            await asyncio.to_thread(self._scan_outbox)
            return action.key in self._keys

    async def stop(self) -> None:
        """Stop tailing (the position file already holds the offset of the next unread line)."""
        await self._tasks.stop()
        self._on_event = None

    # -- inbox -------------------------------------------------------------------------------------------------

    def _open_files(self) -> None:
        self.inbox.parent.mkdir(parents=True, exist_ok=True)
        self.inbox.touch(exist_ok=True)
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        self._repair_outbox()
        self._scanned, self._keys = 0, set()
        self._scan_outbox()
        self._offset, self._lineno = self._load_position()
        size = self.inbox.stat().st_size
        if self._offset > size:
            log.warning("bridge inbox %s is shorter than the saved position (%d > %d): reading it from the start",
                        self.inbox, self._offset, size)
            self._offset, self._lineno = 0, 0

    def _load_position(self) -> tuple[int, int]:
        try:
            raw = self.position.read_text(encoding="utf-8").split()
            return int(raw[0]), int(raw[1])
        except FileNotFoundError:
            return 0, 0
        except (ValueError, IndexError, OSError):
            log.warning("bridge position file %s is unreadable: reading the inbox from the start", self.position)
            return 0, 0

    def _save_position(self) -> None:
        tmp = self.position.with_name(self.position.name + ".tmp")
        tmp.write_text(f"{self._offset} {self._lineno}\n", encoding="utf-8")
        os.replace(tmp, self.position)

    def _read_chunk(self) -> bytes:
        with self.inbox.open("rb") as f:
            f.seek(self._offset)
            return f.read(_CHUNK)

    async def _read_new(self) -> bool:
        """Hand every complete new inbox line to the handler; True if a full chunk was read (more may wait)."""
        data = await asyncio.to_thread(self._read_chunk)
        full = len(data) == _CHUNK
        end = data.rfind(b"\n")
        if end < 0:
            if full:
                # A "line" longer than a chunk is no event: skip it (up to its newline, in the next chunks).
                if not self._long_line:
                    log.warning("%s:%d: skipped a line longer than %d bytes", self.inbox, self._lineno + 1, _CHUNK)
                self._long_line = True
                self._offset += len(data)
                await asyncio.to_thread(self._save_position)
            return full
        pos = 0
        if self._long_line:
            pos = data.index(b"\n") + 1
            self._long_line = False
            self._lineno += 1
            self._offset += pos
        while pos <= end:
            nl = data.index(b"\n", pos)
            raw, pos = data[pos : nl + 1], nl + 1
            self._lineno += 1
            event = self._parse(raw)
            if event is not None and self._on_event is not None:
                try:
                    await self._on_event(event)
                except Exception:
                    log.exception("%s:%d: handling the event failed", self.inbox, self._lineno)
            self._offset += len(raw)
            await asyncio.to_thread(self._save_position)
        return full

    def _parse(self, raw: bytes) -> Event | None:
        """The event of one inbox line, read as `lien simulate` reads a line; None (with a warning) if there is
        none: a blank or comment line, a bad line, an unknown type."""
        reader = EventReader((raw,), str(self.inbox), skip_bad=True, on_bad=_warn_skipped, first_line=self._lineno)
        reader.unknown_type_names = self._unknown_types  # the first few unknown types are logged, for the whole run
        return next(reader, None)

    async def _tail(self) -> None:
        while True:
            more = await self._read_new()
            if not more:
                await asyncio.sleep(self.poll_seconds)

    # -- outbox ------------------------------------------------------------------------------------------------

    def _repair_outbox(self) -> None:
        """Cut a torn last line (a write interrupted by a crash was never acknowledged)."""
        if not self.outbox.exists():
            self.outbox.touch()
            return
        with self.outbox.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            back = min(size, 1 << 16)
            f.seek(size - back)
            tail = f.read(back)
            cut = size - back + tail.rfind(b"\n") + 1
            log.warning("bridge outbox %s ended in a torn line: cut %d byte(s)", self.outbox, size - cut)
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())

    def _scan_outbox(self) -> None:
        """Collect the keys of outbox lines written since the last scan (by this process or another)."""
        with self.outbox.open("rb") as f:
            f.seek(self._scanned)
            data = f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return
        for raw in data[: end + 1].splitlines():
            try:
                key = json.loads(raw).get("key")
            except (ValueError, AttributeError):
                continue
            if isinstance(key, str):
                self._keys.add(key)
        self._scanned += end + 1

    def _append(self, line: bytes) -> None:
        fd = os.open(self.outbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
