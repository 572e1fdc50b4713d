"""Time and peak memory of `lien report EVENTS` on a generated history: the replay and the page, measured apart.

The report runs in a child process (so its peak RSS is its own), composed as `lien report EVENTS --out FILE`
composes it: read the events, replay them in memory (`storage.export.replay_history`: the question tracker and
the engine's help edges, no nudges, no database), build the page. Reading and parsing the file alone is timed
after, in the same child, to split the replay's time. Targets: the whole report in 60 s or less, peak RSS 500 MB
or less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.generate import write
from bench.memory import peak_rss_mb

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 500.0


async def _child(events: Path, out: Path) -> dict[str, float]:
    from adapters.jsonl import read_events
    from adapters.report_html import NameBook, ReportOptions, new_salt, write_report
    from bot.config import Settings
    from storage.export import replay_history

    names = NameBook()
    reader = read_events(events)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        questions, edges = await replay_history(names.watch(reader), Settings())
        t1, c1 = time.perf_counter(), time.process_time()
    finally:
        reader.close()
    peak_after_replay = peak_rss_mb()
    size = write_report(out, questions, edges, ReportOptions(salt=new_salt(), generated=datetime.now(UTC),
                                                             source=events.name, names=names.names))
    t2, c2 = time.perf_counter(), time.process_time()
    peak_after_build = peak_rss_mb()
    reader = read_events(events)
    try:
        count = sum(1 for _ in reader)
    finally:
        reader.close()
    c3 = time.process_time()
    return {"replay_s": t1 - t0, "build_s": t2 - t1, "replay_cpu_s": c1 - c0, "build_cpu_s": c2 - c1,
            "parse_cpu_s": c3 - c2, "events": count, "questions": len(questions), "edges": len(edges),
            "stale": sum(1 for q in questions if q.state.value == "stale"), "html_kib": size / 1024,
            "peak_after_replay_mb": peak_after_replay, "peak_after_build_mb": peak_after_build}


def run(n: int, workdir: Path) -> dict[str, float]:
    """Generate `n` events, report on them in a child process, print and return the figures."""
    start = time.perf_counter()
    events = write(workdir / "events.jsonl", n)
    print(f"generated {n:,} events in {time.perf_counter() - start:.1f} s")
    out = workdir / "report.html"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.report_bench", "--child", str(events), str(out)],
                          check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    f = json.loads(done.stdout.strip().splitlines()[-1])
    peak_mb = f["peak_after_build_mb"]  # the child's own high-water mark once the page is written
    f.update(peak_rss_mb=peak_mb)
    total = f["replay_s"] + f["build_s"]
    cpu = f["replay_cpu_s"] + f["build_cpu_s"]
    print(f"report of {n:,} events: {total:.1f} s (target <= {TARGET_SECONDS:.0f} s, "
          f"{total / TARGET_SECONDS:.2f}x the target): the in-memory replay {f['replay_s']:.1f} s, "
          f"building the page {f['build_s']:.1f} s (child process {wall:.1f} s with start-up and the parse-only pass)")
    print(f"CPU time (the machine may be shared): {cpu:.1f} s = replay {f['replay_cpu_s']:.1f} s (of which reading "
          f"and parsing the JSONL {f['parse_cpu_s']:.1f} s, tracking and recording "
          f"{f['replay_cpu_s'] - f['parse_cpu_s']:.1f} s) + page {f['build_cpu_s']:.1f} s")
    print(f"{f['questions']:,.0f} questions ({f['stale']:,.0f} stale), {f['edges']:,.0f} help edges; "
          f"page {f['html_kib']:,.0f} KiB")
    print(f"peak RSS of the report process: {peak_mb:.0f} MB (target <= {TARGET_RSS_MB:.0f} MB, "
          f"{peak_mb / TARGET_RSS_MB:.2f}x the target); high-water mark {f['peak_after_replay_mb']:.0f} MB after the "
          f"replay, {f['peak_after_build_mb']:.0f} MB after the page")
    return f


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.report_bench", description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000, help="events to generate (default 1,000,000)")
    ap.add_argument("--child", nargs=2, metavar=("EVENTS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        figures = asyncio.run(_child(Path(args.child[0]), Path(args.child[1])))
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory(prefix="lien-report-bench-") as tmp:
        run(args.events, Path(tmp))


if __name__ == "__main__":
    main()
