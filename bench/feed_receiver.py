"""A fast loopback webhook receiver for the feed bench: HTTP/1.1 with keep-alive on raw asyncio, every batch's
Standard Webhooks signature checked, its events counted. `GET /count` answers what arrived, as JSON.

    .venv/bin/python bench/feed_receiver.py PORT SECRET
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import sys

_ID = re.compile(rb'\{"id":([0-9]+),')


class Tally:
    def __init__(self, key: bytes) -> None:
        self.key = key
        self.batches = self.events = self.bad = self.duplicates = 0
        self.first = self.last = None
        self.ids: set[str] = set()
        self.ascending = True

    def take(self, headers: dict[bytes, bytes], body: bytes) -> int:
        msg_id, stamp, given = (
            headers.get(name, b"") for name in (b"webhook-id", b"webhook-timestamp", b"webhook-signature")
        )
        digest = hmac.new(self.key, msg_id + b"." + stamp + b"." + body, hashlib.sha256).digest()
        if not any(hmac.compare_digest(b"v1," + base64.b64encode(digest), s) for s in given.split()):
            self.bad += 1
            return 401
        if msg_id.decode() in self.ids:
            self.duplicates += 1
            return 200
        self.ids.add(msg_id.decode())
        ids = [int(found) for found in _ID.findall(body)]
        if ids:
            if (self.last is not None and ids[0] != self.last + 1) or ids != list(range(ids[0], ids[0] + len(ids))):
                self.ascending = False
            self.first = ids[0] if self.first is None else self.first
            self.last = ids[-1]
        self.batches += 1
        self.events += len(ids)
        return 200

    def report(self) -> bytes:
        keys = ("batches", "events", "bad", "duplicates", "first", "last", "ascending")
        return json.dumps({k: getattr(self, k) for k in keys}).encode()


async def serve(port: int, tally: Tally) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path = lines[0].split(b" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if b":" in line:
                        name, value = line.split(b":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                if method == b"GET" and path == b"/count":
                    status, answer = 200, tally.report()
                else:
                    status, answer = tally.take(headers, body), b"{}"
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (status, len(answer), answer)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", port, limit=2**26)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    secret = sys.argv[2]
    encoded = secret.removeprefix("whsec_")
    asyncio.run(serve(int(sys.argv[1]), Tally(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))))
