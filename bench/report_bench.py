"""Time and peak memory of `lien report` on a generated history: the replay and the page building, measured apart.

The report runs in a child process (so its peak RSS is its own), composed as `lien report EVENTS --out FILE`
composes it: replay on a temporary SQLite database, read questions and help edges back, build the page.
Targets: the whole report in 60 s or less, peak RSS 500 MB or less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.generate import write

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 500.0


async def _child(events: Path, out: Path) -> dict[str, float]:
    from adapters.jsonl import read_events
    from adapters.report_html import NameBook, ReportOptions, new_salt, write_report
    from bot.config import Settings
    from storage.db import make_engine
    from storage.export import load_history, replay_into

    names = NameBook()
    reader = read_events(events)
    engine = make_engine(f"sqlite+aiosqlite:///{out.with_suffix('.db')}")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        await replay_into(engine, names.watch(reader), Settings())
        t1, c1 = time.perf_counter(), time.process_time()
        peak_after_replay = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        questions, edges = await load_history(engine)
        t2, c2 = time.perf_counter(), time.process_time()
    finally:
        reader.close()
        await engine.dispose()
    peak_before_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = write_report(out, questions, edges, ReportOptions(salt=new_salt(), generated=datetime.now(UTC),
                                                             source=events.name, names=names.names))
    t3, c3 = time.perf_counter(), time.process_time()
    return {"replay_s": t1 - t0, "load_s": t2 - t1, "build_s": t3 - t2,
            "replay_cpu_s": c1 - c0, "load_cpu_s": c2 - c1, "build_cpu_s": c3 - c2, "questions": len(questions),
            "edges": len(edges), "html_kib": size / 1024, "peak_before_build_mb": peak_before_build,
            "peak_after_replay_mb": peak_after_replay}


def run(n: int, workdir: Path) -> dict[str, float]:
    """Generate `n` events, report on them in a child process, print and return the figures."""
    start = time.perf_counter()
    events = write(workdir / "events.jsonl", n)
    print(f"generated {n:,} events in {time.perf_counter() - start:.1f} s")
    out = workdir / "report.html"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.report_bench", "--child", str(events), str(out)],
                          check=True, capture_output=True, text=True)
    total = time.perf_counter() - start
    peak_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures.update(total_s=total, peak_rss_mb=peak_mb)
    report_s = figures["load_s"] + figures["build_s"]
    print(f"report of {n:,} events: {total:.1f} s in all, of which the replay {figures['replay_s']:.1f} s, "
          f"reading questions and edges back {figures['load_s']:.1f} s, building the page {figures['build_s']:.1f} s")
    print(f"the report itself (read back + build): {report_s:.1f} s (target <= {TARGET_SECONDS:.0f} s); "
          f"replay + report: {figures['replay_s'] + report_s:.1f} s")
    print(f"CPU time (the machine may be shared): replay {figures['replay_cpu_s']:.1f} s, read back "
          f"{figures['load_cpu_s']:.1f} s, build {figures['build_cpu_s']:.1f} s")
    print(f"{figures['questions']:,.0f} questions, {figures['edges']:,.0f} help edges; "
          f"page {figures['html_kib']:,.0f} KiB")
    print(f"peak RSS of the report process: {peak_mb:.0f} MB (target <= {TARGET_RSS_MB:.0f} MB); high-water mark "
          f"{figures['peak_after_replay_mb']:.0f} MB after the replay, {figures['peak_before_build_mb']:.0f} MB after "
          "reading back")
    return figures


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
