"""Load test over loopback TCP in real time: a sender process offers JSON lines, lien's engine persists them.

    python -m bench.loopback_load [--rate 20000] [--seconds 30] [--batch 2000] [--budget SECONDS]

The sender (this module with `--send`, a child process) makes `bench.guard_load`'s traffic mix (members typing
in bursts, questions and replies, joins, a raid, spam bursts) as spec JSON lines before its clock starts, then
writes them to a TCP socket on 127.0.0.1 at `rate` events per second of wall time (event i is due at i / rate,
sent in ticks of about 1 ms), each event stamped with the wall time it is sent. A blocking socket: when lien
falls behind, TCP backpressure slows the sender, and its achieved rate says so.

The receiver (this process) reads the socket with a bounded asyncio stream (reading pauses when its buffer is
full: backpressure, not a growing queue), parses each line with lien's own parser (`adapters.jsonl`), and runs
the events through the `Engine` with the live runtime's ports (system clock, APScheduler, a migrated SQLite file),
one transaction per read of up to `batch` events (`--batch 1`: one per event, as `lien run` commits). An event
counts as processed once its transaction committed. Each guard decision (`Guard.on_message`/`on_join`, inside the
engine) is timed. Prints the target and achieved offered rates, events sent / received / processed / lost, the
messages table's row count against what the engine stores, throughput, guard latency and lag percentiles, the
receiver's peak RSS, and whom the guard flagged. Exits 1 if any event is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import logging
import math
import resource
import socket
import sqlite3
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.jsonl import dumps_line, event_to_dict, format_ts, parse_event
from bench.guard_load import SPAM_KINDS, Plan, generate, note_flags, timed
from bench.memory import peak_rss_mb, rss_mb
from bot.actions import Action
from bot.errors import InputError
from bot.events import Event, MemberJoin, Message

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: The `ts` field as pre-generated; replaced by the wall time of sending, so lines are made before the clock starts.
_TS_MARK = "<ts>"
_TS_FIELD = b'"ts":"<ts>"'
#: Most events in one `sendall`: a sender that fell behind catches up in bounded writes.
_MAX_CHUNK = 2000
#: The receiver's stream buffer limit: reading from the socket pauses above twice this (asyncio's flow control).
_STREAM_LIMIT = 256 * 1024
#: Most bytes taken from the stream buffer at once (it never holds more than about 2 * _STREAM_LIMIT).
_READ = 1 << 20
#: Kernel socket buffers on both ends (Linux doubles them): fixed, so that what is in flight between the two
#: processes does not depend on the kernel's autotuning (several MB by default, seconds of traffic).
_SOCKET_BUFFER = 256 * 1024


# -- sender ----------------------------------------------------------------------------------------------------


def _prepare(rate: int, seconds: float, seed: int) -> tuple[bytearray, array, list[int], Plan]:
    """All lines of the stream in one buffer (with a `ts` mark), their start offsets, the indices of joins."""
    plan = Plan()
    blob = bytearray()
    starts = array("q", [0])
    joins: list[int] = []
    for i, event in enumerate(generate(rate, seconds, plan, seed)):
        d = event_to_dict(event)
        d["ts"] = _TS_MARK
        blob += dumps_line(d).encode("utf-8")
        starts.append(len(blob))
        if not isinstance(event, Message):
            joins.append(i)
    return blob, starts, joins, plan


def send(port: int, rate: int, seconds: float, budget: float, seed: int) -> dict[str, Any]:
    """Offer the stream on `port` in real time; returns what was sent and how fast."""
    blob, starts, joins, plan = _prepare(rate, seconds, seed)
    total = len(starts) - 1
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((HOST, port))
    sent = 0
    in_send = 0.0
    behind = 0.0
    stopped = False
    t0 = time.perf_counter()
    try:
        while sent < total:
            now = time.perf_counter() - t0
            if now > budget:
                stopped = True
                break
            due = min(total, int(now * rate) + 1, sent + _MAX_CHUNK)
            if due <= sent:
                # Ticks of at least 1 ms: a syscall per event would take the CPU the receiver needs.
                time.sleep(max(0.001, sent / rate - now))
                continue
            behind = max(behind, now - sent / rate)
            stamp = b'"ts":"' + format_ts(datetime.now(UTC)).encode() + b'"'
            chunk = blob[starts[sent] : starts[due]].replace(_TS_FIELD, stamp)
            s0 = time.perf_counter()
            sock.sendall(chunk)  # blocks while the receiver's buffers are full: TCP backpressure
            in_send += time.perf_counter() - s0
            sent = due
        elapsed = time.perf_counter() - t0
        sock.shutdown(socket.SHUT_WR)
    finally:
        sock.close()
    joins_sent = bisect.bisect_left(joins, sent)
    return {
        "planned": total, "sent": sent, "messages_sent": sent - joins_sent, "joins_sent": joins_sent,
        "elapsed": elapsed, "in_send": in_send, "max_behind": behind, "stopped_early": stopped,
        "bytes": starts[sent], "spammers": plan.spammers, "raiders": sorted(plan.raiders),
        "peak_rss_mb": peak_rss_mb(),
    }


# -- measuring -------------------------------------------------------------------------------------------------


class Hist:
    """Durations in ns in 1%-wide logarithmic buckets: percentiles within 1%, in memory that does not grow."""

    _BUCKETS = 3000  # e^(3000/100) ns is far beyond any duration measured here

    def __init__(self) -> None:
        self.counts = array("q", bytes(8 * self._BUCKETS))
        self.n = 0
        self.max = 0

    def add(self, ns: int) -> None:
        self.counts[min(self._BUCKETS - 1, int(math.log(ns) * 100)) if ns > 1 else 0] += 1
        self.n += 1
        if ns > self.max:
            self.max = ns

    def pct(self, p: float) -> float:
        """The `p` quantile in ns (the upper edge of its bucket, never above the largest sample)."""
        rank = max(1, math.ceil(p * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(math.exp((i + 1) / 100), self.max)
        return float(self.max)

    def line(self, unit: float, name: str) -> str:
        if not self.n:
            return "no samples"
        return (f"p50 {self.pct(0.5) / unit:,.1f} {name}, p99 {self.pct(0.99) / unit:,.1f} {name}, "
                f"p99.9 {self.pct(0.999) / unit:,.1f} {name}, max {self.max / unit:,.1f} {name}")


@dataclass(slots=True)
class Receiver:
    """How the receiving side works (`rate`, `batch`, what the engine stores), and what it counted and measured."""

    rate: int
    batch: int
    self_ids: tuple[str, ...]
    prefix: str
    received: int = 0
    bad: int = 0
    first_bad: str = ""
    processed: int = 0
    failed: int = 0
    messages: int = 0
    expected_rows: int = 0
    transactions: int = 0
    actions: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    guard_wall: Hist = field(default_factory=Hist)
    guard_cpu: Hist = field(default_factory=Hist)
    lag_recv: Hist = field(default_factory=Hist)
    lag_sent: Hist = field(default_factory=Hist)
    lag_due: Hist = field(default_factory=Hist)
    #: Wall time the first event was sent: event i was due to be offered `i / rate` seconds later.
    schedule0: float | None = None
    flagged: dict[str, set[str]] = field(default_factory=dict)
    #: Spammers and raiders whose messages came (a sender stopped by its budget may not have sent them all).
    authors: set[str] = field(default_factory=set)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)


def _time_guard(guard: Any, r: Receiver) -> None:
    """Time every decision of the engine's own guard (one guard, as in `lien run`), noting spam flags."""
    on_message: Callable[..., list[Action]] = guard.on_message
    on_join: Callable[..., list[Action]] = guard.on_join
    wall, cpu, flagged = r.guard_wall, r.guard_cpu, r.flagged

    def timed_message(m: Message, *, is_moderator: bool = False, now: datetime) -> list[Action]:
        actions, spent, used = timed(on_message, m, is_moderator=is_moderator, now=now)
        wall.add(spent)
        cpu.add(used)
        note_flags(flagged, m.author, actions)
        return actions

    def timed_join(j: MemberJoin, now: datetime) -> list[Action]:
        actions, spent, used = timed(on_join, j, now)
        wall.add(spent)
        cpu.add(used)
        return actions

    guard.on_message = timed_message  # instance attributes: the engine calls these in its pipeline
    guard.on_join = timed_join


