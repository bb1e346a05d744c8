"""Decoding and inference off the event loop: a fixed set of threads, a bounded queue, a time limit, and a
separate lane for large decodes.

    pool = WorkerPool(workers=4, queue_size=8, timeout_s=30, large_workers=1, large_queue_size=4)
    result = await pool.run(work, arg)     # PoolBusy when workers + queue are taken, PoolTimeout past the limit
    # inside `work`: return Handoff(finish, args...) to finish in the large lane (its own threads and queue)

A request that times out gets its answer (504) at the limit; its thread finishes the bounded work it is
doing (every decode step has byte limits and checks the deadline where it loops) and keeps its slot until
then, so timed-out requests cannot pile up more work than workers + queue_size. A request still waiting in
the queue when its time is up is cancelled without running.

Large decodes (the upload's header announces many pixel bytes) are handed off by the work function after
the header check: at most `large_workers` of them run at once (default: half the cores), `large_queue_size`
wait, more get PoolBusy. The ordinary threads are free again as soon as they hand off, so small uploads keep
flowing while clients send the largest legal files. The lane's threads keep the normal CPU priority: at nice +5
they lost the CPU while holding the GIL on a busy host and ordinary requests waited for it (docs/security.md).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class PoolBusy(Exception):
    """Every worker is busy and the queue is full."""


class PoolTimeout(Exception):
    """The work did not finish within the time limit."""


@dataclass(frozen=True)
class Handoff:
    """Returned by a work function: run fn(*args) in the large lane and answer with its result."""

    fn: Any
    args: tuple = ()


def default_large_workers() -> int:
    """Half the cores this process may use (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return max(1, cores // 2)


class Lane:
    """A thread pool with a cap on running + queued work."""

    def __init__(self, name: str, workers: int, queue_size: int):
        self.name, self.workers, self.queue_size = name, workers, queue_size
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self.admitted = 0  # running or queued

    def _release(self, _future: Future) -> None:
        with self._lock:
            self.admitted -= 1

    def submit(self, fn, *args) -> Future:
        with self._lock:
            if self.admitted >= self.workers + self.queue_size:
                raise PoolBusy(
                    f"server busy: {self.workers} {self.name} workers and a queue of {self.queue_size} are taken"
                )
            self.admitted += 1
        try:
            future = self.executor.submit(fn, *args)
        except BaseException:
            with self._lock:
                self.admitted -= 1
            raise
        future.add_done_callback(self._release)
        return future


class WorkerPool:
    def __init__(
        self, workers: int, queue_size: int, timeout_s: float, large_workers: int = 1, large_queue_size: int = 4
    ):
        self.workers, self.queue_size, self.timeout_s = workers, queue_size, timeout_s
        self.lane = Lane("predict", workers, queue_size)
        self.large = Lane("large-decode", large_workers, large_queue_size)

    @property
    def admitted(self) -> int:
        return self.lane.admitted

    async def _wait(self, future: Future, deadline: float):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            future.cancel()  # only succeeds while it is still queued
            raise PoolTimeout(f"decoding and inference took longer than {self.timeout_s:g} s") from exc

    async def run(self, fn, *args):
        deadline = time.monotonic() + self.timeout_s
        result = await self._wait(self.lane.submit(fn, *args), deadline)
        if isinstance(result, Handoff):
            result = await self._wait(self.large.submit(result.fn, *result.args), deadline)
        return result

    def shutdown(self) -> None:
        for lane in (self.lane, self.large):
            lane.executor.shutdown(wait=False, cancel_futures=True)
