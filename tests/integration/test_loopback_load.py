"""The loopback load test at a tiny rate: every event sent over TCP is processed and stored, and it says so.

A correctness test of the benchmark's plumbing (sender process, socket, parser, engine, SQLite), not a timing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_loopback_run_loses_nothing_and_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.loopback_load", "--rate", "500", "--seconds", "2"],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    events = re.search(r"events: sent ([\d,]+), received ([\d,]+), processed ([\d,]+) .*lost (\d+)", out)
    assert events is not None, out
    sent, received, processed, lost = (int(g.replace(",", "")) for g in events.groups())
    assert sent >= 1000 and received == processed == sent and lost == 0
    rows = re.search(r"messages table: ([\d,]+) rows for ([\d,]+) messages sent, ([\d,]+) of them stored.* - match",
                     out)
    assert rows is not None, out
    assert rows.group(1) == rows.group(3) and int(rows.group(2).replace(",", "")) >= 1000
    for figure in ("offered: target 500 events/s", "sender:", "events/s achieved", "receiver:",
                   "guard decision latency", "p99", "lag, send timestamp -> committed", "peak RSS of the receiver",
                   "spammers flagged", "regular members flagged:"):
        assert figure in out, (figure, out)