# -- receiver --------------------------------------------------------------------------------------------------


def _parse(lines: list[bytes], r: Receiver) -> list[Event]:
    events: list[Event] = []
    loads = json.loads
    for raw in lines:
        r.received += 1
        try:
            obj = loads(raw)
            event = parse_event(obj, "") if type(obj) is dict else None
        except (ValueError, InputError) as exc:
            event, problem = None, str(exc)
        else:
            problem = "not a known event object"
        if event is None:
            r.bad += 1
            r.first_bad = r.first_bad or f"line {r.received}: {problem}"
            continue
        events.append(event)
    return events


async def _process(engine: Any, events: list[Event], recv_at: float, lock: asyncio.Lock, r: Receiver) -> None:
    """Events in transactions of up to `r.batch`; an event counts as processed once its transaction committed."""
    self_ids, prefix = r.self_ids, r.prefix
    if r.schedule0 is None and events:
        r.schedule0 = events[0].ts.timestamp()
    for i in range(0, len(events), r.batch):
        part = events[i : i + r.batch]
        index = r.processed + r.failed  # TCP keeps the order: the stream position of part[0]
        actions = 0
        try:
            async with lock, engine.batch(len(part)):
                for event in part:
                    actions += len(await engine.handle(event))
        except Exception:
            logging.getLogger(__name__).exception("a transaction of %d events failed", len(part))
            r.failed += len(part)
            continue
        done = time.time()
        r.transactions += 1
        r.processed += len(part)
        r.actions += actions
        r.last_at = done
        lag_recv_ns = int((done - recv_at) * 1e9)
        due = r.schedule0 + index / r.rate  # type: ignore[operator]
        for event in part:
            r.lag_recv.add(lag_recv_ns)
            r.lag_sent.add(int((done - event.ts.timestamp()) * 1e9))
            r.lag_due.add(int((done - due) * 1e9))
            due += 1 / r.rate
            if isinstance(event, Message):
                r.messages += 1
                # The engine stores every message but its own and commands (`Engine._on_message`).
                text = event.text
                command = not event.is_bot and text.startswith(prefix) and text[len(prefix):len(prefix) + 1] in (
                    "", " ", "\t")
                r.expected_rows += event.author not in self_ids and not command
                if not event.author.startswith("u"):
                    r.authors.add(event.author)


