"""Resident memory of this process, now and at its peak, for the benchmarks' figures.

The peak is Linux's VmHWM, the high-water mark of this process's own address space. `getrusage`'s ru_maxrss is not
used: after fork and exec a child inherits its parent's high-water mark, so a benchmark started from a big
`python -m bench` process would report the parent's memory as its own.
"""

from __future__ import annotations

import os
import resource


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (VmHWM; elsewhere than Linux, ru_maxrss)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def rss_mb() -> float:
    """This process's resident memory now in MB (Linux; elsewhere, the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()
