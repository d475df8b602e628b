"""Running test code in several threads at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List


def in_threads(n_threads: int, work: Callable[[int], Any]) -> List[Any]:
    """Runs work(thread_index) in n_threads threads released together; re-raises errors."""
    barrier = threading.Barrier(n_threads)

    def start(i: int) -> Any:
        barrier.wait(timeout=60)
        return work(i)

    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(start, range(n_threads)))