async def receive(args: argparse.Namespace, workdir: Path) -> tuple[Receiver, dict[str, Any], dict[str, Any]]:
    """Serve one sender connection through the engine; returns the receiver's counts, the sender's report, state."""
    from adapters.scheduler import ApScheduler
    from bot.clock import SystemClock
    from bot.config import Settings
    from bot.engine import Engine
    from storage.db import make_engine
    from storage.migrate import upgrade
    from storage.repositories import SqlStore

    settings = Settings()
    r = Receiver(args.rate, args.batch, settings.lien.self_ids, settings.lien.command_prefix)
    started = time.perf_counter()
    r.rss.append((0.0, rss_mb()))
    db = make_engine(f"sqlite+aiosqlite:///{workdir / 'loopback.db'}")
    await upgrade(db)
    lock = asyncio.Lock()  # a timer's job and a transaction of events never interleave
    holder: list[Engine] = []

    async def on_due(key: str) -> None:
        async with lock:
            await holder[0].fire(key)

    clock = SystemClock()
    scheduler = ApScheduler(on_due, clock)
    engine = Engine(settings, SqlStore(db), clock, scheduler)  # type: ignore[arg-type]
    holder.append(engine)
    _time_guard(engine.guard, r)
    await engine.start()
    scheduler.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    finished = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rest = b""
        try:
            while data := await reader.read(_READ):
                recv_at = time.time()
                r.first_at = r.first_at or recv_at
                end = data.rfind(b"\n")
                if end < 0:
                    rest += data
                    continue
                lines = (rest + data[:end]).split(b"\n")
                rest = data[end + 1 :]
                await _process(engine, _parse(lines, r), recv_at, lock, r)
            if rest:
                r.bad += 1
                r.first_bad = r.first_bad or "the stream ended in the middle of a line"
        finally:
            writer.close()
            finished.set()

    async def sample_rss() -> None:
        while True:
            await asyncio.sleep(0.5)
            r.rss.append((time.perf_counter() - started, rss_mb()))

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)  # before listen: accepted sockets get it
    listener.bind((HOST, 0))
    port = listener.getsockname()[1]
    server = await asyncio.start_server(serve, sock=listener, limit=_STREAM_LIMIT)
    sampler = asyncio.create_task(sample_rss())
    sender = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loopback_load", "--send", "--port", str(port), "--rate", str(args.rate),
        "--seconds", str(args.seconds), "--budget", str(args.budget), "--seed", str(args.seed),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await sender.communicate()
    if sender.returncode != 0:
        raise SystemExit(f"the sender failed (exit status {sender.returncode})")
    await finished.wait()
    server.close()
    await server.wait_closed()
    sampler.cancel()
    r.rss.append((time.perf_counter() - started, rss_mb()))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    state = {
        "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        "open_questions": sum(1 for _ in engine.tracker.open_questions()),
        "timers": len(scheduler.pending()),
        "guard": engine.guard.sizes(),
        "raids": engine.guard.stats["raid"],
    }
    scheduler.shutdown()
    await db.dispose()
    return r, json.loads(out), state


