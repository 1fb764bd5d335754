"""The sandbox's webhook receiver: a stand-in for a shop's fulfilment system, for demos.

`orderly sandbox` with ORDERLY_WEBHOOK_SECRET set takes Orderly's own deliveries at POST /webhook as a real
receiver would: the signature checked first (401 when it does not check out, before the body is even parsed),
then the body (400 unless `{"events": [...]}`, each event an object with an integer id), and every event kept
once however often it arrives: delivery is at least once, so a batch whose answer was lost comes again, under the
same webhook-id. GET /webhook/received?after=ID shows what arrived. Without a secret both answer 404: nothing can
be checked, so nothing is received.

What it keeps is bounded, as a demo left running must be: the newest MAX_EVENTS events by id and the webhook-ids
of the newest MAX_EVENTS deliveries. An event at or below the newest id let go counts as a duplicate.
"""

from __future__ import annotations

import bisect
import re
import time
from collections import OrderedDict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderly.feed.signing import BadSignature, secret_key, verify

from .base import MAX_PAGE

MAX_EVENTS = 100_000
MAX_BODY_BYTES = 64 * 2**20  # a larger delivery is refused (413) rather than held in memory
_ID = re.compile(r"[0-9]{1,18}")


class Received:
    """What arrived, deduplicated by webhook-id and by event id, and the counts GET /webhook/received shows.

    `deliveries` counts every delivery taken (a batch sent again counts again), `duplicates` the events not kept
    because they were already, `bad_signatures` the requests refused with 401."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._ids: list[int] = []  # ascending
        self._events: dict[int, Any] = {}
        self._msg_ids: OrderedDict[str, None] = OrderedDict()
        self._floor = 0  # the newest event id let go
        self.deliveries = self.duplicates = self.bad_signatures = 0

    def take(self, msg_id: str, events: list[dict[str, Any]]) -> None:
        self.deliveries += 1
        if msg_id in self._msg_ids:
            self.duplicates += len(events)
            return
        self._msg_ids[msg_id] = None
        if len(self._msg_ids) > self.max_events:
            self._msg_ids.popitem(last=False)
        for event in events:
            event_id = event["id"]
            if event_id <= self._floor or event_id in self._events:
                self.duplicates += 1
                continue
            self._events[event_id] = event
            if not self._ids or event_id > self._ids[-1]:
                self._ids.append(event_id)  # the feed's order: ids ascend
            else:
                bisect.insort(self._ids, event_id)
        excess = len(self._ids) - self.max_events
        if excess > 0:
            for event_id in self._ids[:excess]:
                del self._events[event_id]
            self._floor = self._ids[excess - 1]
            del self._ids[:excess]

    def after(self, after: int, limit: int) -> list[Any]:
        """Up to `limit` events with an id above `after`, ascending."""
        start = bisect.bisect_right(self._ids, after)
        return [self._events[event_id] for event_id in self._ids[start : start + limit]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _events(body: bytes) -> list[dict[str, Any]] | None:
    """The events of a delivery's body, or None when it is not `{"events": [{"id": <integer>, ...}, ...]}`."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    events = parsed.get("events") if isinstance(parsed, dict) else None
    if not isinstance(events, list):
        return None
    for event in events:
        if not isinstance(event, dict) or type(event.get("id")) is not int:
            return None
    return events


async def _bounded_body(request: Request) -> bytes | None:
    """The request's body, or None past MAX_BODY_BYTES (read no further than that)."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_routes(secret: str | None, received: Received | None = None) -> list[Route]:
    """POST /webhook and GET /webhook/received for a `whsec_` secret (None: both answer 404). A secret that is
    not one is refused here, when the sandbox starts, naming ORDERLY_WEBHOOK_SECRET."""
    key = secret_key(secret) if secret is not None else None
    kept = received if received is not None else Received()
    unset = {"error": "no webhook secret is set (ORDERLY_WEBHOOK_SECRET): the sandbox receives no deliveries"}

    async def deliver(request: Request) -> Response:
        if key is None:
            return _json(unset, 404)
        body = await _bounded_body(request)
        if body is None:
            return _json({"error": f"a delivery is at most {MAX_BODY_BYTES} bytes"}, 413)
        try:
            msg_id = verify(key, request.headers, body, now=time.time())
        except BadSignature as error:
            kept.bad_signatures += 1
            return _json({"error": str(error)}, 401)
        events = _events(body)
        if events is None:
            return _json({"error": 'the body must be {"events": [...]}, each event an object with an integer id'}, 400)
        kept.take(msg_id, events)
        return _json({"ok": True})

    async def shown(request: Request) -> Response:
        if key is None:
            return _json(unset, 404)
        values = {}
        for name, default, high in (("after", 0, None), ("limit", MAX_PAGE, MAX_EVENTS)):
            raw = request.query_params.get(name)
            if raw is not None and (not _ID.fullmatch(raw) or (high is not None and not 1 <= int(raw) <= high)):
                bound = f"between 1 and {high}" if high is not None else "a whole number >= 0"
                return _json({"error": f"{name} must be {bound}"}, 400)
            values[name] = default if raw is None else int(raw)
        return _json(
            {
                "deliveries": kept.deliveries,
                "duplicates": kept.duplicates,
                "bad_signatures": kept.bad_signatures,
                "events": kept.after(values["after"], values["limit"]),
            }
        )

    return [Route("/webhook", deliver, methods=["POST"]), Route("/webhook/received", shown, methods=["GET"])]
