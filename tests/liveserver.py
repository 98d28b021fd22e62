"""The real server on a free loopback port, for tests that talk to it over real sockets.

``serve(app)`` runs uvicorn in a thread (lifespan included, so the live line renders its prompts
as in ``ivr serve``, with its WebSocket message cap) and yields ``127.0.0.1:PORT``; leaving the block
shuts it down. Extra keyword arguments go to ``uvicorn.Config``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from voice.cli_serve import WS_MAX_BYTES

START_TIMEOUT_S = 120.0  # the lifespan renders the fixed prompts with espeak-ng


@contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    options = {"ws_max_size": WS_MAX_BYTES, **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
