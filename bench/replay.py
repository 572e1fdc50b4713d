"""Replay throughput and peak memory of `lien simulate` with persistence on SQLite, beside raw sqlite3.

Both rates are measured in the same run on the same machine, so their ratio is what to compare.
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.generate import write


def raw_sqlite_rate(path: Path, n: int) -> float:
    """Rows/s of a bare sqlite3 executemany of `n` minimal message rows (WAL, one transaction)."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE m (community TEXT, id TEXT, room TEXT, author TEXT, ts TEXT, PRIMARY KEY (community, id))"
    )
    rows = (("bench", f"e{i}", f"r{i % 50}", f"u{i % 2000}", "2026-01-05T09:00:00Z") for i in range(n))
    start = time.perf_counter()
    with con:
        con.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?)", rows)
    elapsed = time.perf_counter() - start
    con.close()
    return n / elapsed


def simulate_run(events: Path, workdir: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, summary line) of `lien simulate` over `events` in a child process."""
    out = workdir / "actions.jsonl"
    cmd = [sys.executable, "-m", "bot", "simulate", str(events), "--out", str(out), "--db", str(workdir / "sim.db")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb < before:
        peak_kb = before
    with out.open("rb") as f:
        f.seek(max(out.stat().st_size - 4096, 0))
        summary = f.read().decode("utf-8", "replace").strip().splitlines()[-1]
    return elapsed, peak_kb / 1024, summary


def run(n: int, workdir: Path) -> dict[str, float]:
    events = write(workdir / "events.jsonl", n)
    elapsed, rss, summary = simulate_run(events, workdir)
    raw = raw_sqlite_rate(workdir / "raw.db", n)
    rate = n / elapsed
    print(f"replay: {n:,} events in {elapsed:.1f} s = {rate:,.0f} events/s (target >= 50,000)")
    print(f"raw sqlite3 executemany, same run: {raw:,.0f} rows/s; lien/raw ratio = {rate / raw:.3f}")
    print(f"peak RSS of the replay: {rss:.0f} MB (target <= 300 MB)")
    print(f"summary: {summary}")
    return {"events_per_s": rate, "raw_rows_per_s": raw, "ratio": rate / raw, "peak_rss_mb": rss}
