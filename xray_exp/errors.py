"""Errors a user can act on: the message names the file or key and the fix."""


class XrayExpError(Exception):
    """Base class: caught by the entry points, printed without a traceback, non-zero exit."""

    exit_code = 2


class ConfigError(XrayExpError):
    """A config value that composes but cannot work (unknown metric, forbidden override, ...)."""


class DatasetError(XrayExpError):
    """The dataset is missing, empty or has broken images/labels."""


class ModelError(XrayExpError):
    """Unknown model, missing weights file, registry model not found."""
