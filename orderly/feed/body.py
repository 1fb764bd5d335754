"""The feed's JSON body, `{"events":[...]}`: the same bytes for a webhook batch, `GET /api/events` and
`orderly events --json`, cut from the store's event texts without a Python object per event."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from orderly.store import queries

# An event's fields, in the order the store writes them (queries.event_texts; docs/CONTRACT.md section 9).
EVENT_FIELDS = (
    "id",
    "type",
    "occurred_at",
    "run_id",
    "order_id",
    "status",
    "previous_status",
    "reason",
    "explanation",
    "customer_id",
    "placed_at",
    "lines",
)
MAX_PAGE = 10_000  # the most events one pull-feed page carries (a webhook batch: ORDERLY_WEBHOOK_BATCH)


def body(texts: pa.StringArray, start: int, stop: int) -> bytes:
    """Events [start, stop) of `texts` (each JSON text ends with a comma, queries.event_texts) as one body: one
    slice of the Arrow buffer."""
    if stop <= start:
        return b'{"events":[]}'
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1]
    data = memoryview(texts.buffers()[2])
    return b"".join((b'{"events":[', data[int(offsets[start]) : int(offsets[stop]) - 1], b"]}"))


def events_body(con: duckdb.DuckDBPyConnection, after: int, limit: int) -> tuple[bytes, int | None]:
    """The pull feed's page: at most `limit` events after event `after`, and the id to ask after next (None: the
    page is empty, so ask again later with the same `after`)."""
    ids, texts = queries.event_texts(con, after, min(limit, MAX_PAGE))
    return body(texts, 0, len(ids)), (int(ids[-1]) if len(ids) else None)
