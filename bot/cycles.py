"""Pausing Python's cyclic garbage collector around a replay of history.

A replay keeps hundreds of thousands of objects alive (open questions, windows, timers) and makes next to no
reference cycles: measured, about 5 per million events in memory (`lien report`) and a few thousand, mostly from
start-up, per 100,000 events with the database (`lien simulate`). With the collector on, every collection walks
the kept objects again: a quarter of a report's time, a sixth of a simulation's, growing with the open state.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off; reference counting still frees everything acyclic."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # The replay's objects go straight to the oldest generation (`freeze` then `unfreeze` moves them there
            # without a look): left young, every one of them would be walked by the next collection, and again as
            # they aged (a third of a second per 200,000 events). Cycles among them are still collected later.
            gc.freeze()
            gc.unfreeze()
            gc.enable()
