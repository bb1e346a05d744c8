"""The prepare pipeline's process pool: conversions in parallel, workers that never outlive the pipeline.

    with Workers(4) as pool:
        results = list(pool.unordered(convert_image, tasks))

Killing the process that runs `python -m xray_exp.prepare` (even `kill -9`) ends its workers too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the worker ends when the process that started the pool dies, even by SIGKILL
    (no orphans converting on). Linux: the kernel's parent-death signal; elsewhere a watchdog thread."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before the signal was armed
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


class Workers:
    """A process pool, or plain in-process calls for one worker (no pool start-up, easy debugging).
    Pool workers die with the process that started them."""

    def __init__(self, count: int):
        self.count = count
        self.executor = (
            ProcessPoolExecutor(count, initializer=die_with_parent, initargs=(os.getpid(),)) if count > 1 else None
        )

    def map(self, fn: Callable, items: list) -> Iterator:
        if self.executor is None:
            return map(fn, items)
        return self.executor.map(fn, items, chunksize=max(1, min(64, len(items) // (4 * self.count))))

    def unordered(self, fn: Callable, items: Iterable) -> Iterator:
        """Results as they finish; at most 4 tasks per worker in flight, so a strict failure stops early."""
        if self.executor is None:
            yield from map(fn, items)
            return
        pending, items = set(), iter(items)
        while True:
            for item in items:
                pending.add(self.executor.submit(fn, item))
                if len(pending) >= 4 * self.count:
                    break
            if not pending:
                return
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
