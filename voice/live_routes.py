"""The live front doors as one router for ``create_app``: Twilio (``/twilio/*``), ``/metrics``, and
the SIP listener (``voice.sip_server``) when ``IVR_SIP_PORT`` is set.

Its lifespan makes the app's ``LiveLine`` at start-up, renders the fixed prompts then, and at
shutdown says goodbye on every live call, hangs it up and records it. uvicorn closes WebSockets
(1012) *before* the lifespan's shutdown runs, so a goodbye can only be heard if
``LiveLine.shutdown`` runs first: it is also put on ``app.state.on_shutdown`` (the hooks the
server runs on SIGTERM before stopping) when the app has that list; the SIP listener is closed
after it (its calls' BYEs go out first).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter

from voice import live_metrics, sip_server, twilio_routes
from voice.live_line import line_of

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    line = line_of(app)
    hooks = getattr(app.state, "on_shutdown", None)
    if isinstance(hooks, list):
        hooks.append(line.shutdown)
    try:
        await line.ready()
    except Exception as err:  # no espeak-ng: the HTTP API still serves; live calls will fail to open
        log.error("live line prompts not rendered: %s", err)
    sip = await sip_server.start(app, app.state.hotline.settings)
    if sip is not None and isinstance(hooks, list):
        hooks.append(sip.stop)
    try:
        yield
    finally:
        await line.shutdown()
        if sip is not None:
            await sip.stop()


def live_router() -> APIRouter:
    router = APIRouter(lifespan=_lifespan)
    router.include_router(twilio_routes.router)
    router.include_router(live_metrics.router)
    return router
