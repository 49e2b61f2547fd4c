"""The server's own limits: time per request head and body, connections, buffered bodies and
concurrent decodes, so that no client (slow, half-sent, flooding) can hold the server or
exhaust its memory (docs/security.md, "Limits of the server").

uvicorn bounds a request head's size (h11: 16 KiB) and closes idle keep-alive connections, but
has no time limit on a head that arrives slowly, nor on a body; and it accepts every connection.
:func:`limited_h11` is uvicorn's h11 protocol with a deadline for each request head and a cap
on open connections; :class:`RequestLimiter` reads bodies under a deadline and a shared memory
budget and runs image decoding a few at a time.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from carbonedge.errors import ConfigError
from carbonedge.serve.errors import (
    BadRequest,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ServeError,
)

__all__ = ["RequestLimiter", "ServerLimits", "limited_h11"]

T = TypeVar("T")

MIB: Final = 2**20


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what clients may hold; see docs/security.md for the reasoning.

    Attributes:
        header_timeout_s: seconds a connection may take to send a complete request head, from
            its opening or from the previous response (slow or half-sent heads: 408, closed).
        body_timeout_s: seconds a request may take to send its whole body once its head is in
            (a body shorter than its ``Content-Length``, or trickled: 408, closed).
        max_connections: open connections at once; one more is answered 503 and closed.
        body_buffer_bytes: bytes of request bodies held at once, all requests together, from
            the first byte read until the image is decoded (over it: 503 with Retry-After).
        max_decodes: images decoded at once; the others wait their turn. One image at the
            pixel limits of ``carbonedge.data.preprocess`` (64 MP RGBA) takes ~0.8 GiB to
            decode and preprocess; a photograph ~10 ms of CPU.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 512
    body_buffer_bytes: int = 256 * MIB
    max_decodes: int = 1

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 3600):
                raise ConfigError(f"{name}: must be a number of seconds in (0, 3600], got {value}")
        for name in ("max_connections", "body_buffer_bytes", "max_decodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")


def _raw_response(
    status: int, reason: str, message: str, retry_after_s: int | None = None
) -> bytes:
    """A complete HTTP/1.1 JSON error response that closes the connection, for the protocol
    level, where no request (and so no ASGI app) exists yet."""
    body = json.dumps({"error": message, "status": status}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after_s is not None:
        head.append(f"retry-after: {retry_after_s}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def limited_h11(limits: ServerLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline per request head and at most
    ``limits.max_connections`` open connections (pass as ``uvicorn.Config(http=...)``)."""
    timeout_s = limits.header_timeout_s

    class LimitedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _armed_cycle: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                message = f"too many connections (limit {limits.max_connections}); retry shortly"
                transport.write(_raw_response(503, "Service Unavailable", message, 1))
                transport.close()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            # h11 refused the request (malformed, head over 16 KiB, body longer than its
            # Content-Length running into the next request): JSON like every other error
            message = f"invalid HTTP request (malformed, or a head over 16 KiB): {msg}"
            self.transport.write(_raw_response(400, "Bad Request", message))
            self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request's head has its own deadline

        def _arm(self) -> None:
            self._disarm()
            self._armed_cycle = self.cycle
            self._head_timer = self.loop.call_later(timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            cycle = self.cycle
            if self.transport.is_closing() or cycle is not self._armed_cycle:
                return  # a new request started: the app bounds its body (RequestLimiter)
            if cycle is not None and not cycle.response_complete:
                return
            pending, _ = self.conn.trailing_data
            if pending:  # part of a head: say why before closing
                message = f"request head not received within {timeout_s:g} s"
                self.transport.write(_raw_response(408, "Request Timeout", message))
            self.transport.close()  # connection_lost tells h11

    return LimitedH11Protocol


class RequestLimiter:
    """Request bodies under a deadline and a memory budget shared by all requests; image
    decoding a few at a time. One per application (its state lives in one event loop)."""

    def __init__(self, limits: ServerLimits, max_body_bytes: int) -> None:
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self.buffered_bytes = 0
        self._decodes = asyncio.Semaphore(limits.max_decodes)

    @asynccontextmanager
    async def body(self, request: Request) -> AsyncIterator[bytes]:
        """The request's body, held against the budget until the ``async with`` block ends.

        Raises PayloadTooLarge (413; from ``Content-Length`` before reading), RequestTimeout
        (408), Overloaded (503: the budget is spent) or BadRequest (the client went away), each
        with ``close_connection = True``: the rest of the body is never read."""
        chunks: list[bytes] = []
        try:
            await self._read(request, chunks)
        except BaseException as exc:  # a refusal, or the request cancelled (shutdown)
            if isinstance(exc, ServeError):
                exc.close_connection = True  # type: ignore[attr-defined]
            self.buffered_bytes -= sum(map(len, chunks))
            raise
        held = sum(map(len, chunks))
        try:
            body = b"".join(chunks)
            chunks.clear()
            yield body
        finally:
            self.buffered_bytes -= held

    async def _read(self, request: Request, chunks: list[bytes]) -> None:
        """Append the body's chunks to ``chunks``, each counted in ``buffered_bytes``."""
        limit, held = self.max_body_bytes, 0
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise BadRequest(f"bad Content-Length {length!r}")
            if int(length) > limit:
                raise PayloadTooLarge(f"body of {length} bytes is over the limit of {limit} bytes")
        timeout_s = self.limits.body_timeout_s
        try:
            async with asyncio.timeout(timeout_s):  # one deadline for the whole body
                async for chunk in request.stream():
                    if held + len(chunk) > limit:
                        raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
                    if self.buffered_bytes + len(chunk) > self.limits.body_buffer_bytes:
                        raise Overloaded(
                            f"server busy: {self.buffered_bytes / MIB:.0f} MiB of request bodies "
                            f"held (limit {self.limits.body_buffer_bytes / MIB:.0f} MiB)",
                            retry_after_s=1.0,
                        )
                    self.buffered_bytes += len(chunk)
                    held += len(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            expected = f" of {length}" if length is not None else ""
            raise RequestTimeout(
                f"request body not received within {timeout_s:g} s ({held}{expected} bytes arrived)"
            ) from None
        except ClientDisconnect:
            raise BadRequest("the client closed the connection before its body ended") from None

    async def decode(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker thread, at most ``limits.max_decodes`` at once."""
        async with self._decodes:
            return await run_in_threadpool(fn, *args)
