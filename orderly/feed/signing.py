"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks to trust a batch.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is `v1,` + base64 of its HMAC-SHA256
under the secret's key. Every attempt is signed again with its own timestamp, so a receiver can refuse a replay
that is too old while a retry of the same message (the same webhook-id) still passes. A secret, a key or a
signature never appears in a message: a message says which part is wrong, never what it held.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from orderly.errors import SettingsError

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24  # the spec's smallest secret; a shorter key is refused rather than trusted
_MSG_ID = re.compile(r"[\x21-\x7e]{1,255}")  # a header value: printable ASCII without spaces
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class BadSignature(Exception):
    """A request whose signature does not check out. Caught where it is raised (the sandbox answers 401)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret (ORDERLY_WEBHOOK_SECRET): the base64 after the prefix, decoded.

    Refused with one line that names the variable and never the value: it is the receiver's trust in us."""
    text = secret.strip()
    encoded = text[len(SECRET_PREFIX) :] if text.startswith(SECRET_PREFIX) else None
    key = None
    if encoded:
        try:  # padding optional, as receivers print secrets both ways; anything but base64 is refused
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) < MIN_KEY_BYTES:
        raise SettingsError(
            f"ORDERLY_WEBHOOK_SECRET must be {SECRET_PREFIX} followed by the base64 of at least {MIN_KEY_BYTES} "
            "bytes, as the receiver gave it (the value is not shown)",
            "ORDERLY_WEBHOOK_SECRET",
        )
    return key


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return b"v1," + base64.b64encode(digest)


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt at posting `body`: the message id (the same for every retry), this attempt's
    timestamp (seconds since the epoch) and its signature, and the body's type."""
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError("a webhook message id is 1 to 255 printable ASCII characters without spaces")
    stamp = str(int(timestamp))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": _signature(key, msg_id, stamp, body).decode(),
        "content-type": "application/json",
    }


def verify(key: bytes, headers: Mapping[str, str], body: bytes, *, now: float, tolerance_s: float = 300) -> str:
    """The message id of a request whose signature checks out, or BadSignature saying which part does not.

    The header may hold several signatures separated by spaces (a receiver rotating its secret): one matching
    `v1` signature is enough. Every candidate is compared in constant time; a timestamp further than
    `tolerance_s` from `now` is refused, so a captured request cannot be replayed later."""
    lower = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, given = (lower.get(name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and given):
        raise BadSignature("the webhook-id, webhook-timestamp and webhook-signature headers are all required")
    if not _TIMESTAMP.fullmatch(stamp):
        raise BadSignature("webhook-timestamp is not whole seconds since the epoch")
    if abs(now - int(stamp)) > tolerance_s:
        raise BadSignature(f"webhook-timestamp is more than {tolerance_s:g} s from now")
    expected = _signature(key, msg_id, stamp, body)
    matched = False
    for candidate in given.split():
        matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    if not matched:
        raise BadSignature("no signature in webhook-signature matches")
    return msg_id
