"""A synchronous httpx client whose requests end within their time-out, all of each: connect, send, headers, body.

httpx's time-out bounds each wait on the socket alone, so a receiver that trickles its answer a byte at a time
would hold a delivery for ever, one short wait after another. Here the socket layer under the client clamps every
wait to what is left of the request's time, counted from when the request was handed to the client. The async
client of orderly.boundary.remote does the same with `asyncio.timeout`; a synchronous client has no such wrapper.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class _Until(threading.local):
    at: float | None = None  # time.monotonic() when the request in flight on this thread runs out


def _clamp(until: _Until, timeout: float | None, expired: type[Exception]) -> float | None:
    """One wait on the socket: at most `timeout`, and at most what is left of the request's time."""
    if until.at is None:
        return timeout
    left = until.at - time.monotonic()
    if left <= 0:  # a socket time-out of 0 would mean "do not block", not "out of time"
        raise expired("the request's time ran out")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, until: _Until) -> None:
        self._inner, self._until = inner, until

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(self._until, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(self._until, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        left = _clamp(self._until, timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, left), self._until)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)  # "is_readable": a connection the server closed is not reused


class _Backend(httpcore.NetworkBackend):
    def __init__(self, until: _Until) -> None:
        self._inner, self._until = httpcore.SyncBackend(), until

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _clamp(self._until, timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options), self._until)


def whole_request_client(timeout_s: float, *, max_connections: int = 2) -> httpx.Client:
    """An httpx.Client (keep-alive, redirects not followed, TLS verified as httpx does) whose every request takes
    at most `timeout_s` from start to its last byte, or raises an httpx.TimeoutException."""
    until = _Until()

    def start(request: httpx.Request) -> None:
        until.at = time.monotonic() + timeout_s

    transport = httpx.HTTPTransport()
    # httpx builds its pool with httpcore's own socket layer and offers no argument for another one: the pool is
    # built here as httpx builds it (TLS context, keep-alive), on the clamping layer. tests/test_webhook_client.py
    # holds this to a receiver that trickles its answer.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        network_backend=_Backend(until),
    )
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        event_hooks={"request": [start]},
    )
