"""The shape every sandbox data set shares: the two paged envelopes of CONTRACT.md section 1.

A data set answers `orders_page` and `stock_page` directly (no HTTP), so the app,
the tests and an independent checker all read exactly the same records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import orjson

MAX_PAGE = 1000  # the contract's upper bound for `limit` and `per_page`


def check_page_size(name: str, value: int) -> None:
    """Reject a page size outside 1..1000 the same way for HTTP and direct callers."""
    if not 1 <= value <= MAX_PAGE:
        raise ValueError(f"{name} must be between 1 and {MAX_PAGE}, got {value}")


class DataSet(ABC):
    """Orders and stock served by the sandbox; subclasses build only the page asked for."""

    #: how many order records the source holds (each is one order id)
    order_count: int
    #: how many stock records the source holds (one per inventory item)
    stock_count: int

    @abstractmethod
    def orders_page(self, after_id: int, limit: int) -> dict[str, Any]:
        """`{"orders": [...], "next_after_id": int | None}`: orders with id > after_id, ascending."""

    def orders_page_json(self, after_id: int, limit: int) -> bytes:
        """`orders_page` as the HTTP body; a data set may write it faster, but always these very bytes."""
        return orjson.dumps(self.orders_page(after_id, limit))

    @abstractmethod
    def _stock_slice(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Stock records start..stop-1 (0-based positions), as one page serves them."""

    def stock_page(self, page: int, per_page: int) -> dict[str, Any]:
        """`{"items": [...], "page", "per_page", "total_pages"}`; a page past the end is empty."""
        check_page_size("per_page", per_page)
        if page < 1:
            raise ValueError(f"page must be >= 1, got {page}")
        # At least one page, so "read pages 1..total_pages" works on an empty warehouse too.
        total_pages = max(1, -(-self.stock_count // per_page))
        start = (page - 1) * per_page
        stop = min(self.stock_count, start + per_page)
        items = self._stock_slice(start, stop) if start < stop else []
        return {"items": items, "page": page, "per_page": per_page, "total_pages": total_pages}

    def all_orders(self, limit: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Every order record exactly as a client paging with `limit` receives it (broken ones included)."""
        after_id = 0
        while True:
            page = self.orders_page(after_id, limit)
            yield from page["orders"]
            if page["next_after_id"] is None:
                return
            after_id = page["next_after_id"]

    def all_stock(self, per_page: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Every stock record exactly as a client paging with `per_page` receives it."""
        page = 1
        while True:
            envelope = self.stock_page(page, per_page)
            yield from envelope["items"]
            if page >= envelope["total_pages"]:
                return
            page += 1

    def order_flaws(self) -> dict[int, str]:
        """True order id -> kind of breakage, for the orders served broken (empty when none are)."""
        return {}

    def stock_flaws(self) -> dict[int, str]:
        """True inventory id -> kind of breakage, for the stock records served broken."""
        return {}
