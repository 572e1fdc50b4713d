"""Benchmark: is "due nudges" an index range on a big SQLite database, and how fast do buffered writes flush?

Loads N open questions, each with a pending nudge (Core executemany, in time order), then times
`NudgeRepo.due(before, limit=100)` and prints EXPLAIN QUERY PLAN for it. Also measures the flush throughput of
`MessageRepo.add` (messages per second through a transaction), which the replay benchmark needs.
Run: `.venv/bin/python -m bench.bench_due_query` (about a minute for the default 1,000,000 rows).
Exits 1 when the plan is not an index search or the target (10 ms per query) is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.model import MessageMeta
from storage.db import make_engine
from storage.migrate import migrate
from storage.repositories import NUDGES, SqlStore, _pending_nudges, _sqlite_ts

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
TARGET_MS = 10.0
_DELAYS = tuple(timedelta(hours=h) for h in (1, 2, 4, 24, 3))


_Q_COLUMNS = (
    "community", "id", "room", "author", "asked_ts", "thread", "state", "answered_by", "first_answer_ts",
    "resolved_ts", "answers", "credited", "nudges", "level",
)  # fmt: skip
_N_COLUMNS = ("community", "question", "level", "due", "state", "mentioned", "why")


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


async def load(store: SqlStore, n: int, batch: int) -> float:
    """Insert `n` open questions with one pending nudge each (Core executemany); returns the wall seconds.

    Questions are asked in time order, as a live bot records them; timestamps go through the same conversion
    as the repositories' SQLite write path, so `due()` compares like with like.
    """
    start = time.perf_counter()
    for first in range(0, n, batch):
        questions, nudges = [], []
        for i in range(first, min(n, first + batch)):
            community, qid = f"guild-{i % 7}", f"{1_300_000_000_000_000_000 + i}"
            asked = T0 + SPAN * (i / n)
            questions.append(
                (community, qid, f"#room-{i % 50}", f"@user-{i % 20_000}:example.org", _sqlite_ts(asked), None,
                 "open", None, None, None, "[]", "[]", 0, 0)
            )  # fmt: skip
            nudges.append((community, qid, 1, _sqlite_ts(asked + _DELAYS[i % len(_DELAYS)]), "pending", "[]", "[]"))
        async with store.transaction() as tx:
            await tx._conn.exec_driver_sql(_insert_sql("questions", _Q_COLUMNS), questions)
            await tx._conn.exec_driver_sql(_insert_sql("nudges", _N_COLUMNS), nudges)
        if first and first % (batch * 4) == 0:
            print(f"  loaded {first:,}", file=sys.stderr)
    return time.perf_counter() - start


async def explain_due(store: SqlStore, before: datetime) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN lines for the exact statement `due` runs."""
    stmt = _pending_nudges().where(NUDGES.c.due < before).limit(100)
    async with store.transaction() as tx:
        conn = tx._conn
        compiled = stmt.compile(dialect=conn.dialect)
        raw = compiled.construct_params()
        params = tuple(_sqlite_ts(v) if isinstance(v, datetime) else v for v in (raw[k] for k in compiled.positiontup))
        rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)).all()
    return [str(r[-1]) for r in rows]


async def time_due(store: SqlStore, queries: int, rng: random.Random) -> tuple[list[float], list[float]]:
    """Milliseconds per `due` call: inside one open transaction, and each in its own transaction."""
    befores = [T0 + SPAN * rng.random() for _ in range(queries)]
    inside: list[float] = []
    async with store.transaction() as tx:
        await tx.nudges.due(befores[0], 100)  # warm the page cache
        for before in befores:
            s = time.perf_counter()
            got = await tx.nudges.due(before, 100)
            inside.append((time.perf_counter() - s) * 1000)
            assert all(n.due < before for n in got)
    own: list[float] = []
    for before in befores[: max(1, queries // 4)]:
        s = time.perf_counter()
        async with store.transaction() as tx:
            await tx.nudges.due(before, 100)
        own.append((time.perf_counter() - s) * 1000)
    return inside, own


async def message_flush(store: SqlStore, n: int, batch: int) -> tuple[float, float]:
    """Messages added through `SqlTx` per wall second and per CPU second (main plus SQLite thread)."""
    metas = [
        MessageMeta(
            "guild-m",
            f"#room-{i % 40}",
            f"{1_400_000_000_000_000_000 + i}",
            f"@user-{i % 5_000}:example.org",
            T0 + timedelta(milliseconds=250 * i),
            reply_to=f"{1_400_000_000_000_000_000 + i - 1}" if i % 3 else None,
        )
        for i in range(n)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for first in range(0, n, batch):
        async with store.transaction() as tx:
            for meta in metas[first : first + batch]:
                tx.messages.add(meta)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def _pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))]


async def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="open questions (each with a pending nudge)")
    parser.add_argument("--queries", type=int, default=2_000, help="due() calls to time")
    parser.add_argument("--messages", type=int, default=200_000, help="messages for the flush throughput figure")
    parser.add_argument("--batch", type=int, default=2_000, help="rows per transaction (the replay's batch size)")
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a temporary one, deleted after)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await migrate(url)
        engine = make_engine(url)
        store = SqlStore(engine)
        try:
            print(f"loading {args.rows:,} open questions + {args.rows:,} pending nudges into {path} ...")
            seconds = await load(store, args.rows, 50_000)
            rate = 2 * args.rows / seconds
            print(f"load: {seconds:.1f} s, {rate:,.0f} rows/s (questions and nudges, Core executemany)")

            plan = await explain_due(store, T0 + SPAN / 2)
            print("EXPLAIN QUERY PLAN due(before, 100):")
            for line in plan:
                print(f"  {line}")
            indexed = any("USING INDEX ix_nudges_state_due" in line for line in plan) and not any(
                line.startswith("SCAN") or "TEMP B-TREE" in line for line in plan
            )

            inside, own = await time_due(store, args.queries, random.Random(7))
            mean = statistics.fmean(inside)
            print(
                f"due(before, limit=100) over {len(inside):,} queries: mean {mean:.3f} ms, "
                f"p50 {_pct(inside, 0.5):.3f} ms, p99 {_pct(inside, 0.99):.3f} ms, max {max(inside):.3f} ms"
            )
            print(
                f"  with its own transaction (BEGIN IMMEDIATE..COMMIT), {len(own):,} queries: "
                f"mean {statistics.fmean(own):.3f} ms, p99 {_pct(own, 0.99):.3f} ms"
            )

            per_wall, per_cpu = await message_flush(store, args.messages, args.batch)
            print(
                f"MessageRepo.add flush, {args.messages:,} messages in transactions of {args.batch:,}: "
                f"{per_wall:,.0f} rows/s wall, {per_cpu:,.0f} rows per CPU second"
            )
        finally:
            await engine.dispose()

    ok = indexed and mean <= TARGET_MS
    print(f"index range: {'yes' if indexed else 'NO'}; target {TARGET_MS} ms/query: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
