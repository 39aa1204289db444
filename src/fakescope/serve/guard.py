"""The server's front door (pure ASGI middleware): admission, the body-size limit and client disconnects.

- At most ``max_pending`` work requests (``POST /api/...``) are handled at once; one more gets 503 with
  ``Retry-After`` at once, before its body is read. ``GET`` requests (the page, health, docs) always pass.
- A body over the size limit gets 413 from its ``Content-Length`` before anything is read, or, streamed without
  one, as soon as the bytes received pass the limit.
- A client that goes away mid-upload costs one log line, not a traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers on top of the files themselves
log = logging.getLogger("uvicorn.error")  # the server log: one formatted line, beside uvicorn's own


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a streamed body passes the limit."""


def error(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The one JSON error shape of the API: ``{"detail": ..., ...extra}``."""
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def busy(what: str, retry_after: int) -> JSONResponse:
    """503 with ``Retry-After``: the server is at one of its queue limits."""
    return error(503, f"server busy: {what}; retry in {retry_after} s", headers={"Retry-After": str(retry_after)},
                 retry_after=retry_after)


class Slots:
    """A counter with a cap, safe from any thread: ``try_take()`` → bool, ``give()``."""

    def __init__(self, cap: int) -> None:
        self.cap, self.used, self._lock = cap, 0, threading.Lock()

    def try_take(self) -> bool:
        with self._lock:
            if self.used >= self.cap:
                return False
            self.used += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.used -= 1


class Guard:
    """ASGI middleware: admission (``slots``), 413 for bodies over ``max_bytes``, quiet client disconnects."""

    def __init__(self, app: ASGIApp, max_bytes: int, limit_mb: float, slots: Slots, retry_after: int) -> None:
        self.app, self.max_bytes, self.limit_mb = app, max_bytes, limit_mb
        self.slots, self.retry_after = slots, retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if not self.slots.try_take():
            await busy(f"{self.slots.cap} requests in progress (--max-pending)", self.retry_after)(scope, receive, send)
            return
        try:
            await self._limited(scope, receive, send)
        except ClientDisconnect:
            log.warning("client disconnected before its request was read: %s %s", scope["method"], scope["path"])
        finally:
            self.slots.give()

    def _too_large(self) -> JSONResponse:
        return error(413, f"upload too large: the limit is {self.limit_mb:g} MB per request (start the server with "
                          "a larger --max-upload-mb, or send fewer files at once)", limit="max_upload_mb")

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await error(400, "invalid Content-Length header")(scope, receive, send)
                return
            if size > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
        seen, started = 0, False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large()(scope, receive, send)


__all__ = ["MULTIPART_SLACK", "Guard", "Slots", "busy", "error"]
