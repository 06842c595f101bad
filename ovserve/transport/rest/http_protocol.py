"""uvicorn's httptools protocol with the two HTTP edges uvicorn leaves open (issue 17):

- a deadline for a request's head: a connection that has not sent a whole request line and
  headers within ``header_timeout`` seconds of connecting, or of starting a request, is closed
  (uvicorn's keep-alive timer stops at the first byte, so a client trickling a partial header
  held its connection forever: slowloris);
- HTTP/1.0 clients get no chunked transfer coding, which HTTP/1.0 does not have (RFC 9112
  7.1: a server must not send it to them): a response without a length is sent as it is and
  ends when the connection closes, as HTTP/1.0 delimits it.

uvicorn has no setting for either; this subclasses its protocol (pinned uvicorn version) rather
than putting another HTTP server in front.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 30.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request head took over %.0f s",
                             self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and self.scope.get("http_version") == "1.0":
            cycle.send = _close_delimited(cycle)  # type: ignore[method-assign]


def _close_delimited(cycle: Any) -> Any:
    """``cycle.send`` for an HTTP/1.0 client: a response without Content-Length goes out
    without chunked coding and the connection closes after it (uvicorn already closes
    HTTP/1.0 connections; this keeps it from framing the body in chunks)."""
    send = cycle.send
    unframed = False

    async def framed(message: Any) -> None:
        nonlocal unframed
        if message["type"] == "http.response.start":
            names = {bytes(name).lower() for name, _ in message.get("headers", [])}
            if (b"content-length" not in names and cycle.scope["method"] != "HEAD"
                    and message["status"] not in (204, 304)):
                unframed = True
                cycle.chunked_encoding = False  # uvicorn would choose chunked otherwise
                cycle.keep_alive = False
        elif message["type"] == "http.response.body" and unframed:
            # uvicorn counts the body against a length; let each piece be exactly what is left
            cycle.expected_content_length = len(message.get("body", b""))
        await send(message)

    return framed
