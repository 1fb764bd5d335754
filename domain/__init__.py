"""The rules of Orderly in pure Python: orders, products, allocation and domain events (no I/O)."""

from domain.allocation import Decision, allocate, decide
from domain.services import decide_orders, reset_orders
from domain.events import (
    DomainEvent,
    MessageBus,
    OrderFailed,
    OrderProcessed,
    OrderReset,
    StatusChange,
    StatusHistoryRecorder,
)
from domain.model import (
    IllegalTransition,
    InvalidOrder,
    InventoryItem,
    Order,
    OrderLine,
    Product,
    Reason,
    Status,
)

__all__ = [
    "Decision", "allocate", "decide", "decide_orders", "reset_orders",
    "DomainEvent", "MessageBus", "OrderFailed", "OrderProcessed", "OrderReset",
    "StatusChange", "StatusHistoryRecorder",
    "IllegalTransition", "InvalidOrder", "InventoryItem", "Order", "OrderLine",
    "Product", "Reason", "Status",
]
