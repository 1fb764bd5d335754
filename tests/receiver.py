"""A webhook receiver that misbehaves on cue, over real loopback HTTP: what the feed's poster is tested against.

    with ScriptedReceiver(SECRET, ["status:500", "hangup"]) as receiver:   # a free port on 127.0.0.1
        ... post to receiver.url ...
        receiver.arrivals, receiver.kept_event_ids()

Each request takes the next behaviour of the script; once it is used up, every request gets `default` ("ok"):
- `ok`: keep the body, answer 200;
- `status:N`: answer N, keep nothing;
- `retry_after:N:S`: answer N (429, 503...) with `Retry-After: S` (seconds, or an HTTP date), keep nothing;
- `slow:S`: keep the body, wait S seconds, then answer 200: past the client's time-out, a 2xx sent after the
  client gave up (the batch is kept, and its retry arrives again);
- `trickle:S`: keep the body, then send a 200 a byte at a time, S seconds between bytes;
- `drop`: answer 200 before reading the body, keep nothing (the rest of the body is read only so the socket
  closes cleanly, and the connection is closed);
- `hangup`: read the request, then close the connection without an answer.

Every request is recorded as an `Arrival`, its signature checked with the `standardwebhooks` package (the spec's
reference, not our own code).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Arrival:
    msg_id: str | None
    timestamp: str | None
    signature: str | None
    body: bytes
    verified: bool  # by standardwebhooks, with the receiver's secret
    status: int | None  # what was answered; None: hung up
    kept: bool
    port: int  # the client's port: one port for many arrivals is one kept-alive connection


class ScriptedReceiver:
    def __init__(self, secret: str, script: list[str] | None = None, default: str = "ok") -> None:
        self.secret, self.default = secret, default
        self._lock = threading.Condition()
        self._script: list[str] = list(script or [])
        self._arrivals: list[Arrival] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.receiver = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> ScriptedReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def reset(self, script: list[str]) -> None:
        """A new script, and no arrivals: one receiver serves many examples of a property."""
        with self._lock:
            self._script, self._arrivals = list(script), []

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Arrival]:
        """The arrivals once there are `count`: a `drop` is recorded after its answer, when the client may be done."""
        with self._lock:
            self._lock.wait_for(lambda: len(self._arrivals) >= count, timeout)
            return list(self._arrivals)

    def kept_event_ids(self) -> list[int]:
        """The event ids of every kept body, in the order they arrived (a batch kept twice shows twice)."""
        return [event["id"] for a in self.arrivals if a.kept for event in json.loads(a.body)["events"]]

    def _next(self) -> str:
        with self._lock:
            return self._script.pop(0) if self._script else self.default

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes, status: int | None, kept: bool) -> None:
        headers = handler.headers
        try:
            Webhook(self.secret).verify(body, dict(headers.items()), json_parse=False)
            verified = True
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed header or body
            verified = False
        arrival = Arrival(
            headers.get("webhook-id"),
            headers.get("webhook-timestamp"),
            headers.get("webhook-signature"),
            body,
            verified,
            status,
            kept,
            handler.client_address[1],
        )
        with self._lock:
            self._arrivals.append(arrival)
            self._lock.notify_all()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-request (a killed delivering process) is normal here: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver
    timeout = 10  # an idle kept-alive connection is dropped after this

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        receiver: ScriptedReceiver = self.server.receiver  # type: ignore[attr-defined]
        kind, _, arg = receiver._next().partition(":")
        length = int(self.headers.get("content-length") or 0)
        if kind == "drop":
            self._answer(200, close=True)
            receiver._record(self, self.rfile.read(length), 200, kept=False)
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the sender went away mid-body (kill -9): no request arrived, as in any server
            self.close_connection = True
            return
        if kind == "ok":
            receiver._record(self, body, 200, kept=True)
            self._answer(200)
        elif kind == "status":
            receiver._record(self, body, int(arg), kept=False)
            self._answer(int(arg))
        elif kind == "retry_after":
            status, _, after = arg.partition(":")
            receiver._record(self, body, int(status), kept=False)
            self._answer(int(status), {"Retry-After": after})
        elif kind in ("slow", "trickle"):
            receiver._record(self, body, 200, kept=True)
            with contextlib.suppress(OSError):  # the client may be gone: that is the point
                if kind == "slow":
                    time.sleep(float(arg))
                    self._answer(200)
                else:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(float(arg))
        elif kind == "hangup":
            receiver._record(self, body, None, kept=False)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            raise ValueError(f"unknown behaviour {kind!r}")

    def _answer(self, status: int, headers: dict[str, str] | None = None, close: bool = False) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
