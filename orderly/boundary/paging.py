"""The remotes' paging protocol as Orderly checks it (CONTRACT section 1): pure rules over one page or one
snapshot's pages, each broken rule said in words. The client applies them; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from domain.bounds import MAX_INT


class PageRuleBroken(Exception):
    """A page broke the protocol; the message says which rule, in the operator's words."""


def order_id_of(record: Any) -> int | None:
    """The id a record could be stored under (an integer in 1..2**63-1), else None: such a record is the schema's
    to quarantine, and it takes no part in the paging rules (it never moves the cursor)."""
    rid = record.get("id") if type(record) is dict else None
    return rid if type(rid) is int and 1 <= rid <= MAX_INT else None


def valid_order_ids(records: list[Any]) -> list[int]:
    return [rid for rid in map(order_id_of, records) if rid is not None]


def check_orders_page(after_id: int, page: Any, next_after_id: int | None) -> tuple[int, bool]:
    """(the cursor once this page is loaded, whether it is the last page), or PageRuleBroken. `page` is the page's
    records (the record path) or its OrderColumns (every record storable).

    The rules: every storable id above `after_id` and ascending (equal neighbours are copies of one order: the
    loader judges them); `next_after_id` is the page's last storable id, or null on the last page; a page with no
    storable id carries null. One allowance, so that a corrupt record costs one record: records after the last
    storable id (their ids are the schema's to quarantine) may carry `next_after_id` past it, and the cursor then
    stops at that last id, so they are read again rather than anything skipped. The cursor only ever moves to an
    id a page holds."""
    if isinstance(page, list):
        ids = np.asarray(valid_order_ids(page), dtype=np.int64)
        ends_unstorable = bool(page) and order_id_of(page[-1]) is None
    else:
        ids, ends_unstorable = page.order_id, False
    # The first id that breaks a rule, in page order; an id that breaks both is said to be not above after_id.
    not_above = ids <= after_id
    broken = np.flatnonzero(not_above | np.r_[False, ids[1:] < ids[:-1]])
    if len(broken):
        at = int(broken[0])
        if not_above[at]:
            raise PageRuleBroken(f"the page holds order id {ids[at]}, not above after_id={after_id}")
        raise PageRuleBroken(f"order ids go down within the page ({ids[at - 1]} then {ids[at]})")
    last_id = int(ids[-1]) if len(ids) else None
    if next_after_id is None:
        return (after_id if last_id is None else last_id), True
    if last_id is None:
        raise PageRuleBroken(f"a page with no storable order carries next_after_id={next_after_id} instead of null")
    if next_after_id == last_id:
        return last_id, False
    if next_after_id > last_id and ends_unstorable:
        return last_id, False  # corrupt records end the page: read again from the last good id
    where = "past" if next_after_id > last_id else "before"
    raise PageRuleBroken(f"next_after_id={next_after_id} is {where} the page's last order id ({last_id})")


def check_stock_pages(pages: Mapping[int, list[Any]]) -> str | None:
    """Why the pages (number -> records, every page of one snapshot) are not one snapshot, or None.

    An inventory item on two pages, or an empty page before the last, is a warehouse that ignores `page` or
    repeats itself: believing it would delete the items it never sent."""
    last = max(pages, default=0)
    seen: dict[int, int] = {}
    for number in sorted(pages):
        records = pages[number]
        if not records and number < last:
            return f"page {number} of {last} is empty"
        for record in records:
            item = record.get("inventory_id") if type(record) is dict else None
            if type(item) is not int:
                continue
            first = seen.setdefault(item, number)
            if first != number:
                return f"inventory_id {item} is on page {first} and again on page {number}"
    return None
