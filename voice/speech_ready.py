"""Whether the hotline's recogniser can serve, for ``/healthz`` and audio turns.

``ivr serve`` listens at once and prepares speech in a background thread: it installs a Chinese
recogniser when none is there (``asr.model_sources.ensure_recogniser``, progress bar on stderr),
then loads it and warms it up (``warm_up``: ten calls arriving at once on a fresh server start warm).
Until that is done ``/healthz`` answers 503 with the reason; a server that never
prepares (tests, ``create_app`` alone) counts an installed model as ready (it loads on first use).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from asr import model_sources
from asr.engine import AsrEngine
from core.errors import IvrError, TransientError
from core.types import AudioFrame
from voice.hotline import Hotline

log = logging.getLogger("ivr.speech")
PHONE_RATE = 8000


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
            engine = self.hotline.engine()
            self._set("loading", "warming up the speech recogniser")
            warm_up(engine, self.hotline)
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


WARM_STREAMS = 10  # calls that can arrive at once on a fresh server and still start warm
_WARM_TEXT = "您好，我的快递到哪了？"  # any Mandarin speech does; a second or two is enough


def warm_up(engine: AsrEngine, hotline: Hotline) -> None:
    """Let the recogniser decode some speech before the first calls (see ``AsrEngine.warm``).

    The speech is the hotline's own voice saying an ordinary caller sentence, at the phone's rate.
    A hotline that cannot synthesise (no espeak-ng) starts cold rather than not at all.
    """
    from voice.codec import resample
    from voice.tts import Synthesizer

    settings = hotline.settings
    try:
        spoken = Synthesizer(settings.tts_voice, settings.tts_rate).synthesize(_WARM_TEXT)
    except IvrError as err:
        log.warning("recogniser not warmed up (no speech to warm it with): %s", err)
        return
    speech = AudioFrame(resample(spoken.pcm, spoken.sample_rate, PHONE_RATE), PHONE_RATE)
    started = time.perf_counter()
    engine.warm(speech, WARM_STREAMS)
    log.info("speech recogniser warmed up in %.1f s", time.perf_counter() - started)
