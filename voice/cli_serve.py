"""``ivr serve``: run the hotline's HTTP server with the configured (or embedded) shop.

It listens at once; a Chinese recogniser is installed (progress bar on stderr) and loaded in the
background, and ``/healthz`` answers 503 with the reason until it can serve.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from typing import Any

from core.settings import Settings

# The largest WebSocket message a front door takes is a few KB (a Twilio media event, 100 ms of
# softphone audio): uvicorn refuses a bigger one (close 1009) before buffering it, not at 16 MiB.
WS_MAX_BYTES = 64 * 1024


def register(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run the hotline server (IVR_HOST:IVR_PORT)")
    parser.add_argument("--host", help="override IVR_HOST")
    parser.add_argument("--port", type=int, help="override IVR_PORT")
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from voice import voices
    from voice.app import create_app
    from voice.hotline import open_hotline

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = replace(settings, host=args.host or settings.host, port=args.port or settings.port)
    settings.validate()  # --host/--port are checked like IVR_HOST/IVR_PORT (the SIP front door binds the same host)
    hotline = open_hotline(settings)
    info = hotline.shop.info()
    host, port = settings.host, settings.port
    log = logging.getLogger("ivr")
    log.info("serving %s on http://%s:%d (shop clock %s)", info.name, host, port, hotline.clock.now())
    for line in voices.startup_lines(settings):
        log.log(logging.WARNING if line.startswith("voice licence") else logging.INFO, "%s", line)
    app = create_app(hotline, prepare_speech=True)
    uvicorn.run(
        app, host=host, port=port, log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30, ws_max_size=WS_MAX_BYTES,
    )  # fmt: skip
    return 0
