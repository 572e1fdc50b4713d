"""lien as production runs it (`lien run --config F`), in a subprocess pointed at the stand-in; and its database.

`LienProcess` starts the real CLI through `launch`, waits for its "lien is running" line, and stops it with
SIGTERM as a service manager would. Its log (INFO and up) goes to a file; `problems()` lists the ERROR and
CRITICAL lines and tracebacks in it, which the fixtures turn into test failures (discord.py logs what it swallows).
`LienDb` reads the rows lien wrote, through the storage repositories, from the test process.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bot.model import Nudge, Question
from storage.db import make_engine
from storage.repositories import SqlStore

REPO = Path(__file__).resolve().parents[3]
#: What `bot.main._run` logs once every adapter started and the outbox was resumed.
READY_LINE = "lien is running"
#: The PostgreSQL server for tests (same variable and default as tests/integration).
PG_SERVER_URL = os.environ.get("LIEN_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
_PROBLEM = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |^Traceback ", re.MULTILINE)


def toml_config(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document from `{"table.name": {key: value}}` (strings, numbers, booleans and lists of them)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    return "\n".join(f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items())
                     for name, keys in tables.items())


async def migrate(config: Path) -> None:
    """`lien migrate --config CONFIG`, as an operator runs it once before starting shard processes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate", "--config", str(config), cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode(errors="replace")


async def _pg_admin(sql: str) -> None:
    engine = make_engine(PG_SERVER_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped afterwards; skips when the server is unreachable
    (fails instead under CI=true, where PostgreSQL tests must run)."""
    try:
        await asyncio.wait_for(_pg_admin("SELECT 1"), 5)
    except Exception as exc:  # any failure means "not usable here"; the message says which
        reason = f"PostgreSQL not reachable at {make_url(PG_SERVER_URL).render_as_string()}: {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"lien_e2e_{os.getpid()}_{secrets.token_hex(4)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LienProcess:
    """One `lien run --config CONFIG` subprocess against the stand-in at `url`."""

    def __init__(self, url: str, config: Path, log: Path, *, token: str) -> None:
        self.url, self.config, self.log, self.token = url, config, log, token
        self.proc: asyncio.subprocess.Process | None = None
        self.returncode: int | None = None

    async def start(self, within: float = 40.0) -> LienProcess:
        """Spawn lien and return once it says it is running; fails with the log's tail if it exits first."""
        env = dict(os.environ, DISCORD_TOKEN=self.token, PYTHONPATH=str(REPO))
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.e2e.discord.launch", self.url, "-v", "run", "--config",
                str(self.config), cwd=REPO, env=env, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL)
        try:
            async with asyncio.timeout(within):
                while READY_LINE not in self.log_text()[offset:]:
                    if self.proc.returncode is not None:
                        raise AssertionError(f"lien exited with {self.proc.returncode}:\n{self.tail()}")
                    await asyncio.sleep(0.05)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"lien did not start within {within} s:\n{self.tail()}") from None
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, within: float = 20.0) -> int:
        """SIGTERM, as systemd or Docker would; returns the exit code (killed after `within` seconds)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), within)
            except TimeoutError:
                await self.kill()
                raise AssertionError(f"lien ignored SIGTERM for {within} s:\n{self.tail()}") from None
        self.returncode = self.proc.returncode
        return self.returncode

    async def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def problems(self) -> list[str]:
        """ERROR and CRITICAL log lines, and the first line of each traceback (the full text is in `log`)."""
        text = self.log_text()
        return [text[m.start(): text.find("\n", m.end())] for m in _PROBLEM.finditer(text)]


class LienDb:
    """Read access to the database lien runs on, through the same repositories lien uses."""

    def __init__(self, url: str) -> None:
        self.url = url

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        engine = make_engine(self.url)
        try:
            async with SqlStore(engine).transaction() as tx:
                yield tx
        finally:
            await engine.dispose()

    async def question(self, community: str, qid: str) -> Question | None:
        async with self._tx() as tx:
            found: Question | None = await tx.questions.get(community, qid)
            return found

    async def nudges(self, community: str, qid: str) -> list[Nudge]:
        async with self._tx() as tx:
            found: list[Nudge] = await tx.nudges.for_question(community, qid)
            return found

    async def member(self, community: str, member: str) -> Any:
        async with self._tx() as tx:
            return await tx.members.get(community, member)

    async def wait_question(self, community: str, qid: str, state: str | None = None,
                            within: float = 10.0) -> Question:
        """Poll until lien stored the question (in `state`, if given)."""
        async with asyncio.timeout(within):
            while True:
                q = await self.question(community, qid)
                if q is not None and (state is None or q.state == state):
                    return q
                await asyncio.sleep(0.1)
