"""Posting one batch of the feed to the webhook receiver (ORDERLY_WEBHOOK_URL) until it is taken: at least once,
signed as the Standard Webhooks spec says (orderly.feed.signing), the same message id on every try.

What a failure means decides what happens next. A 2xx is the receiver's word that it has the batch. A status that
another try could change (5xx, 429, 408) and a connection that breaks or times out are retried after a pause:
the receiver's Retry-After when it gives one, else exponential back-off with full jitter, so many senders that
failed together do not all come back at once. Any other status (3xx, 400, 401, 404, 410, 413...) is the receiver
saying no: trying again would only say it again, so WebhookRefused is raised at once. When the next pause would
end past the caller's deadline, WebhookUnavailable is raised with the last problem. Either way the batch stays
undelivered and the next delivery sends it again: the receiver deduplicates by webhook-id and event id.

Messages, reprs and logs name the receiver by its masked URL (orderly.settings.mask_url) and never hold the
secret, a signature or the body.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx

from orderly.errors import SettingsError, WebhookRefused, WebhookUnavailable
from orderly.settings import mask_url

from .signing import signed_headers
from .whole_request import whole_request_client

log = logging.getLogger("orderly.feed")

_ANSWER_READ = 64 * 1024  # a longer answer is not read: the status is all that counts, the connection is closed
_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]*)?")


class _MaskedUrls(logging.Filter):
    """httpx logs every request at INFO with its whole URL ("HTTP Request: POST https://user:pw@host/hook?token=...
    "HTTP/1.1 200 OK""): this filter on its logger shows the URLs masked, as every message of ours does."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(mask_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


_MASKED_URLS = _MaskedUrls()


@dataclass(frozen=True)
class Receiver:
    """Where the feed goes and how it is signed. The key is never shown (repr=False)."""

    url: str
    key: bytes = field(repr=False)
    timeout_s: float = 10.0  # for a whole attempt: connect, send, the answer

    def __post_init__(self) -> None:
        try:
            url = httpx.URL(self.url)
        except (httpx.InvalidURL, ValueError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise SettingsError(
                f"ORDERLY_WEBHOOK_URL must be an http:// or https:// URL with a host, got {self.shown_url!r}",
                "ORDERLY_WEBHOOK_URL",
            )
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"a webhook time-out must be a positive number of seconds, got {self.timeout_s!r}")

    @property
    def shown_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class Posted:
    """A batch the receiver took: its 2xx status, how many attempts it took, and what went wrong before."""

    status: int
    attempts: int
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Outcome:
    status: int | None  # None: no answer at all
    problem: str | None  # None: a 2xx, or a status that is final
    retry_after: float | None = None


class WebhookPoster:
    """Posts batches to one receiver over one keep-alive httpx client; a context manager, or call close().

    `clock` is what `deadline` is measured on; `now` is the wall clock the signatures' timestamps and a
    Retry-After date are read from; `sleep` and `rng` make the pauses. Tests inject all four."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        retry_after_cap_s: float = 300.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        rng: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.receiver = receiver
        self._retry_after_cap, self._base, self._cap = retry_after_cap_s, backoff_base_s, backoff_cap_s
        self._clock, self._sleep, self._rng, self._now = clock, sleep, rng, now
        self._client = whole_request_client(receiver.timeout_s)
        logging.getLogger("httpx").addFilter(_MASKED_URLS)  # once: the same filter is not added twice

    def __enter__(self) -> WebhookPoster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"WebhookPoster({self.receiver.shown_url})"

    def post(self, msg_id: str, body: bytes, *, deadline: float) -> Posted:
        """Post `body` as message `msg_id` until a 2xx, each attempt signed afresh; `deadline` is a clock() value.

        Raises WebhookRefused at the first status that is final, WebhookUnavailable when the next pause would
        end past `deadline`. One attempt is always made, however close the deadline."""
        problems: list[str] = []
        while True:
            headers = signed_headers(self.receiver.key, msg_id, int(self._now()), body)
            outcome = self._attempt(headers, body)
            if outcome.problem is None:
                assert outcome.status is not None
                if 200 <= outcome.status < 300:
                    return Posted(outcome.status, len(problems) + 1, tuple(problems))
                raise WebhookRefused(_refused(self.receiver.shown_url, outcome.status))
            problems.append(outcome.problem)
            wait = outcome.retry_after if outcome.retry_after is not None else self._backoff(len(problems) - 1)
            if self._clock() + wait > deadline:
                attempts = f"{len(problems)} attempt{'s' if len(problems) > 1 else ''}"
                raise WebhookUnavailable(
                    f"the webhook receiver {self.receiver.shown_url} did not take the batch before the delivery's "
                    f"deadline: {outcome.problem} ({attempts}); delivery stops here and the next one sends the "
                    "same batch again"
                )
            log.info(
                "webhook receiver %s: %s; attempt %d in %.1f s",
                self.receiver.shown_url,
                outcome.problem,
                len(problems) + 1,
                wait,
            )
            self._sleep(wait)

    def _backoff(self, n: int) -> float:
        """The n-th pause (from 0) without a Retry-After: uniform in [0, min(cap, base * 2**n)] ("full jitter")."""
        return self._rng() * min(self._cap, self._base * 2 ** min(n, 64))

    def _attempt(self, headers: dict[str, str], body: bytes) -> _Outcome:
        try:
            with self._client.stream("POST", self.receiver.url, content=body, headers=headers) as response:
                _drain(response)
        except httpx.TimeoutException:
            return _Outcome(None, f"timed out after {self.receiver.timeout_s:g} s")
        except httpx.TransportError as error:
            return _Outcome(None, _broken(error))
        status = response.status_code
        if 200 <= status < 300 or not (status >= 500 or status in (408, 429)):
            return _Outcome(status, None)
        return _Outcome(status, _status_words(status), self._retry_after(response.headers.get("retry-after")))

    def _retry_after(self, raw: str | None) -> float | None:
        """The pause a Retry-After asks for (seconds or an HTTP date), capped; None when absent or unreadable."""
        if raw is None:
            return None
        raw = raw.strip()
        if _SECONDS.fullmatch(raw):
            seconds = float(raw)
        else:
            try:
                when = parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - self._now()
        return min(max(seconds, 0.0), self._retry_after_cap)


def _drain(response: httpx.Response) -> None:
    """Read a short answer to its end, so the connection can carry the next post. The status has arrived and is
    all that counts: a long answer, or one that breaks or runs out of time, is left (the connection closes)."""
    read = 0
    with contextlib.suppress(httpx.HTTPError):
        for chunk in response.iter_raw():
            read += len(chunk)
            if read > _ANSWER_READ:
                break


def _status_words(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"  # our words: the receiver's reason phrase is not shown
    except ValueError:
        return str(status)


def _refused(shown_url: str, status: int) -> str:
    if status in (401, 403):
        fix = "check ORDERLY_WEBHOOK_SECRET against the receiver's secret"
    elif 300 <= status < 400:
        fix = "point ORDERLY_WEBHOOK_URL where the receiver now is (redirects are not followed)"
    else:
        fix = "fix the receiver"
    return (
        f"the webhook receiver {shown_url} answered {_status_words(status)}: delivery stops here; {fix} and the "
        "next delivery sends the same batch again"
    )


def _broken(error: httpx.TransportError) -> str:
    """What happened to a connection, in words (an exception's class name means nothing to an operator)."""
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if _caused_by(error, ConnectionRefusedError) else "could not connect"
    if isinstance(error, httpx.RemoteProtocolError):
        closed = "without sending a response" in str(error)  # httpcore's words for a close before any answer
        return "connection closed with no answer" if closed else "the answer was not valid HTTP"
    if _caused_by(error, (ConnectionResetError, BrokenPipeError)):
        return "connection reset"
    return "the connection broke"


def _caused_by(error: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
