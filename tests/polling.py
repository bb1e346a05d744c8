"""Waiting in tests: poll a condition until it holds or a deadline passes, never a bare sleep.

from polling import wait_until
wait_until(lambda: path.exists(), timeout=30, what="the checkpoint")           # returns the truthy value
wait_until(lambda: "ready" in log.read_text(), 60, "the ready line", alive=proc)  # fails early if proc exits
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05, alive: subprocess.Popen | None = None
) -> T:
    """Call `condition` every `interval` s until it returns something truthy (returned); AssertionError naming
    `what` after `timeout` s, or as soon as the process `alive` has exited without the condition holding."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {alive.returncode} before it happened")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not there after {timeout} s")
        time.sleep(interval)
