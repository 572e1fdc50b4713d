"""`python -m bench`: run every benchmark and print figures and ratios measured in this one run."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import replay


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description="lien benchmarks")
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the replay benchmark")
    ap.add_argument("--only", choices=["replay", "due", "nudges", "import", "report", "guard", "loopback"],
                    help="run one benchmark")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # in order with the children's output
    with tempfile.TemporaryDirectory(prefix="lien-bench-") as tmp:
        if args.only in (None, "replay"):
            print("== replay throughput (lien simulate, persistence on SQLite)")
            replay.run(args.events, Path(tmp))
        if args.only in (None, "due"):
            print("== finding due work among 1,000,000 open questions")
            from bench.bench_due_query import main as due_main

            asyncio.run(due_main([]))
        if args.only in (None, "report"):
            print("== lien report over the replay's events (import + report targets: <= 60 s, <= 500 MB)")
            from bench import report_bench

            report_bench.run(args.events, Path(tmp))
        if args.only in (None, "nudges"):
            print("== nudge planning for 1,000,000 open questions; helper ranking with 1,000,000 help edges")
            from bench.nudge_bench import main as nudge_main

            asyncio.run(nudge_main([]))
        if args.only in (None, "guard"):
            print("== guard under load: 20,000 events/s offered for 30 s, through the guard and the engine", flush=True)
            # A child process, so that its peak RSS is its own, not the earlier benchmarks'.
            subprocess.run([sys.executable, "-m", "bench.guard_load"], check=False,
                           cwd=Path(__file__).resolve().parent.parent)
        if args.only in (None, "loopback"):
            print("== loopback load: 20,000 events/s for 30 s over TCP in real time, through the engine on SQLite",
                  flush=True)
            # A child process, so that its peak RSS is the receiver's alone, not the earlier benchmarks'.
            subprocess.run([sys.executable, "-m", "bench.loopback_load"], check=False,
                           cwd=Path(__file__).resolve().parent.parent)
        if args.only in (None, "import"):
            print("== lien import discord (DiscordChatExporter export, 1,000,000 messages)")
            from bench.import_bench import main as import_main

            import_main([])


if __name__ == "__main__":
    main()
