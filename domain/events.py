"""Domain events, a synchronous message bus, and the status-history recorder that subscribes to them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class DomainEvent:
    order_id: int


@dataclass(frozen=True, slots=True)
class OrderProcessed(DomainEvent):
    allocated: dict[int, int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class OrderFailed(DomainEvent):
    reason: Any = None  # a domain.model.Reason


@dataclass(frozen=True, slots=True)
class OrderReset(DomainEvent):
    previous: Any = None  # the domain.model.Status it left


Handler = Callable[[DomainEvent], None]


class MessageBus:
    """Hands each event to its subscribers, synchronously and in the order they subscribed."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: DomainEvent) -> None:
        for handler in self._handlers[type(event)]:
            handler(event)


class StatusChange(NamedTuple):
    order_id: int
    from_status: str
    to_status: str
    reason: str | None


class StatusHistoryRecorder:
    """Turns each status event into one history row; the store writes them all in the run's transaction."""

    def __init__(self, bus: MessageBus) -> None:
        self.changes: list[StatusChange] = []
        bus.subscribe(OrderProcessed, self._processed)
        bus.subscribe(OrderFailed, self._failed)
        bus.subscribe(OrderReset, self._reset)

    def _processed(self, event: OrderProcessed) -> None:
        self.changes.append(StatusChange(event.order_id, "NEW", "PROCESSED", None))

    def _failed(self, event: OrderFailed) -> None:
        self.changes.append(StatusChange(event.order_id, "NEW", "FAILED", str(event.reason)))

    def _reset(self, event: OrderReset) -> None:
        self.changes.append(StatusChange(event.order_id, str(event.previous), "NEW", "RESET"))
