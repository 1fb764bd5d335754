"""The rows a decision writes, as one Arrow table registered on the connection: built once, for the write
(writes.record_decisions) and for a dry run's preview (queries.preview_decisions) alike."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orderly.store.connection import registered


@contextmanager
def decision_rows(
    con: duckdb.DuckDBPyConnection,
    order_ids: np.ndarray,
    changes: np.ndarray,
    labels: Mapping[str, Sequence[str | None]],
    unknown: Mapping[str, np.ndarray],
    short: Mapping[str, np.ndarray],
) -> Iterator[str]:
    """Register decided changes as one table and yield its name. Its rows: order_id, from_status, to_status,
    reason, order_reason, details (the explanation as JSON text, NULL when there is none).

    `changes` indexes `labels` (one value per kind of change, per column): the columns are Arrow dictionaries,
    so a million rows cost no string each. The explanations come as rows sorted by order and item; their JSON is
    built set-based, in Arrow:
    the text of each row, then the rows of each order joined (an aggregate with ORDER BY in SQL cost 0.8 s
    at 300k orders; this keeps the order for free).
    """
    order_ids = np.asarray(order_ids, dtype=np.int64)
    index = pa.array(np.asarray(changes, dtype=np.int8))
    decided = pa.table(
        {
            "order_id": pa.array(order_ids, pa.int64()),
            **{
                name: pa.DictionaryArray.from_arrays(index, pa.array(values, pa.string()))
                for name, values in labels.items()
            },
            "details": _aligned(
                order_ids,
                [
                    _json_per_order(unknown["order_id"], '{"unknown":[', [unknown["inventory_id"]], ["", ""]),
                    _json_per_order(
                        short["order_id"],
                        '{"short":[',
                        [short["inventory_id"], short["needed"], short["available"]],
                        ['{"inventory_id":', ',"needed":', ',"available":', "}"],
                    ),
                ],
            ),
        }
    )
    with registered(con, decided=decided):
        yield "decided"


def _json_per_order(
    owners: np.ndarray, opening: str, values: list[np.ndarray], around: list[str]
) -> tuple[np.ndarray, pa.Array]:
    """(order ids, JSON text) for rows sorted by order: each row's values between the `around` strings,
    an order's rows joined by commas, the whole between `opening` and ']}'. Integers are written exactly."""
    owners = np.asarray(owners, dtype=np.int64)
    if len(owners) == 0:
        return owners, pa.array([], pa.string())
    if len(owners) > 1 and bool((owners[1:] < owners[:-1]).any()):
        raise ValueError("explanation rows must come sorted by order")
    pieces = [pa.scalar(around[0])]
    for value, text in zip(values, around[1:], strict=False):
        pieces += [pc.cast(pa.array(value, pa.int64()), pa.string()), pa.scalar(text)]
    rows = pc.binary_join_element_wise(*pieces, "")
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    per_order = pa.ListArray.from_arrays(pa.array(np.r_[starts, len(owners)], pa.int32()), rows)
    return owners[starts], pc.binary_join_element_wise(opening, pc.binary_join(per_order, ","), "]}", "")


def _aligned(order_ids: np.ndarray, parts: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """The texts of `parts` ((order ids, texts), ...) placed at their order's row; NULL elsewhere."""
    owners = np.concatenate([part[0] for part in parts])
    texts = pa.concat_arrays([part[1] for part in parts])
    if len(order_ids) > 1 and bool((order_ids[1:] < order_ids[:-1]).any()):
        by_order = np.argsort(order_ids, kind="stable")
        at = by_order[np.searchsorted(order_ids, owners, sorter=by_order)]
    else:
        at = np.searchsorted(order_ids, owners)
    at = np.minimum(at, max(len(order_ids) - 1, 0))
    if len(owners) and not bool((order_ids[at] == owners).all()):
        raise ValueError("an explanation names an order that was not decided")
    take = np.full(len(order_ids), -1, dtype=np.int64)
    take[at] = np.arange(len(owners))
    return texts.take(pa.array(take, mask=take < 0))
