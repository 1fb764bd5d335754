"""Order and Product aggregates and their value objects, each guarding its own invariants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from domain.events import DomainEvent, OrderFailed, OrderProcessed, OrderReset


class Status(StrEnum):
    NEW = "NEW"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"


class Reason(StrEnum):
    """Why an order failed; the first that applies wins, in this order."""

    UNKNOWN_INVENTORY = "UNKNOWN_INVENTORY"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"


class InvalidOrder(ValueError):
    """An order that breaks an invariant: no lines, or a quantity below 1."""


class IllegalTransition(RuntimeError):
    """A status change the rules do not allow (e.g. processing an order that is not NEW)."""


@dataclass(frozen=True, slots=True)
class OrderLine:
    inventory_id: int
    quantity: int

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise InvalidOrder(f"line for item {self.inventory_id}: quantity {self.quantity} is below 1")


def demand_of(lines: Iterable[OrderLine]) -> dict[int, int]:
    """Total quantity asked per inventory item: lines naming the same item are summed."""
    demand: dict[int, int] = {}
    for line in lines:
        demand[line.inventory_id] = demand.get(line.inventory_id, 0) + line.quantity
    return demand


@dataclass(eq=False)
class Order:
    """The aggregate: an order's lines are fixed; only its status moves, and only along legal edges."""

    id: int
    lines: tuple[OrderLine, ...]
    status: Status = Status.NEW
    reason: Reason | None = None
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.lines = tuple(self.lines)
        if not self.lines:
            raise InvalidOrder(f"order {self.id} has no lines")
        if (self.status is Status.FAILED) != (self.reason is not None):
            raise InvalidOrder(f"order {self.id}: a reason goes with FAILED and only with FAILED")

    @property
    def demand(self) -> dict[int, int]:
        return demand_of(self.lines)

    @property
    def total_quantity(self) -> int:
        return sum(line.quantity for line in self.lines)

    def mark_processed(self) -> None:
        self._leave_new(Status.PROCESSED, None)
        self.events.append(OrderProcessed(self.id, dict(self.demand)))

    def mark_failed(self, reason: Reason) -> None:
        self._leave_new(Status.FAILED, reason)
        self.events.append(OrderFailed(self.id, reason))

    def reset(self) -> None:
        """Back to NEW; a PROCESSED order's allocation is released by no longer counting it."""
        if self.status is Status.NEW:
            return  # resetting a NEW order changes nothing and records nothing
        previous = self.status
        self.status, self.reason = Status.NEW, None
        self.events.append(OrderReset(self.id, previous))

    def _leave_new(self, status: Status, reason: Reason | None) -> None:
        if self.status is not Status.NEW:
            raise IllegalTransition(f"order {self.id} is {self.status}, only NEW orders are processed")
        self.status, self.reason = status, reason


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """One product's stock in one warehouse."""

    inventory_id: int
    product_id: int
    warehouse_id: int
    on_hand: int

    def __post_init__(self) -> None:
        if self.on_hand < 0:
            raise ValueError(f"item {self.inventory_id}: on-hand {self.on_hand} is negative")


@dataclass
class Product:
    """A product groups its inventory items, at most one per warehouse."""

    product_id: int
    sku: str
    name: str
    items: dict[int, InventoryItem] = field(default_factory=dict)  # by warehouse_id

    def add(self, item: InventoryItem) -> None:
        if item.product_id != self.product_id:
            raise ValueError(f"item {item.inventory_id} belongs to product {item.product_id}, not {self.product_id}")
        current = self.items.get(item.warehouse_id)
        if current is not None and current.inventory_id != item.inventory_id:
            raise ValueError(
                f"product {self.product_id} already has item {current.inventory_id} in warehouse {item.warehouse_id}"
            )
        self.items[item.warehouse_id] = item

    @property
    def on_hand(self) -> int:
        return sum(item.on_hand for item in self.items.values())


def available_stock(
    on_hand: Mapping[int, int], processed_orders: Iterable[Mapping[int, int]]
) -> dict[int, int]:
    """available(item) = on-hand in the snapshot - quantities of that item in PROCESSED orders."""
    available = dict(on_hand)
    for demand in processed_orders:
        for item, quantity in demand.items():
            if item in available:
                available[item] -= quantity
    return available
