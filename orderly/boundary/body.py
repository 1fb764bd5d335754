"""A response body read up to a bound on its decompressed size, never holding much more than the bound.

httpx inflates each network chunk whole: 64 KiB of gzip can inflate to 64 MiB in one step, and a body that
inflates to 800 MB would be held whole before anyone could count it. So gzip and deflate are inflated here,
at most PIECE bytes and never past the room left under the bound at a time (zlib's max_length); the count
stops the body one byte past the bound.
"""

from __future__ import annotations

import zlib

import httpx

ACCEPTED_ENCODINGS = "gzip, deflate"  # what we ask for: what this module inflates itself
PIECE = 256 * 2**10  # the most bytes inflated in one step: the body and one piece are held at once


class BodyTooLarge(Exception):
    """The body, decompressed, is longer than the bound."""


class BadEncoding(Exception):
    """The body is not valid for its Content-Encoding (bad gzip or deflate)."""


async def read_bounded(response: httpx.Response, limit: int) -> bytearray:
    """The whole body, decompressed; BodyTooLarge as soon as it passes `limit` bytes.

    A bytearray, not bytes: the parsers read it as is, and joining chunks would hold the body twice."""
    body = bytearray()

    def add(chunk: bytes) -> None:
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge(f"the body exceeded ORDERLY_MAX_BODY_BYTES ({limit} bytes once decompressed)")

    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        async for chunk in response.aiter_raw():
            add(chunk)
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
        async for chunk in response.aiter_raw():
            for piece in inflater.feed(chunk, room=lambda: limit + 1 - len(body)):
                add(piece)
        add(inflater.flush())
    else:  # not one we asked for: httpx decodes what it knows (a network chunk at a time), counted all the same
        async for chunk in response.aiter_bytes():
            add(chunk)
    return body


class _Inflater:
    """gzip or deflate, inflated at most `room` bytes at a time. Deflate is zlib-wrapped by the standard and
    often raw in practice: like httpx, the raw form is tried when the wrapped one fails at the first bytes."""

    def __init__(self, encoding: str) -> None:
        self.deflate = encoding == "deflate"
        self.started = False
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS if self.deflate else 16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, room):
        """The pieces `data` inflates to, none longer than `room()` (what is left under the bound, plus one)."""
        while data:
            try:
                piece = self.inflater.decompress(data, min(max(room(), 1), PIECE))
            except zlib.error:
                if self.deflate and not self.started:
                    self.started = True
                    self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise BadEncoding("the body could not be decoded (bad gzip or deflate)") from None
            self.started = True
            data = self.inflater.unconsumed_tail
            if piece:
                yield piece

    def flush(self) -> bytes:
        try:
            return self.inflater.flush()
        except zlib.error:
            raise BadEncoding("the body could not be decoded (bad gzip or deflate)") from None
