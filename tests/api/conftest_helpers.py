"""Running real concurrent clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def parallel(work: Callable[[int], list[T]], workers: int) -> list[list[T]]:
    """Start ``workers`` threads at the same moment and collect what each returns."""
    start = threading.Barrier(workers)

    def run(n: int) -> list[T]:
        start.wait()
        return work(n)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(workers)))
