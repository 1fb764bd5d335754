"""Delivering the decision feed: every event not yet delivered, in ascending id, at least once, to
ORDERLY_WEBHOOK_URL, in batches signed per Standard Webhooks. A use case free of Prefect (tasks/deliver.py calls it).

How nothing is lost or sent under two ids:
- The store holds a plan (writes.plan_delivery): the events up to `plan_to`, cut into batches of `plan_batch` from
  the delivered-up-to cursor. A plan is kept until every batch of it got a 2xx, so a batch sent again (after a
  failure, a time-out whose 2xx came late, or `kill -9`) is the same events under the same webhook-id.
- The cursor moves only past batches answered 2xx, and is recorded at least every SAVE_EVERY_S: a crash sends
  again at most that much, under the same ids.
- The store is opened only to record progress, plan, and read a plan's events: a receiver that is slow or down
  never holds the file, so processing goes on and the backlog grows, nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from orderly.errors import WebhookRefused, WebhookUnavailable
from orderly.feed.body import body
from orderly.feed.signing import secret_key
from orderly.feed.webhook import Receiver, WebhookPoster
from orderly.settings import Settings
from orderly.store import open_store, queries, writes
from orderly.store.connection import transaction

# A plan's events are read at one open of the store (about 20 MB of text at most), a chunk a query: DuckDB's
# working memory grows with the events a query reads, and it, not the text, set the delivery's peak (bench/feed.py).
WINDOW = 50_000
READ_CHUNK = 10_000
SAVE_EVERY_S = 2.0  # progress recorded at least this often while a plan is sent (each costs an open of the file)


@dataclass(frozen=True)
class Delivered:
    """What one delivery did: events answered 2xx, the backlog left, and why it stopped early (None: it did not)."""

    delivered: int
    backlog: int
    problem: str | None = None


def message_id(store_id: str, first: int, last: int) -> str:
    """The webhook-id of the batch of events first..last of this store: the same every time it is sent."""
    return f"msg_{store_id.replace('-', '')[:16]}_{first}_{last}"


def deliver(
    settings: Settings,
    run_id: str | None = None,
    *,
    budget_s: float,
    poster: Callable[[Receiver], WebhookPoster] = WebhookPoster,
) -> Delivered:
    """Send what is not delivered yet, for at most about `budget_s` seconds (a batch started is finished or given
    up by then). A receiver that cannot be reached in time ends it with `problem` said and the backlog kept; one
    that refuses (a 4xx other than 408 and 429) raises WebhookRefused after recording it."""
    if not settings.webhook_url or not settings.webhook_secret:
        return Delivered(0, 0, "ORDERLY_WEBHOOK_URL is not set: decisions are not delivered")
    receiver = Receiver(settings.webhook_url, secret_key(settings.webhook_secret), settings.http_timeout)
    deadline = time.monotonic() + budget_s
    delivered, sent = 0, None  # sent: delivered up to, not yet recorded
    with poster(receiver) as post:
        while True:
            with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
                with transaction(con):  # the last plan's end and the next plan: one open of the file
                    if sent is not None:
                        writes.record_delivered(con, run_id, sent)
                    store_id, done_to, plan_to, batch = writes.plan_delivery(con, settings.webhook_batch, WINDOW)
                ids, texts = _read(con, done_to, plan_to) if time.monotonic() < deadline else _NOTHING
            if len(ids) == 0:
                late = plan_to > done_to
                return Delivered(delivered, plan_to - done_to, f"stopped after {budget_s:g} s" if late else None)
            sent, saved_at = done_to, time.monotonic()
            try:
                for start in range(0, len(ids), batch):
                    if time.monotonic() >= deadline:
                        break
                    stop = min(start + batch, len(ids))
                    first, last = int(ids[start]), int(ids[stop - 1])
                    post.post(message_id(store_id, first, last), body(texts, start, stop), deadline=deadline)
                    sent = last
                    if time.monotonic() - saved_at >= SAVE_EVERY_S:
                        _record(settings, run_id, sent)
                        saved_at = time.monotonic()
            except (WebhookRefused, WebhookUnavailable) as error:
                _record(settings, run_id, sent, problem=str(error))
                if isinstance(error, WebhookRefused):
                    raise
                return Delivered(delivered + sent - done_to, _backlog(settings), str(error))
            delivered += sent - done_to


_NOTHING = (np.empty(0, np.int64), pa.array([], pa.string()))


def _read(con: duckdb.DuckDBPyConnection, done_to: int, plan_to: int) -> tuple[np.ndarray, pa.StringArray]:
    """The plan's events (done_to, plan_to], READ_CHUNK a query."""
    parts = [queries.event_texts(con, after, READ_CHUNK, upto=plan_to) for after in range(done_to, plan_to, READ_CHUNK)]
    if not parts:
        return _NOTHING
    return np.concatenate([ids for ids, _ in parts]), pa.concat_arrays([texts for _, texts in parts])


def _record(settings: Settings, run_id: str | None, delivered_to: int, problem: str | None = None) -> None:
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con, transaction(con):
        writes.record_delivered(con, run_id, delivered_to)
        if problem:
            writes.record_delivery_error(con, problem)


def _backlog(settings: Settings) -> int:
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=True) as con:
        return int(queries.feed_state(con)["backlog"])
