"""Use cases over many orders: decide the NEW ones, reset the decided ones; history comes from the events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from domain.allocation import allocate
from domain.events import MessageBus, OrderFailed, OrderProcessed, OrderReset, StatusChange, StatusHistoryRecorder


def decide_orders(
    demands: Iterable[tuple[int, Mapping[int, int]]], available: MutableMapping[int, int]
) -> list[StatusChange]:
    """Apply the allocation rule to NEW orders (ascending id) and return the status changes it makes."""
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
