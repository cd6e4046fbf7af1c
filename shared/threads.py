"""The threads one job may use in this process: sized once per worker process, shared by every stage that can
overlap (detection's model lanes, turntable frames), so N processes of N threads never oversubscribe the machine.

Work handed to the pool must release the GIL to gain anything (MediaPipe's graphs, onnxruntime, the numba kernels
do). Nothing running on the pool may wait on the pool: with every thread waiting, nothing would run.
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_threads: int | None = None          # None: configure_threads(0) on first use


def configure_threads(threads: int, processes: int = 1) -> int:
    """How many threads a job uses in this process: ``threads``, or with 0 the CPUs this process may use divided by
    the worker ``processes`` sharing them (at least 1). Returns the number chosen."""
    global _threads
    if threads <= 0:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = cpus // max(1, processes)
    _threads = max(1, threads)
    return _threads


def job_threads() -> int:
    return _threads if _threads is not None else configure_threads(0)


@lru_cache(maxsize=1)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="face3d-job")


# A forked child (a Celery pool process) inherits the pool object but none of its threads: work handed to it would
# wait forever. The child starts a pool of its own on first use.
os.register_at_fork(after_in_child=_pool.cache_clear)


def parallel_imap(function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``function(item)`` for each item, in order, on the bounded pool (inline with one thread)."""
    items = list(items)
    threads = job_threads()
    if threads == 1 or len(items) < 2:
        return (function(item) for item in items)
    return _pool(threads).map(function, items)


def in_background(function: Callable[[], R]) -> Callable[[], R]:
    """Start ``function`` on the pool (or, with one thread, run it when its result is asked for); returns the
    call that gives its result (or raises its exception)."""
    if job_threads() == 1:
        return function
    future: Future[R] = _pool(job_threads()).submit(function)
    return future.result
