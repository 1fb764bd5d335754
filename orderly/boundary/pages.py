"""The bytes of one page into what the ingest checks and stores: a clean orders page into columns
(columns.clean_orders), any other page whole through the record path (wire.decode_page and its envelope). A body
that is neither is `Retryable`: the client asks for it again."""

from __future__ import annotations

import asyncio
import re

from orderly.boundary.columns import clean_orders
from orderly.boundary.wire import NotJson, decode_page
from orderly.boundary.wire import orders_envelope as _orders_envelope
from orderly.runtime.gcpolicy import collection_paused


class Retryable(Exception):
    """A failure worth another try: 429, 5xx, time-out, refused connection, a body that is not the envelope."""

    def __init__(self, message: str, retry_after: float | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.fix = fix  # what an operator changes when the retries run out; None: the URL or the retries


_TURNS_TO_SEND = 5  # turns of the loop a read-ahead's request takes to be written (decode_orders_page)
# The cursor a page claims, from its last bytes: only a hint for the read-ahead (the page's check decides).
_CLAIMED_CURSOR = re.compile(rb'"next_after_id"\s*:\s*([0-9]{1,19})\s*[,}]')


def claimed_cursor(content: bytes) -> int | None:
    at = content.rfind(b'"next_after_id"')
    found = _CLAIMED_CURSOR.match(content, at) if at >= 0 else None
    return int(found.group(1)) if found else None


def decoded(content: bytes, envelope) -> dict:
    """The record path: the page's records as Python values, its envelope checked."""
    try:
        with collection_paused():
            body = decode_page(content, envelope.records_key)
    except NotJson as error:
        raise Retryable(str(error)) from None
    problem = envelope(body)
    if problem:
        raise Retryable(f"the body is not the expected envelope: {problem}")
    return body


def records_decoder(envelope):
    async def decode(content: bytes) -> dict:
        return decoded(content, envelope)

    return decode


async def decode_orders_page(content: bytes, on_bytes) -> dict:
    """The page decoded: columns when it is clean, else the record path's records (Retryable: a bad body)."""
    if on_bytes(content):
        # The read-ahead's request goes out before the decode holds the loop. httpx writes it a few turns of the
        # loop later (a connection from the pool, then the request): with one turn the read-ahead gained nothing
        # (the chain of a million orders 3.16 s against 3.11 s without it), with five 2.22 s against 3.07 s.
        for _ in range(_TURNS_TO_SEND):
            await asyncio.sleep(0)
    # A clean page decodes here, in about a millisecond: handing each page to another thread cost more than it
    # overlapped (1.0 s a million orders). The record path can take seconds on a hostile page: it runs in a
    # thread, so the loop keeps serving the read-ahead, whose time-out would otherwise run while it waits.
    columns = clean_orders(content)
    if columns is not None:
        return {"orders": columns, "next_after_id": columns.next_after_id}
    return await asyncio.to_thread(decoded, content, _orders_envelope)
