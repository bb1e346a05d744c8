"""Decoding and inference off the event loop: a fixed set of threads, a bounded queue, a time limit.

    pool = WorkerPool(workers=2, queue_size=8, timeout_s=30)
    result = await pool.run(work, arg)     # PoolBusy when workers + queue are taken, PoolTimeout past the limit

A request that times out gets its answer (504) at the limit; its thread finishes the bounded work it is
doing (every decode step has byte limits and checks the deadline where it loops) and keeps its slot until
then, so timed-out requests cannot pile up more work than workers + queue_size. A request still waiting in
the queue when its time is up is cancelled without running.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor


class PoolBusy(Exception):
    """Every worker is busy and the queue is full."""


class PoolTimeout(Exception):
    """The work did not finish within the time limit."""


class WorkerPool:
    def __init__(self, workers: int, queue_size: int, timeout_s: float):
        self.workers, self.queue_size, self.timeout_s = workers, queue_size, timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")
        self._lock = threading.Lock()
        self._admitted = 0  # running or queued

    @property
    def admitted(self) -> int:
        return self._admitted

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, fn, *args):
        with self._lock:
            if self._admitted >= self.workers + self.queue_size:
                raise PoolBusy(
                    f"server busy: {self.workers} workers and a queue of {self.queue_size} are taken"
                )
            self._admitted += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError as exc:
            future.cancel()  # only succeeds while it is still queued
            raise PoolTimeout(f"decoding and inference took longer than {self.timeout_s:g} s") from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
