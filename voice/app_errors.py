"""One error shape for every HTTP error, ``{"error": "<one line>", "retryable": bool}``, and body limits.

FastAPI's own errors (validation 422, unknown route 404, wrong method 405, malformed JSON) are
rewritten into that shape; validation errors name the field and the problem but never echo the
input back. Request bodies are capped before they are read into memory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ConflictError, IvrError, NotFoundError, ProtocolError

log = logging.getLogger("ivr.http")

MAX_JSON_BYTES = 64 * 1024
MAX_AUDIO_BYTES = 8 * 1024 * 1024  # a minute of 48 kHz stereo 16-bit audio fits


def error(status: int, message: str, retryable: bool = False) -> JSONResponse:
    return JSONResponse({"error": message, "retryable": retryable}, status_code=status)


def status_of(err: IvrError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ProtocolError | ConflictError):
        return 409
    return 503 if err.retryable else 400


def install_error_handlers(app: FastAPI) -> None:
    async def ivr_error(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, IvrError)
        return error(status_of(err), str(err), err.retryable)

    async def http_error(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, HTTPException)
        message = err.detail if isinstance(err.detail, str) else str(err.detail)
        return error(err.status_code, message, err.status_code in (429, 503))

    async def invalid(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        return error(422, validation_message(err.errors()))

    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal error; the call may go on", True)

    app.add_exception_handler(IvrError, ivr_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crashed)


def validation_message(errors: Sequence[Any]) -> str:
    """``body.text: String should have at most 2000 characters; …`` — where and what, never the input."""
    parts = []
    for problem in list(errors)[:5]:
        where = ".".join(str(p) for p in problem.get("loc", ()))
        what = str(problem.get("msg", "invalid")).replace("Value error, ", "")
        parts.append(f"{where}: {what}" if where else what)
    return "; ".join(parts) or "invalid request"


class BodyLimit:
    """Refuse request bodies over a limit (413) from their Content-Length or while they stream in."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await error(413, f"request body over {limit} bytes")(scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit), send)


def _counting(receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"request body over {limit} bytes")
        return message

    return counted


def body_limit_for(path: str) -> int:
    return MAX_AUDIO_BYTES if path.endswith("/audio") else MAX_JSON_BYTES
