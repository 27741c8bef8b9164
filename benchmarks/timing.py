"""Timing shared by the benchmarks: the best of a few runs, as every figure here is quoted."""

import time
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def best_time(function: Callable[[], Result], repeats: int) -> tuple[float, Result]:
    """The fastest of ``repeats`` (≥ 1) calls, the least disturbed by other work, and its result."""
    start = time.perf_counter()
    result = function()
    best = time.perf_counter() - start
    for _ in range(repeats - 1):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result
