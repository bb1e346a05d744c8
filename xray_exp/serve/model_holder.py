"""The model the service answers with, swapped whole on reload (POST /reload, a finished training job).

holder = ModelHolder(settings, detector, info); holder.load()     # settings.model: a file or models:/ URI
detector, info = holder.current                                  # one consistent pair per request
"""

from __future__ import annotations

import logging
import threading

from xray_exp.serve.model_source import ModelInfo, ModelUnavailable, ServedDetector, load_detector
from xray_exp.serve.settings import ServeSettings

log = logging.getLogger("xray_exp.serve.app")


class ModelHolder:
    """The served model; swapped whole on reload so a request never sees half of two models."""

    def __init__(self, settings: ServeSettings, detector: ServedDetector | None, info: ModelInfo | None):
        self.settings = settings
        self.current: tuple[ServedDetector, ModelInfo] | None = (detector, info) if detector and info else None
        self.detail: str | None = None if self.current else "no model configured (set XRAY_SERVE_MODEL)"
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load settings.model: a missing local file raises; an unavailable registry leaves no model."""
        spec = self.settings.model
        if not spec:
            return
        with self._lock:
            try:
                self.current = load_detector(
                    spec,
                    self.settings.tracking_uri,
                    self.settings.model_alias,
                    self.settings.device,
                    self.settings.threads,
                )
                self.detail = None
            except ModelUnavailable as exc:
                log.warning("no model loaded: %s", exc)
                self.detail = str(exc)
