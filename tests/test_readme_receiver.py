"""The README's receiver example ("Decisions downstream") is real code: taken from the README as written, given a
secret, and sent batches that Orderly signed (orderly.feed.signing), it handles a batch once, answers 204 again
to the same webhook-id without handling it twice, and answers 401 to a bad signature."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path

import httpx

from orderly.feed.signing import secret_key, signed_headers

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET = "whsec_" + base64.b64encode(bytes(range(24))).decode()


def _receiver_source() -> str:
    section = README.read_text().split("## Decisions downstream", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1).replace("whsec_...", SECRET)


def test_the_readme_receiver_verifies_and_drops_a_resent_batch(capsys):
    scope: dict = {}
    exec(compile(_receiver_source(), "README.md", "exec"), scope)
    body = json.dumps({"events": [{"id": 7, "order_id": 3, "type": "order.processed", "lines": []}]}).encode()
    headers = signed_headers(secret_key(SECRET), "msg_store_7_7", int(time.time()), body)

    async def send_three():
        transport = httpx.ASGITransport(app=scope["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return [
                await client.post("/hook", content=body, headers=sent)
                for sent in (headers, headers, {**headers, "webhook-signature": "v1,AAAA"})
            ]

    first, again, forged = asyncio.run(send_three())
    assert (first.status_code, again.status_code, forged.status_code) == (204, 204, 401)
    assert capsys.readouterr().out.splitlines() == ["7 3 order.processed []"]
