"""Use cases over many orders: decide the NEW ones, reset the decided ones; history comes from the events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence

from domain.allocation import CODE_REASONS, PROCESSED_CODE, DemandColumns, allocate, allocate_columns
from domain.events import MessageBus, OrderFailed, OrderProcessed, OrderReset, StatusChange, StatusHistoryRecorder


# Per outcome code of `allocate_columns`: (to_status, reason) of its history row.
_LABELS = tuple(("PROCESSED", None) if r is None else ("FAILED", str(r)) for r in CODE_REASONS)


class StatusChanges(Sequence):
    """The status changes of a columnar decision: the rows `StatusHistoryRecorder` would record, kept as
    columns (order ids, outcome codes) so a million of them cost no Python object each until read."""

    def __init__(self, order_ids, codes) -> None:
        self.order_ids = order_ids
        self.codes = codes

    LABELS = _LABELS

    @property
    def processed(self) -> int:
        return int((self.codes == PROCESSED_CODE).sum())

    def __len__(self) -> int:
        return len(self.order_ids)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return _change(int(self.order_ids[index]), int(self.codes[index]))

    def __iter__(self) -> Iterator[StatusChange]:
        for order_id, code in zip(self.order_ids.tolist(), self.codes.tolist()):
            yield _change(order_id, code)


def _change(order_id: int, code: int) -> StatusChange:
    to_status, reason = _LABELS[code]
    return StatusChange(order_id, "NEW", to_status, reason)


def decide_orders(
    demands: Iterable[tuple[int, Mapping[int, int]]], available: MutableMapping[int, int]
) -> list[StatusChange] | StatusChanges:
    """Apply the allocation rule to NEW orders (ascending id) and return the status changes it makes.

    Given `DemandColumns` (the store's bulk read) it takes the columnar path, which decides every
    order exactly as the loop below does but leaves `available` untouched and publishes no event
    per order; its result holds the same history rows, as columns.
    """
    if isinstance(demands, DemandColumns):
        return StatusChanges(*allocate_columns(demands, available))
    bus = MessageBus()
    recorder = StatusHistoryRecorder(bus)
    publish = bus.publish
    for order_id, reason in allocate(demands, available):
        publish(OrderProcessed(order_id) if reason is None else OrderFailed(order_id, reason))
    return recorder.changes


def reset_orders(decided: Iterable[tuple[int, str]]) -> list[StatusChange]:
    """Put PROCESSED or FAILED orders back to NEW; a PROCESSED order's stock is released by that alone."""
    bus = MessageBus()
    recorder = StatusHistoryRecorder(bus)
    for order_id, status in decided:
        if status != "NEW":
            bus.publish(OrderReset(order_id, status))
    return recorder.changes
