"""Errors a user can act on (the message names the file or key and the fix), and the one place that turns
them into an exit status for every entry point:

    from xray_exp.errors import ConfigError, exit_on_user_error
    with exit_on_user_error():                  # ERROR: <message> on stderr, exit status 2, no traceback
        raise ConfigError("split: 'tst' is not a split; use train, val or test")
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn


class XrayExpError(Exception):
    """Base class: caught by the entry points, printed without a traceback, non-zero exit."""

    exit_code = 2


class ConfigError(XrayExpError):
    """A config value that composes but cannot work (unknown metric, forbidden override, ...)."""


class DatasetError(XrayExpError):
    """The dataset is missing, empty or has broken images/labels."""


class ModelError(XrayExpError):
    """Unknown model, missing weights file, registry model not found."""


def exit_with_errors(messages: list[str], exit_code: int = 2) -> NoReturn:
    """Print each message as `ERROR: <message>` on stderr and end the process with `exit_code`."""
    print("\n".join(f"ERROR: {message}" for message in messages), file=sys.stderr, flush=True)
    sys.exit(exit_code)


@contextmanager
def exit_on_user_error(*, reraise: bool = False, clean_up: Callable[[], None] | None = None) -> Iterator[None]:
    """The entry points' error-to-exit handler: an XrayExpError raised inside is logged, `clean_up` runs
    (e.g. remove an output folder nothing was written to), and the process ends with the error's exit code
    and its message on stderr, without a traceback. `reraise=True` (a Hydra multirun job) raises it instead,
    so the sweeper records the failed job and goes on. Any other exception is a defect: it propagates."""
    try:
        yield
    except XrayExpError as exc:
        logging.getLogger("xray_exp").error("%s", exc)
        if clean_up is not None:
            clean_up()
        if reraise:
            raise
        exit_with_errors([str(exc)], exc.exit_code)
