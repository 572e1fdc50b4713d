"""lien as it runs in production, for end-to-end scenarios: `lien run --config FILE` in a child process.

The configuration is a real TOML file, the access token comes from an environment variable, state lives in a
SQLite file in the test's directory. The test reads that database read-only (stdlib sqlite3, not lien's storage
layer) and watches the room through a member's client, as a person would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.matrix_events import KEY_FIELD
from tests.e2e.matrix.members import Member
from tests.e2e.matrix.synapse_harness import SynapseServer, TestUser, _die_with_parent

TOKEN_ENV = "LIEN_E2E_MATRIX_TOKEN"
READY_LINE = "lien is running"
#: Fast nudges for tests: level 1 after 3 s, level 2 after 6 s, level 3 out of reach; no quiet hours.
FAST_NUDGES: dict[str, Any] = {
    "level1_floor_minutes": 0.05,
    "level2_floor_minutes": 0.1,
    "level3_minutes": 60,
    "room_pace_seconds": 0.2,
    "quiet_hours": {"enabled": False},
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def toml_text(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document from `{table: {key: value}}`, nested dicts becoming sub-tables."""
    lines: list[str] = []

    def table(name: str, body: Mapping[str, Any]) -> None:
        lines.append(f"[{name}]")
        subs = {k: v for k, v in body.items() if isinstance(v, Mapping)}
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items() if not isinstance(v, Mapping))
        lines.append("")
        for key, sub in subs.items():
            table(f"{name}.{key}", sub)

    for name, body in tables.items():
        table(name, body)
    return "\n".join(lines)


class LienProcess:
    """One `lien run` child process with its config, log and database under `workdir`."""

    def __init__(self, workdir: Path, synapse: SynapseServer, user: TestUser, *, rooms: tuple[str, ...] = (),
                 invite_allow: tuple[str, ...] = (), nudges: Mapping[str, Any] | None = None,
                 guard: Mapping[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.user = user
        self.db_path = workdir / "lien.db"
        self.config_path = workdir / "config.toml"
        self.log_path = workdir / "lien.log"
        self.config_path.write_text(toml_text({
            "storage": {"path": str(self.db_path)},
            "nudges": {**FAST_NUDGES, **(nudges or {})},
            **({"guard": dict(guard)} if guard else {}),
            "matrix": {"homeserver": synapse.base_url, "user_id": user.user_id, "access_token_env": TOKEN_ENV,
                       "device_id": user.device_id, "invite_allow": list(invite_allow), "rooms": list(rooms)},
        }))
        self._proc: asyncio.subprocess.Process | None = None
        self._log: Any = None
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, within: float = 30.0) -> float:
        """Start `lien run` and wait for its "running" log line; returns the seconds it took."""
        assert not self.running, "lien is already running"
        self.runs += 1
        self._log = self.log_path.open("ab")
        self._log.write(f"--- run {self.runs}\n".encode())
        self._log.flush()
        offset = self.log_path.stat().st_size
        env = {**os.environ, TOKEN_ENV: self.user.access_token}
        started = time.monotonic()
        self._proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "-v", "run", "--config", str(self.config_path),
            cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = started + within
        while READY_LINE not in self.log_path.read_text(errors="replace")[offset:]:
            if proc.returncode is not None:
                raise AssertionError(f"lien exited with {proc.returncode} during start\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"lien did not start within {within}s\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def stop(self, within: float = 20.0) -> int:
        """SIGTERM, as a service manager stops lien; returns the exit code (SIGKILL and fail if it hangs)."""
        proc, self._proc = self._proc, None
        assert proc is not None, "lien is not running"
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), within)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"lien did not stop within {within}s of SIGTERM\n{self.log_tail()}") from None
        finally:
            self._close_log()
        return code

    async def kill(self) -> None:
        """Teardown guard: kill the child by its own pid if a test left it running."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "--- lien log\n" + "\n".join(self.log_text().splitlines()[-lines:])

    # -- the database, read-only ---------------------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows from lien's SQLite database, opened read-only so the test never writes lien's state."""
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def question(self, question_id: str) -> dict[str, Any] | None:
        """The stored row of a question (state, answers, credited, nudges), or None when lien did not track it."""
        rows = self.query("SELECT state, answers, credited, nudges FROM questions WHERE id = ?", question_id)
        if not rows:
            return None
        state, answers, credited, nudges = rows[0]
        return {"state": state, "answers": json.loads(answers), "credited": json.loads(credited), "nudges": nudges}

    async def wait_question(self, question_id: str, predicate: Callable[[dict[str, Any] | None], bool],
                            within: float = 15.0) -> None:
        """Poll the question's row until `predicate` holds; fails with the last row seen and the log tail."""
        await wait_until(lambda: predicate(self.question(question_id)), within=within,
                         problem=lambda: f"question {question_id} is {self.question(question_id)}\n{self.log_tail()}")


async def wait_until(condition: Callable[[], bool], *, within: float, problem: Callable[[], str],
                     every: float = 0.1) -> None:
    """Poll `condition` until it holds; after `within` seconds fail with `problem()`."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {within}s: {problem()}")
        await asyncio.sleep(every)


def nudge_key(community: str, question: str, level: int) -> str:
    """The idempotency key lien writes in its nudge's content (see `bot.model.nudge_key`)."""
    return f"nudge|{community}|{question}|{level}"


async def lien_messages(observer: Member, room: str, lien_id: str) -> list[dict[str, Any]]:
    """lien's messages in the room, oldest first, as the observer's client reads them."""
    return [e for e in await observer.messages(room, sender=lien_id) if e["type"] == "m.room.message"]


async def wait_lien_message(observer: Member, room: str, lien_id: str, predicate: Callable[[dict[str, Any]], bool],
                            *, within: float = 20.0, lien: LienProcess | None = None) -> dict[str, Any]:
    """The first message of lien in the room that matches `predicate`, polling up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        for event in await lien_messages(observer, room, lien_id):
            if predicate(event):
                return event
        if time.monotonic() > deadline:
            seen = [(e["content"].get("body", "")[:80], e["content"].get(KEY_FIELD))
                    for e in await lien_messages(observer, room, lien_id)]
            raise AssertionError(f"no matching message from lien after {within}s; it sent {seen}\n"
                                 + (lien.log_tail() if lien else ""))
        await asyncio.sleep(0.2)


def replying_to(event_id: str) -> Callable[[dict[str, Any]], bool]:
    """Matches lien's message that replies to `event_id` (directly or inside a thread)."""
    def match(event: dict[str, Any]) -> bool:
        rel = event["content"].get("m.relates_to") or {}
        return (rel.get("m.in_reply_to") or {}).get("event_id") == event_id
    return match


def keyed(key: str) -> Callable[[dict[str, Any]], bool]:
    """Matches lien's message carrying the idempotency key `key`."""
    return lambda event: event["content"].get(KEY_FIELD) == key
