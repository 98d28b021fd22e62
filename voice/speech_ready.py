"""Whether the hotline's recogniser can serve, for ``/healthz`` and audio turns.

``ivr serve`` listens at once and prepares speech in a background thread: it installs a Chinese
recogniser when none is there (``asr.model_sources.ensure_recogniser``, progress bar on stderr),
then loads it. Until that is done ``/healthz`` answers 503 with the reason; a server that never
prepares (tests, ``create_app`` alone) counts an installed model as ready (it loads on first use).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from asr import model_sources
from core.errors import IvrError, TransientError
from voice.hotline import Hotline

log = logging.getLogger("ivr.speech")


@dataclass(frozen=True, slots=True)
class SpeechStatus:
    ready: bool
    state: str  # unprepared | installing | loading | ready | failed
    reason: str | None = None


class SpeechReadiness:
    def __init__(self, hotline: Hotline) -> None:
        self.hotline = hotline
        self._state, self._reason = "unprepared", ""
        self._lock = threading.Lock()

    def status(self) -> SpeechStatus:
        with self._lock:
            state, reason = self._state, self._reason
        if state == "ready":
            return SpeechStatus(True, state)
        if state != "unprepared":
            return SpeechStatus(False, state, reason)
        if model_sources.installed_recogniser(self.hotline.settings) is not None:
            return SpeechStatus(True, state)
        return SpeechStatus(False, state, model_sources.why_missing(self.hotline.settings))

    def require(self) -> None:
        """Raise a retryable error saying why when no recogniser can serve an audio turn."""
        status = self.status()
        if not status.ready:
            raise TransientError(f"speech recognition is not ready ({status.state}): {status.reason}")

    def prepare(self, install: bool, progress: bool = True) -> None:
        """Install (when allowed and needed) and load the recogniser; blocking, run it in a thread."""
        settings = self.hotline.settings
        try:
            if install:
                self._set("installing", "looking for an installed Chinese recogniser")
                model_sources.ensure_recogniser(settings, progress, on_try=self._trying)
            self._set("loading", "loading the speech recogniser")
            self.hotline.engine()
        except IvrError as err:
            log.error("speech recognition cannot start: %s", err)
            self._set("failed", str(err))
            return
        except Exception as err:  # a model that is there but will not load (corrupt, wrong format)
            log.exception("loading the speech recogniser failed")
            self._set("failed", f"loading the recogniser failed: {err}")
            return
        self._set("ready", "")
        log.info("speech recognition ready")

    def _trying(self, source: model_sources.Source) -> None:
        log.info("installing %s from %s", source.model, source.label)
        self._set("installing", f"installing {source.model} from {source.label}")

    def _set(self, state: str, reason: str) -> None:
        with self._lock:
            self._state, self._reason = state, reason
