"""Whether the hotline's recogniser can serve, for ``/healthz`` and audio turns.

``ivr serve`` listens at once and prepares speech in a background thread: it installs a Chinese
recogniser when none is there (``asr.model_sources.ensure_recogniser``, progress bar on stderr),
then loads it and pays the first-use costs a caller would otherwise pay: prosody's (librosa's
lazy imports and JIT, 0.8 s, in the first caller's first turn) before it says ready, and then, at
low priority on two threads, the recogniser's own (``AsrEngine.warm_up``: vosk fills its pool
with recognizers that have decoded the greeting in the hotline's own voice). Until it is ready
``/healthz`` answers 503 with the reason; a server that never prepares (tests, ``create_app``
alone) counts an installed model as ready (it loads on first use).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asr import model_sources, prosody
from core.errors import IvrError, TransientError
from voice.hotline import Hotline
from voice.tts import TELEPHONE_RATE

if TYPE_CHECKING:
    from asr.engine import AsrEngine

log = logging.getLogger("ivr.speech")

WARM_THREADS = min(2, os.cpu_count() or 1)


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
        self.stopping = threading.Event()  # set at shutdown: the warm-up stops

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
            engine = self.hotline.engine()
            prosody.warm_up()
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
        self._warm(engine)

    def _warm(self, engine: AsrEngine) -> None:
        """The engine's warm-up on every core (two at most), niced: calls come first."""
        started = time.perf_counter()
        try:
            speech = _warm_up_speech(self.hotline)
        except Exception:  # no voice (espeak-ng missing): a cold start is slower, not broken
            log.exception("warming the speech recogniser failed")
            return
        counts: list[int] = []

        def work() -> None:
            with contextlib.suppress(AttributeError, OSError):  # Linux threads have their own priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
            try:
                counts.append(engine.warm_up(speech, TELEPHONE_RATE, stop=self.stopping.is_set))
            except Exception:
                log.exception("warming the speech recogniser failed")

        workers = [threading.Thread(target=work, name=f"ivr-warm-{i}", daemon=True) for i in range(WARM_THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if sum(counts):
            log.info("speech recogniser warmed: %d recognizers in %.1f s", sum(counts), time.perf_counter() - started)

    def _trying(self, source: model_sources.Source) -> None:
        log.info("installing %s from %s", source.model, source.label)
        self._set("installing", f"installing {source.model} from {source.label}")

    def _set(self, state: str, reason: str) -> None:
        with self._lock:
            self._state, self._reason = state, reason


def _warm_up_speech(hotline: Hotline) -> bytes:
    """A few seconds of the hotline's own voice at 8 kHz: what every caller hears first."""
    from dialog.replies import render
    from voice import voices

    synthesizer = voices.synthesizer(hotline.settings)
    return b"".join(synthesizer.telephone_frames(render("greeting") + render("reprompt.short")))