def _rows(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        con.close()


def report(args: argparse.Namespace, r: Receiver, s: dict[str, Any], state: dict[str, Any], rows: int) -> bool:
    """Print the figures; True when no event was lost and the table holds every stored message."""
    lost = s["sent"] - r.processed
    print(f"offered: target {args.rate:,} events/s for {args.seconds:g} s = {s['planned']:,} events, spec JSON lines "
          f"over TCP on {HOST}; up to {args.batch:,} events per transaction")
    print(f"sender: {s['sent']:,} events ({s['messages_sent']:,} messages, {s['joins_sent']:,} joins, "
          f"{s['bytes'] / 2**20:,.0f} MB) in {s['elapsed']:.1f} s = {s['sent'] / s['elapsed']:,.0f} events/s achieved"
          f"{'' if s['sent'] / s['elapsed'] >= args.rate * 0.99 else ' (BELOW the target: TCP backpressure)'}; "
          f"time blocked in send {s['in_send']:.1f} s, at most {s['max_behind']:.2f} s behind schedule")
    if s["stopped_early"]:
        print(f"  stopped offering at the {args.budget:g} s budget: {s['sent']:,} of {s['planned']:,} events sent")
    verdict = "none lost" if lost == 0 and not r.bad and not r.failed else "LOST EVENTS"
    print(f"events: sent {s['sent']:,}, received {r.received:,}, processed {r.processed:,} (committed to SQLite), "
          f"lost {lost:,}; bad lines {r.bad}{' (' + r.first_bad + ')' if r.first_bad else ''}, in failed "
          f"transactions {r.failed} - {verdict}")
    rows_ok = rows == r.expected_rows and r.messages == s["messages_sent"]
    print(f"messages table: {rows:,} rows for {s['messages_sent']:,} messages sent, {r.expected_rows:,} of them "
          f"stored by the engine (all but lien's own and commands) - {'match' if rows_ok else 'MISMATCH'}")
    span = max(r.last_at - r.first_at, 1e-9)
    print(f"receiver: {r.processed / span:,.0f} events/s processed (first line received to last commit "
          f"{span:.1f} s); {r.transactions:,} transactions of {r.processed / max(r.transactions, 1):,.0f} events "
          f"on average; CPU {state['cpu']:.1f} s = {state['cpu'] / span:.0%} of a core; actions {r.actions:,}")
    print(f"guard decision latency (each on_message/on_join in the engine), wall: {r.guard_wall.line(1e3, 'us')}; "
          f"CPU: {r.guard_cpu.line(1e3, 'us')}")
    print(f"lag, line received -> committed: {r.lag_recv.line(1e6, 'ms')}")
    print(f"lag, send timestamp -> committed: {r.lag_sent.line(1e6, 'ms')}")
    print(f"lag, time due on the {args.rate:,}/s schedule -> committed (what a source that does not slow down "
          f"would see): {r.lag_due.line(1e6, 'ms')}")
    peak = peak_rss_mb()
    samples = r.rss
    marks = [samples[min(len(samples) - 1, round(f * (len(samples) - 1)))] for f in (0, 0.25, 0.5, 0.75, 1)]
    print(f"peak RSS of the receiver: {peak:.0f} MB; RSS over the run: "
          f"{', '.join(f'{mb:.0f} MB at {t:.1f} s' for t, mb in marks)}")
    print(f"  state held at the end: {state['open_questions']:,} open questions, {state['timers']:,} armed timers, "
          f"guard {state['guard']}; sender peak RSS {s['peak_rss_mb']:.0f} MB")
    spammers = {a: k for a, k in s["spammers"].items() if a in r.authors}
    by_kind = {k: sum(1 for a, kk in spammers.items() if kk == k and a in r.flagged) for k in SPAM_KINDS}
    totals = {k: sum(1 for kk in spammers.values() if kk == k) for k in SPAM_KINDS}
    raiders = [a for a in s["raiders"] if a in r.authors]
    regular = sorted(a for a in r.flagged if a.startswith("u"))
    achieved = s["sent"] / s["elapsed"]
    if achieved < args.rate * 0.99:
        # The guard's windows use each message's timestamp: a slowed sender spreads each author's lines out.
        print(f"  note: backpressure stretched the stream {args.rate / achieved:.1f} times in time, so each author's "
              f"lines are further apart than generated; the guard judges them by their timestamps")
    print(f"spammers flagged: {sum(by_kind.values())}/{len(spammers)} with messages offered "
          f"({', '.join(f'{k} {by_kind[k]}/{totals[k]}' for k in SPAM_KINDS)}); raid mode entered {state['raids']} "
          f"time(s), raiders flagged {sum(1 for a in raiders if a in r.flagged)}/{len(raiders)}; regular members "
          f"flagged: {len(regular)}{' ' + str(regular[:10]) if regular else ''}")
    return verdict == "none lost" and rows_ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loopback_load", description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=20_000, help="events offered per second of wall time")
    ap.add_argument("--seconds", type=float, default=30, help="seconds of traffic at that rate")
    ap.add_argument("--batch", type=int, default=2000, help="most events per transaction (1: one per event)")
    ap.add_argument("--budget", type=float, help="wall seconds the sender may take (default: 4 * seconds)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--send", action="store_true", help=argparse.SUPPRESS)  # the sender child
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.budget is None:
        args.budget = 4 * args.seconds
    if args.send:
        print(json.dumps(send(args.port, args.rate, args.seconds, args.budget, args.seed)))
        return 0
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lien-loopback-") as tmp:
        r, s, state = asyncio.run(receive(args, Path(tmp)))
        rows = _rows(Path(tmp) / "loopback.db")
    return 0 if report(args, r, s, state, rows) else 1


if __name__ == "__main__":
    sys.exit(main())
