"""Timing shared by the benchmark scripts (run as `python benchmarks/<script>.py`: this folder is on sys.path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time in seconds of `fn()` over `repeats` calls, after one warm-up call; `sync` waits for the
    device (e.g. `torch.cuda.synchronize`) so asynchronous work is counted."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
