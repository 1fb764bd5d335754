"""Issue 9, "Trust at the boundary": a remote that misbehaves the way real services do, over real loopback HTTP.

Every numbered case of the issue (1-9), and more of the same kinds, against tests/hostile.py's scripted
service. Three depths, the cheapest that shows the point:
- the client (orderly.boundary.remote.RemoteClient) where the question is what goes over the wire;
- the pipeline in-process (tests/hostile.run_pipeline: the tasks' own code, no Prefect flow run) where the
  question is what ends up stored, quarantined and decided;
- the real `orderly` command where the operator's view is the point: exit status, one line on stderr, and
  what `status`, `stock`, `rejects` and `runs` then show.
The expected behaviour is docs/CONTRACT.md (sections 1 and 3); wording is asserted only where it quotes it.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ORDERLY, ROOT
from hostile import (
    INT64_MAX,
    HostileRemote,
    Raw,
    Reply,
    WarmStore,
    bad_utf8,
    cli,
    cut,
    error,
    gzip_garbage,
    gzipped,
    hostile_env,
    html,
    item,
    loader_counts,
    order,
    query,
    run_pipeline,
    settings_for,
    slow,
    stored,
    total_counts,
)

# An exception's class name in what the operator reads (ValueError, ConversionException, DecodingError...).
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception)\b")


pytestmark = pytest.mark.usefixtures("small_ca_bundle")  # conftest: loopback http never needs the CA bundle


@pytest.fixture
def remote():
    with HostileRemote(max_trickle_s=10) as hostile:
        yield hostile


def run(remote: HostileRemote, warm: WarmStore, pages_per_chunk: int | None = None, **env):
    """One pipeline pass in-process against the hostile remote (page size 3 unless told)."""
    return run_pipeline(settings_for(remote.url, warm.path, **env), pages_per_chunk=pages_per_chunk)


def assert_counts_add_up(result) -> None:
    """received = loaded + rejected + unchanged repeats, for every batch the loaders took."""
    for source, batches in (("orders", result.order_counts), ("stock", result.stock_counts)):
        for batch in batches:
            c = loader_counts(batch, source)
            assert c["received"] == c["loaded"] + c["rejected"] + c["repeated"], (source, batch)


def orders_total(result, measure: str) -> int:
    return total_counts(result.order_counts, "orders")[measure]


def order_rejects(state: dict) -> list[dict]:
    return [r for r in state["rejects"] if r["source"] == "order"]


def stock_rejects(state: dict) -> list[dict]:
    return [r for r in state["rejects"] if r["source"] == "stock"]


def lines_of(state: dict) -> dict:
    return {oid: state["lines"].get(oid) for oid in state["orders"]}


def statuses(state: dict) -> dict:
    return {oid: (o["status"], o["reason"]) for oid, o in state["orders"].items()}


def ten_orders() -> list[dict]:
    return [order(i, (101, 1), customer=f"C-{i}") for i in range(1, 11)]


# ==== 1. orders: overlaps, repeats, skips, pages that go backwards or ignore `limit` =======================


@pytest.mark.parametrize("overlap, pages_per_chunk", [(1, None), (1, 1), (2, 2)])
def test_overlapping_pages_stop_the_sync_and_lose_nothing(remote, warm, overlap, pages_per_chunk):
    """Case 1: each page re-sends the last `overlap` orders of the previous one (a `>=` cursor): page 2 holds
    ids not above its after_id, which breaks the paging protocol. The sync stops there with one line naming the
    rule; page 1 stays loaded, the cursor is at its last id; a service that keeps the protocol then brings
    every order, each stored once."""
    remote.script(orders=ten_orders(), stock=[item(101, 100)], overlap=overlap)
    first = run(remote, warm, pages_per_chunk)
    assert len(first.problems) == 1, first.problems
    assert "not above after_id=3" in first.problems[0] and remote.url in first.problems[0]
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3] and state["cursor"] == 3
    assert order_rejects(state) == []

    remote.script(orders=ten_orders(), stock=[item(101, 100)])
    again = run(remote, warm, pages_per_chunk)
    assert not again.problems, again.problems
    assert_counts_add_up(again)
    after = stored(warm)
    assert sorted(after["orders"]) == list(range(1, 11)) and order_rejects(after) == []
    assert all(lines == [(101, 1)] for lines in lines_of(after).values())
    assert {s for s, _ in statuses(after).values()} == {"PROCESSED"}


def test_identical_copies_in_one_page_are_one_order(remote, warm):
    """An identical re-send inside one page is one order and a counted repeat, not two quarantined copies."""
    records = [order(1, (101, 1)), order(2, (101, 2)), order(2, (101, 2)), order(3, (101, 3))]
    remote.script(orders=records, stock=[item(101, 100)])
    result = run(remote, warm, ORDERLY_PAGE_SIZE=10)
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3] and state["lines"][2] == [(101, 2)]
    assert order_rejects(state) == []
    assert orders_total(result, "repeated") == 1


def test_two_different_copies_on_one_page_are_neither_kept(remote, warm):
    """Two different copies of one id on one page have no first: neither becomes an order, both are quarantined
    as a conflict; the orders around them load. (A changed copy in a later run keeps the first: see
    test_repeats_in_a_later_run_are_no_ops_or_conflicts.)"""
    records = [
        order(1, (101, 1)),
        order(2, (101, 2), customer="first"),
        order(2, (101, 5), customer="second"),
        order(3, (101, 3)),
    ]
    remote.script(orders=records, stock=[item(101, 100)], keys=[1, 2, 2, 3])
    result = run(remote, warm, ORDERLY_PAGE_SIZE=10)
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 3]
    conflicts = order_rejects(state)
    assert [r["record_key"] for r in conflicts] == ["2", "2"], conflicts
    assert all("came twice on one page with different content; neither copy is kept" in r["reasons"] for r in conflicts)
    assert sorted('"first"' in r["raw"] for r in conflicts) == [False, True]


@pytest.mark.parametrize("invalid_first", [True, False])
def test_an_invalid_copy_never_hides_a_valid_one(remote, warm, invalid_first):
    """A broken copy of an id is quarantined with its own reasons; the valid copy loads either way round."""
    broken = {"id": 2, "placed_at": "2026-11-20T09:15:00Z", "customer_id": "C-2", "items": []}
    good = order(2, (101, 2), customer="C-2")
    records = [order(1, (101, 1)), *([broken, good] if invalid_first else [good, broken]), order(3, (101, 3))]
    remote.script(orders=records, stock=[item(101, 100)])
    result = run(remote, warm, ORDERLY_PAGE_SIZE=10)
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3] and state["lines"][2] == [(101, 2)]
    rejects = order_rejects(state)
    assert len(rejects) == 1 and rejects[0]["record_key"] == "2"
    assert "conflict" not in rejects[0]["reasons"] and rejects[0]["reasons"].strip()


def test_repeats_in_a_later_run_are_no_ops_or_conflicts(remote, warm):
    """A later run whose pages go back over old orders: unchanged ones are no-ops, a changed one is a conflict
    (the first copy stays, with its decision), the new ones load."""
    remote.script(orders=[order(i, (101, 1)) for i in range(1, 5)], stock=[item(101, 100)])
    run(remote, warm, ORDERLY_PAGE_SIZE=10)
    before = stored(warm)
    changed = [order(i, (101, 1)) for i in range(1, 5)]
    changed[2] = order(3, (101, 7))
    remote.script(orders=[*changed, order(5, (101, 1)), order(6, (101, 1))], stock=[item(101, 100)], overlap=4)
    result = run(remote, warm, ORDERLY_PAGE_SIZE=10)
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3, 4, 5, 6]
    assert state["lines"][3] == [(101, 1)] and state["orders"][3]["status"] == before["orders"][3]["status"]
    assert [r["record_key"] for r in order_rejects(state)] == ["3"]
    assert orders_total(result, "repeated") == 3
    assert orders_total(result, "loaded") == 2


@pytest.mark.parametrize("serve", [7, 1], ids=["more-than-limit", "fewer-than-limit"])
def test_pages_that_ignore_limit_lose_nothing(remote, warm, serve):
    remote.script(orders=ten_orders(), stock=[item(101, 100)], serve_limit=serve)
    result = run(remote, warm)
    assert not result.problems and result.order_counts
    state = stored(warm)
    assert sorted(state["orders"]) == list(range(1, 11)) and order_rejects(state) == []


def test_a_page_that_skips_ahead_stops_the_sync_and_loses_nothing(remote, warm):
    """A page whose next_after_id reaches beyond the last order it sent breaks the protocol: the sync stops
    before it (the orders it would skip are never passed), and a sane service then brings every order."""
    remote.script(orders=ten_orders(), stock=[item(101, 100)], skip_ahead=3)
    result = run(remote, warm)
    assert len(result.problems) == 1 and "is past the page's last order id (3)" in result.problems[0]
    assert stored(warm)["cursor"] == 0 and stored(warm)["orders"] == {}  # page 1 itself broke the rule
    remote.script(orders=ten_orders(), stock=[item(101, 100)])
    assert not run(remote, warm).problems
    state = stored(warm)
    assert sorted(state["orders"]) == list(range(1, 11)) and order_rejects(state) == []


def test_next_after_id_going_backwards_stops_with_one_line_and_loses_nothing(remote, warm):
    """Page 2 says next_after_id=1 (behind the cursor): the run stops with one line rather than loop; the
    next run against a sane service loads every order exactly once."""
    remote.script(
        orders=ten_orders(),
        stock=[item(101, 100)],
        next_after_id=lambda after_id, default: 1 if after_id == 3 else default,
    )
    first = run(remote, warm)
    assert len(first.problems) == 1, first.problems
    problem = first.problems[0]
    assert "next_after_id=1 is before the page's last order id (6)" in problem and "\n" not in problem
    assert remote.url in problem
    remote.script(orders=ten_orders(), stock=[item(101, 100)])
    second = run(remote, warm)
    assert not second.problems
    state = stored(warm)
    assert sorted(state["orders"]) == list(range(1, 11)) and order_rejects(state) == []


def test_a_repeated_page_loses_nothing(remote, warm):
    """The service answers the second request with the first page again. Whatever the run makes of it (it may
    stop, saying why in one line), nothing is lost or quarantined: a second run stores every order once."""

    def repeat(request):
        if request.path == "/orders" and request.params.get("after_id") == "3" and request.n == 0:
            return remote.normal("/orders", after_id=0, limit=request.params["limit"])
        return None

    remote.script(orders=ten_orders(), stock=[item(101, 100)], fault=repeat)
    first = run(remote, warm)
    assert all("\n" not in p for p in first.problems)
    assert_counts_add_up(first)
    second = run(remote, warm)
    assert not second.problems
    state = stored(warm)
    assert sorted(state["orders"]) == list(range(1, 11)) and order_rejects(state) == []


# ==== 2. values at and past the integer bounds ============================================================


def test_quantities_summing_past_int64_are_quarantined_and_the_rest_is_processed(remote, warm):
    """Case 2: an order of two lines of 2**62 (sum 2**63) is quarantined, "quantities sum past 2**63-1"; the
    orders after it load and are processed, the cursor moves past it, and the next run is clean."""
    records = [order(1, (101, 1)), order(2, (101, 2**62), (102, 2**62)), *[order(i, (101, 1)) for i in range(3, 8)]]
    remote.script(orders=records, stock=[item(101, 100), item(102, 100)])
    result = run(remote, warm)
    assert not result.problems, result.problems
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 3, 4, 5, 6, 7]
    assert {s for s, _ in statuses(state).values()} == {"PROCESSED"}
    rejects = order_rejects(state)
    assert [r["record_key"] for r in rejects] == ["2"] and "quantities sum past 2**63-1" in rejects[0]["reasons"]
    assert state["cursor"] == 7
    again = run(remote, warm)
    assert not again.problems and stored(warm)["orders"] == state["orders"]


def test_values_past_int64_are_quarantined_and_neighbours_load(remote, warm):
    """Case 2: ids, quantities and item ids past 2**63-1 (2**63, 2**64, 10**30: the last two are past what
    orjson reads as integers), between good orders on every page: each such record is quarantined
    "out of range"; every good order loads and is processed; a rerun is clean."""
    beyond = {
        2: {**order(2, (101, 1)), "id": 2**63},
        4: {**order(4, (101, 1)), "id": 2**64},
        6: {**order(6, (101, 1)), "id": 10**30},
        8: order(8, (101, 2**63)),
        10: order(10, (101, 2**64)),
        12: order(12, (2**63, 1)),
        14: order(14, (101, 10**30)),
    }
    records = [beyond.get(i) or order(i, (101, 1)) for i in range(1, 16)]
    remote.script(orders=records, stock=[item(101, 100)], keys=list(range(1, 16)))
    result = run(remote, warm)
    assert not result.problems, result.problems
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert {s for s, _ in statuses(state).values()} == {"PROCESSED"}
    rejects = order_rejects(state)
    # one per copy used: a record without a usable id at the end of a page is sent again with the next one, and a
    # page read ahead for a cursor not followed is served but dropped unread (docs/CONTRACT.md, the read-ahead)
    received_bad = sum(1 for r in remote.served_orders() if any(r is bad for bad in beyond.values()))
    assert len(beyond) <= len(rejects) <= received_bad, rejects
    assert all(any(json.loads(r["raw"]) == bad for r in rejects) for bad in beyond.values())
    not_out_of_range = [(r["raw"][:60], r["reasons"]) for r in rejects if "out of range" not in r["reasons"]]
    assert not not_out_of_range, not_out_of_range
    again = run(remote, warm)
    assert not again.problems, again.problems
    assert stored(warm)["orders"] == state["orders"]


def test_an_id_of_2_63_on_the_last_page_does_not_become_the_cursor(remote, warm):
    """Case 2: the last page's cursor used to be the largest id in it, so an id of 2**63 there failed every
    run on the cursor's BIGINT. It is quarantined; the orders before it load and are processed."""
    records = [order(i, (101, 1)) for i in range(1, 8)] + [{**order(8, (101, 1)), "id": 2**63}]
    remote.script(orders=records, stock=[item(101, 100)], keys=list(range(1, 9)))
    result = run(remote, warm)
    assert not result.problems, result.problems
    state = stored(warm)
    assert sorted(state["orders"]) == list(range(1, 8)) and 7 <= state["cursor"] <= INT64_MAX
    assert {s for s, _ in statuses(state).values()} == {"PROCESSED"}
    assert [("out of range" in r["reasons"]) for r in order_rejects(state)] == [True]
    again = run(remote, warm)
    assert not again.problems, again.problems


def test_numbers_that_are_not_integers_are_quarantined(remote, warm):
    """Floats (even integral ones: 1.0, 1e3), booleans, strings and null are not integers."""
    wrong = {2: 1.0, 4: 2.5, 6: Raw("1e3"), 8: Raw("2.0E0"), 10: True, 12: "2", 14: None}
    records = [order(i, (101, wrong[i])) if i in wrong else order(i, (101, 1)) for i in range(1, 16)]
    records.append({**order(16, (101, 1)), "id": 16.0})
    remote.script(orders=records, stock=[item(101, 100)], keys=list(range(1, 17)))
    result = run(remote, warm, ORDERLY_PAGE_SIZE=20)
    assert not result.problems and result.order_counts
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 3, 5, 7, 9, 11, 13, 15]
    rejects = order_rejects(state)
    assert len(rejects) == len(wrong) + 1 and all(r["reasons"].strip() for r in rejects)
    typed = [r for r in rejects if r["record_key"] != "14"]  # 14's quantity is missing (null)
    assert all("must be an integer" in r["reasons"] for r in typed), [r["reasons"] for r in typed]


def test_text_fields_must_be_short_valid_unicode(remote, warm):
    """A lone surrogate (written as the JSON escape `\\ud800`) is not valid Unicode; 1001 characters are too
    many; 1000 characters and non-ASCII text are fine. The page is parsed anyway (one bad record is
    quarantined, not the page refused), and a huge record is kept cut to 10,000 characters."""
    records = [
        order(1, (101, 1), customer="x" * 1000),
        order(2, (101, 1), customer=Raw('"C-\\ud800"')),
        order(3, (101, 1), customer="Zoë 🚀 ümlaut"),
        order(4, (101, 1), customer="y" * 1001),
        order(5, (101, 1), customer="z" * 200_000),
        order(6, (101, 1), placed_at=Raw('"2026-11-20T09:15:00\\udc00Z"')),
        order(7, (101, 1)),
    ]
    remote.script(orders=records, stock=[item(101, 100)])
    result = run(remote, warm, ORDERLY_PAGE_SIZE=10)
    assert not result.problems, result.problems
    assert_counts_add_up(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 3, 7]
    assert state["orders"][1]["customer_id"] == "x" * 1000
    assert state["orders"][3]["customer_id"] == "Zoë 🚀 ümlaut"
    rejects = {r["record_key"]: r for r in order_rejects(state)}
    assert sorted(rejects) == ["2", "4", "5", "6"], rejects
    assert "not valid Unicode" in rejects["2"]["reasons"], rejects["2"]["reasons"]
    assert all(len(r["raw"]) <= 10_000 for r in rejects.values()), {k: len(r["raw"]) for k, r in rejects.items()}
    assert all(r["reasons"].strip() for r in rejects.values())


# ==== 3. exact integer decisions ====================================================================


def test_on_hand_2_53_plus_1_is_decided_exactly(remote, warm):
    """Case 3: on hand 2**53+1; an order for 2**53+1 then one for 1: PROCESSED then FAILED, available 0
    (float64 would see 2**53+1 as 2**53 and let both through)."""
    remote.script(orders=[order(1, (101, 2**53 + 1)), order(2, (101, 1))], stock=[item(101, 2**53 + 1)])
    result = run(remote, warm)
    assert not result.problems, result.problems
    state = stored(warm)
    assert statuses(state) == {1: ("PROCESSED", None), 2: ("FAILED", "INSUFFICIENT_STOCK")}
    assert state["stock"] == {101: 2**53 + 1}


def test_stock_of_int64_max_is_processed_exactly(remote, warm):
    """Case 3: a stock quantity of 2**63-1 no longer stops processing; demands summing to exactly 2**63-1 fit,
    one more unit does not."""
    orders = [order(1, (101, 2**62)), order(2, (101, 2**62 - 1)), order(3, (101, 1)), order(4, (102, 1))]
    remote.script(orders=orders, stock=[item(101, INT64_MAX), item(102, INT64_MAX)])
    result = run(remote, warm)
    assert not result.problems, result.problems
    state = stored(warm)
    assert statuses(state) == {
        1: ("PROCESSED", None),
        2: ("PROCESSED", None),
        3: ("FAILED", "INSUFFICIENT_STOCK"),
        4: ("PROCESSED", None),
    }
    assert state["stock"] == {101: INT64_MAX, 102: INT64_MAX}


def test_demands_above_2_53_are_summed_exactly_within_an_order(remote, warm):
    """Lines naming the same item are summed exactly: 2**53 + 1 against on hand 2**53 is short."""
    remote.script(orders=[order(1, (101, 2**53), (101, 1)), order(2, (101, 2**53))], stock=[item(101, 2**53)])
    run(remote, warm)
    assert statuses(stored(warm)) == {1: ("FAILED", "INSUFFICIENT_STOCK"), 2: ("PROCESSED", None)}


# ==== stock: duplicates and bad values ===================================================================


def test_an_identical_stock_record_twice_is_one_item(remote, warm):
    remote.script(stock=[item(101, 5), item(102, 7), item(101, 5)], orders=[order(1, (101, 5))])
    result = run(remote, warm)
    assert not result.problems, result.problems
    assert_counts_add_up(result)
    state = stored(warm)
    assert state["stock"] == {101: 5, 102: 7} and stock_rejects(state) == []
    assert statuses(state) == {1: ("PROCESSED", None)}


def test_a_quarantined_stock_record_keeps_the_last_good_value(remote, warm):
    """Two different copies of one item, a negative quantity, quantities past int64 (2**63, 2**64), a float and a
    boolean: each such item keeps its last good value (nothing deleted or overwritten); the good ones change."""
    remote.script(stock=[item(100 + i, 5) for i in range(1, 9)])
    run(remote, warm)
    assert stored(warm)["stock"] == {100 + i: 5 for i in range(1, 9)}
    broken = [
        item(101, 50),
        item(101, 60),
        item(102, -1),
        item(103, 2**63),
        item(104, 2**64),
        item(105, 1.0),
        item(106, True),
    ]
    remote.script(stock=[*broken, item(107, 9), item(108, 0)])
    result = run(remote, warm)
    assert not result.problems, result.problems
    assert_counts_add_up(result)
    state = stored(warm)
    assert state["stock"] == {101: 5, 102: 5, 103: 5, 104: 5, 105: 5, 106: 5, 107: 9, 108: 0}
    assert len(stock_rejects(state)) == len(broken) and all(r["reasons"].strip() for r in stock_rejects(state))


# ==== the client: envelopes, total_pages, deadlines, bodies ========================================================


def client_settings(remote: HostileRemote, tmp_path: Path, **env):
    return settings_for(remote.url, tmp_path / "unused.duckdb", **env)


async def _all_orders(client) -> list:
    records = []
    async for page, _cursor, _last in client.order_pages(0):
        records.extend(page if isinstance(page, list) else page.to_records())
    return records


@pytest.mark.parametrize(
    "value", [2**63, 2**64, -1, 1.5, "5", True], ids=["2**63", "2**64", "-1", "1.5", "str", "true"]
)
def test_a_next_after_id_that_is_not_a_bigint_refuses_the_envelope(remote, tmp_path, value):
    """Case 2: next_after_id must be null or an int in 0..2**63-1; otherwise the envelope is refused (retried
    as a bad body), then one line naming the service URL."""
    from orderly.boundary.remote import RemoteClient
    from orderly.errors import RemoteError

    remote.script(orders=ten_orders(), next_after_id=lambda after_id, default: value if after_id == 0 else default)
    with pytest.raises(RemoteError) as failed:
        asyncio.run(_all_orders(RemoteClient(client_settings(remote, tmp_path, ORDERLY_HTTP_RETRIES=2))))
    message = str(failed.value)
    assert "\n" not in message and f"{remote.url}/orders" in message, message
    assert remote.count("/orders", after_id=0) == 3  # retried as a bad body: 1 + ORDERLY_HTTP_RETRIES


def test_next_after_id_2_63_in_the_pipeline_moves_nothing(remote, warm):
    remote.script(
        orders=ten_orders(),
        stock=[item(101, 100)],
        next_after_id=lambda after_id, default: 2**63 if after_id == 0 else default,
    )
    result = run(remote, warm, ORDERLY_HTTP_RETRIES=1)
    assert len(result.problems) == 1 and f"{remote.url}/orders" in result.problems[0]
    state = stored(warm)
    assert state["orders"] == {} and (state["cursor"] or 0) == 0


@pytest.mark.parametrize("first, later", [(2, 3), (3, 2)])
def test_stock_pages_that_disagree_on_total_pages_are_not_a_snapshot(remote, tmp_path, first, later):
    """Case 5: page 1 says `first` pages, page 2 says `later`: no snapshot (an error naming total_pages), and
    no page is asked twice (not retried)."""
    from orderly.boundary.remote import RemoteClient
    from orderly.errors import RemoteError

    remote.script(
        stock=[item(100 + i, 1) for i in range(6)], total_pages=lambda page, computed: first if page == 1 else later
    )
    with pytest.raises(RemoteError) as failed:
        asyncio.run(RemoteClient(client_settings(remote, tmp_path, ORDERLY_PAGE_SIZE=2)).stock_snapshot())
    message = str(failed.value)
    assert "\n" not in message and "total_pages" in message and f"{first} to {later}" in message, message
    assert remote.count("/stock", page=1) == 1 and remote.count("/stock", page=2) == 1


_STOCK_CLIENT = r"""
import asyncio, json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))  # the old client took 2.1 GB: fail, don't swap
from orderly.boundary.remote import RemoteClient
from orderly.settings import Settings
settings = Settings.from_env(json.loads(sys.argv[1]))
started = time.monotonic()
try:
    asyncio.run(RemoteClient(settings).stock_snapshot())
    outcome = {"error": None}
except BaseException as error:
    outcome = {"error": str(error), "type": type(error).__name__}
outcome["elapsed"] = time.monotonic() - started
print(json.dumps(outcome))
"""


def stock_client_in_subprocess(remote: HostileRemote, timeout: float, **env) -> dict:
    """The client in its own process, so a client that builds a million coroutines cannot take the test run's
    memory or time with it (killed after `timeout` s)."""
    values = {
        "ORDERLY_ORDERS_URL": remote.url,
        "ORDERLY_WAREHOUSE_URL": remote.url,
        "ORDERLY_PAGE_SIZE": "2",
        "ORDERLY_HTTP_RETRIES": "0",
        "ORDERLY_HTTP_TIMEOUT": "5",
        **{k: str(v) for k, v in env.items()},
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _STOCK_CLIENT, json.dumps(values)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the stock client did not finish within {timeout} s ({len(remote.requests)} requests)")
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    outcome["wall"] = time.monotonic() - started
    return outcome


def test_total_pages_past_the_cap_is_refused_at_once(remote):
    """Case 5: page 1 claims total_pages=10**6, past ORDERLY_MAX_STOCK_PAGES (default 10000): refused quickly,
    naming the setting, without asking for another page."""
    remote.script(stock=[item(101, 1)], total_pages=lambda page, computed: 10**6)
    outcome = stock_client_in_subprocess(remote, timeout=10)
    assert outcome["error"] and "ORDERLY_MAX_STOCK_PAGES" in outcome["error"], outcome
    assert "1000000" in outcome["error"] and "\n" not in outcome["error"]
    assert outcome["elapsed"] < 5 and remote.count("/stock") == 1


def test_a_huge_total_pages_is_fetched_lazily_within_the_concurrency_bound(remote):
    """Case 5: total_pages=10**6 allowed by the setting; page 40 answers 404. The client schedules pages as it
    goes (no million coroutines up front), ends quickly on the 404, and never has more than
    ORDERLY_FETCH_CONCURRENCY requests in flight."""

    def fault(request):
        if request.path == "/stock" and int(request.params["page"]) >= 40:
            return error(404)
        if request.path == "/stock" and request.params["page"] != "1":
            return replace(request.normal(), delay=0.02)
        return None

    remote.script(stock=[item(101, 1), item(102, 2)], total_pages=lambda page, computed: 10**6, fault=fault)
    outcome = stock_client_in_subprocess(
        remote, timeout=10, ORDERLY_MAX_STOCK_PAGES=1_000_000, ORDERLY_FETCH_CONCURRENCY=3
    )
    assert outcome["error"] and "404" in outcome["error"], outcome
    assert outcome["elapsed"] < 5, outcome
    assert remote.max_in_flight <= 3, remote.max_in_flight
    assert remote.count("/stock") <= 40 + 3  # up to the 404, and what was already in flight


@pytest.mark.parametrize("path", ["/stock", "/orders"])
def test_a_body_trickling_a_byte_at_a_time_is_bounded_by_the_timeout(remote, tmp_path, path):
    """Case 6: a body arriving one byte every 0.5 s; ORDERLY_HTTP_TIMEOUT=2 bounds the whole request, not each
    read: the read fails within a few seconds with a time-out line."""
    from orderly.boundary.remote import RemoteClient
    from orderly.errors import RemoteError

    remote.script(
        orders=ten_orders(),
        stock=[item(101, 1)],
        fault=lambda request: slow(request.normal(), 0.5) if request.path == path else None,
    )
    client = RemoteClient(client_settings(remote, tmp_path, ORDERLY_HTTP_TIMEOUT=2, ORDERLY_HTTP_RETRIES=0))
    started = time.monotonic()
    with pytest.raises(RemoteError) as failed:
        asyncio.run(client.stock_snapshot() if path == "/stock" else _all_orders(client))
    elapsed = time.monotonic() - started
    message = str(failed.value)
    assert elapsed < 8, f"took {elapsed:.1f} s: {message}"
    assert "timed out" in message and "\n" not in message and f"{remote.url}{path}" in message, message


def test_a_slow_but_timely_body_is_read(remote, tmp_path):
    """The whole-request deadline is the setting, not less: a body trickled over ~1 s with a 6 s timeout reads."""
    from orderly.boundary.remote import RemoteClient

    remote.script(stock=[item(101, 1)], fault=lambda request: slow(request.normal(), 1.0 / 200))
    assert len(remote.normal("/stock", page=1, per_page=3).body) < 250
    client = RemoteClient(client_settings(remote, tmp_path, ORDERLY_HTTP_TIMEOUT=6, ORDERLY_HTTP_RETRIES=0))
    assert asyncio.run(client.stock_snapshot()) == [item(101, 1)]


BAD_BODIES = {
    "gzip-garbage": lambda normal: gzip_garbage(),
    "gzip-cut": lambda normal: gzip_garbage(normal),
    "bad-utf8": bad_utf8,
    "cut-body": cut,
    "503": lambda normal: error(503),
    "502-html": lambda normal: html(502),
    "200-html": lambda normal: html(200),
    "not-the-envelope": lambda normal: Reply.json({"data": []}),
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
def test_a_bad_body_once_is_retried(remote, tmp_path, kind):
    """Case 7: a body that is cut, cannot be decoded (corrupt gzip, bytes that are not UTF-8) or is not the
    envelope, once on each service: retried, and the same records arrive as from a sane service."""
    from orderly.boundary.remote import RemoteClient

    def fault(request):
        first = request.n == 0 and (
            (request.path == "/stock" and request.params["page"] == "2")
            or (request.path == "/orders" and request.params["after_id"] == "3")
        )
        return BAD_BODIES[kind](request.normal()) if first else None

    stock = [item(100 + i, i) for i in range(7)]
    remote.script(orders=ten_orders(), stock=stock, fault=fault)
    client = RemoteClient(client_settings(remote, tmp_path, ORDERLY_HTTP_RETRIES=2))
    assert asyncio.run(client.stock_snapshot()) == stock
    assert asyncio.run(_all_orders(client)) == ten_orders()
    assert remote.count("/stock", page=2) == 2 and remote.count("/orders", after_id=3) == 2


def test_a_well_gzipped_body_is_read(remote, tmp_path):
    from orderly.boundary.remote import RemoteClient

    remote.script(orders=ten_orders(), fault=lambda request: gzipped(request.normal()))
    assert asyncio.run(_all_orders(RemoteClient(client_settings(remote, tmp_path)))) == ten_orders()


@pytest.mark.parametrize("kind", ["gzip-garbage", "bad-utf8", "cut-body"])
def test_a_bad_body_every_time_fails_in_one_line(remote, tmp_path, kind):
    """Case 7: retried, then one line naming the URL and the setting; no internal exception name (STANDARDS)."""
    from orderly.boundary.remote import RemoteClient
    from orderly.errors import RemoteError

    remote.script(stock=[item(101, 1)], fault=lambda request: BAD_BODIES[kind](request.normal()))
    with pytest.raises(RemoteError) as failed:
        asyncio.run(RemoteClient(client_settings(remote, tmp_path, ORDERLY_HTTP_RETRIES=1)).stock_snapshot())
    message = str(failed.value)
    assert remote.count("/stock", page=1) == 2
    assert "\n" not in message and f"{remote.url}/stock" in message and "ORDERLY_WAREHOUSE_URL" in message
    assert not CLASS_NAME.search(message), message


# ==== the command, as the operator sees it ===========================================================================


def assert_one_clean_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A non-zero exit and exactly one line on stderr holding `fragments`; no traceback, no class name."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not CLASS_NAME.search(result.stderr), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_cli_overlap_of_one_is_a_protocol_violation_and_loses_nothing(cli_env, remote):
    """Case 1 as the operator sees it: page 2 re-sends id 3 (not above after_id=3): exit 5 and one line naming
    the service, its URL and the rule; the run is FAILED, page 1 is kept; once the service keeps the protocol,
    a rerun brings the ten orders, each once."""
    remote.script(orders=ten_orders(), stock=[item(101, 100)], overlap=1)
    env = hostile_env(cli_env, remote.url)
    first = cli(["run"], env)
    assert first.returncode == 5, first.stderr
    assert_one_clean_line(first, "orders service", remote.url, "not above after_id=3")
    assert sorted(stored(env["ORDERLY_DB"])["orders"]) == [1, 2, 3]
    remote.script(orders=ten_orders(), stock=[item(101, 100)])
    second = cli(["run"], env)
    assert second.returncode == 0, second.stderr
    rows = query(["status"], env)
    assert [r["order_id"] for r in rows] == list(range(1, 11))
    assert {r["status"] for r in rows} == {"PROCESSED"} and query(["rejects"], env) == []
    assert [r["state"] for r in query(["runs"], env)] == ["COMPLETED", "FAILED"]  # newest first


def test_cli_hostile_values_are_quarantined_and_the_rest_decided_exactly(cli_env, remote):
    """Cases 2 and 3 in one run: a sum past int64, a quantity of 2**63, ids of 2**63 (on the last page) and
    2**64 are quarantined; every other order loads and is decided in exact integers against on-hand
    2**63-1 and 2**53+1. Exit 0; a rerun changes nothing."""
    records = [
        order(1, (102, 2**53 + 1)),  # PROCESSED: takes all of 102
        order(2, (102, 1)),  # FAILED: 102 is empty now
        order(3, (103, 2**62), (103, 2**62)),  # quarantined: sum past 2**63-1
        order(4, (101, 2**62)),  # PROCESSED
        {**order(5, (103, 1)), "id": 2**64},  # quarantined: id past 64 bits
        order(6, (101, 2**62 - 1)),  # PROCESSED: 101 is now exactly empty
        order(7, (101, 1)),  # FAILED
        order(8, (103, 2**63)),  # quarantined: quantity out of range
        order(9, (103, 1)),  # PROCESSED
        {**order(10, (103, 1)), "id": 2**63},  # quarantined, on the last page
    ]
    remote.script(
        orders=records, stock=[item(101, INT64_MAX), item(102, 2**53 + 1), item(103, 10)], keys=list(range(1, 11))
    )
    env = hostile_env(cli_env, remote.url)
    first = cli(["run"], env)
    assert first.returncode == 0, first.stderr
    rows = {r["order_id"]: (r["status"], r["reason"], r["total_qty"]) for r in query(["status"], env)}
    assert rows == {
        1: ("PROCESSED", None, 2**53 + 1),
        2: ("FAILED", "INSUFFICIENT_STOCK", 1),
        4: ("PROCESSED", None, 2**62),
        6: ("PROCESSED", None, 2**62 - 1),
        7: ("FAILED", "INSUFFICIENT_STOCK", 1),
        9: ("PROCESSED", None, 1),
    }
    stock = {i["inventory_id"]: (i["on_hand"], i["available"]) for i in query(["stock"], env)["items"]}
    assert stock == {101: (INT64_MAX, 0), 102: (2**53 + 1, 0), 103: (10, 9)}
    rejects = query(["rejects"], env)
    assert len(rejects) == 4 and all(r["source"] == "order" and r["reasons"].strip() for r in rejects)
    by_key = {r["record_key"]: r["reasons"] for r in rejects}
    assert "quantities sum past 2**63-1" in by_key["3"] and "out of range" in by_key["8"]
    assert sum("out of range" in r["reasons"] for r in rejects) >= 3
    before = stored(env["ORDERLY_DB"])
    again = cli(["run"], env)
    assert again.returncode == 0, again.stderr
    after = stored(env["ORDERLY_DB"])
    assert after["orders"] == before["orders"] and after["lines"] == before["lines"]
    # The rerun reads the look-back window again (every order here: fewer than ORDERLY_LOOKBACK_ORDERS), so it
    # receives the four bad records again and quarantines them again, with the same reasons: rejects log each
    # copy received (received = loaded + rejected + repeats per run).
    again_rejected = order_rejects(after)[len(order_rejects(before)) :]
    assert after["history"] == before["history"] and len(order_rejects(before)) == 4
    assert sorted(r["reasons"] for r in again_rejected) == sorted(r["reasons"] for r in order_rejects(before))


def test_cli_next_after_id_past_int64_is_one_line(cli_env, remote):
    """Case 2: the orders service says next_after_id=2**63: refused (retried as a bad body), then one line
    naming the service URL; non-zero exit; nothing half-loaded."""
    remote.script(
        orders=ten_orders(),
        stock=[item(101, 100)],
        next_after_id=lambda after_id, default: 2**63 if after_id == 0 else default,
    )
    env = hostile_env(cli_env, remote.url)
    result = cli(["sync"], env)
    assert_one_clean_line(result, f"{remote.url}/orders")
    assert result.returncode == 5  # a remote failure, whichever command met it
    assert remote.count("/orders", after_id=0) == 2
    assert stored(env["ORDERLY_DB"])["orders"] == {}


REFUSALS = {  # refused at once, naming the token / the URL setting; retried, then naming the URL setting
    "401": (lambda: error(401), "ORDERLY_API_TOKEN"),
    "404": (lambda: error(404), "ORDERLY_WAREHOUSE_URL"),
    "html": (lambda: html(200), "ORDERLY_WAREHOUSE_URL"),
}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_cli_first_run_against_a_failing_warehouse_names_the_cause(cli_env, remote, kind):
    """Case 4: the first `orderly run` against a warehouse that answers 401/403/404/5xx/HTML: the one line on
    stderr, and the run's message in `orderly runs`, name the URL and the setting to fix, before any "no
    stock snapshot" consequence; exit 5 (a remote failure). The orders still arrive, NEW."""
    answer, setting = REFUSALS[kind]
    remote.script(
        orders=ten_orders(),
        stock=[item(101, 100)],
        fault=lambda request: answer() if request.path == "/stock" else None,
    )
    env = hostile_env(cli_env, remote.url)
    result = cli(["run"], env)
    line = assert_one_clean_line(result, f"{remote.url}/stock", setting)
    assert result.returncode == 5, (result.returncode, line)
    if "snapshot" in line:
        assert line.index(f"{remote.url}/stock") < line.index("snapshot"), line
    latest = query(["runs"], env)[0]
    assert latest["state"] == "FAILED"
    assert f"{remote.url}/stock" in latest["message"] and setting in latest["message"], latest
    state = stored(env["ORDERLY_DB"])
    assert sorted(state["orders"]) == list(range(1, 11))
    assert {o["status"] for o in state["orders"].values()} == {"NEW"}


def test_cli_total_pages_that_change_leave_the_stock_as_it_was(cli_env, remote):
    """Case 5: after a good sync, the warehouse's page 1 says 2 pages and page 2 says 3: non-zero exit, one
    line about total_pages; the stock is the previous snapshot's (nothing deleted, nothing changed), and no
    order fails with UNKNOWN_INVENTORY for want of page 3's items."""
    stock = [item(100 + i, 10) for i in range(1, 7)]  # page size 2: three pages, 105 and 106 on page 3
    remote.script(orders=[order(1, (101, 1))], stock=stock)
    env = hostile_env(cli_env, remote.url, ORDERLY_PAGE_SIZE=2)
    assert cli(["run"], env).returncode == 0
    good = query(["stock"], env)
    before = {i["inventory_id"]: i["on_hand"] for i in good["items"]}
    assert before == {101: 10, 102: 10, 103: 10, 104: 10, 105: 10, 106: 10}
    snapshots = good["snapshot"]["snapshot_id"]

    remote.script(
        orders=[order(1, (101, 1)), order(2, (105, 1)), order(3, (106, 2))],
        stock=[item(100 + i, 20) for i in range(1, 7)],
        total_pages=lambda page, computed: 2 if page == 1 else 3,
    )
    result = cli(["run"], env)
    assert_one_clean_line(result, "total_pages")
    after = query(["stock"], env)
    assert {i["inventory_id"]: i["on_hand"] for i in after["items"]} == before
    assert after["snapshot"]["snapshot_id"] == snapshots  # no snapshot was recorded
    assert all(o["reason"] != "UNKNOWN_INVENTORY" for o in stored(env["ORDERLY_DB"])["orders"].values())
    assert remote.count("/stock", page=1) == 1 and remote.count("/stock", page=3) == 0
    assert "total_pages" in query(["runs"], env)[0]["message"]


# ==== settings and usage errors ===================================================================================

BAD_SETTINGS = [
    ("ORDERLY_MAX_STOCK_AGE", "nan"),
    ("ORDERLY_MAX_STOCK_AGE", "inf"),
    ("ORDERLY_MAX_STOCK_AGE", "-1"),
    ("ORDERLY_RETRY_AFTER_CAP", "nan"),
    ("ORDERLY_RETRY_AFTER_CAP", "-5"),
    ("ORDERLY_HTTP_RETRIES", "nan"),
    ("ORDERLY_HTTP_RETRIES", "1.5"),
    ("ORDERLY_HTTP_RETRIES", "-1"),
    ("ORDERLY_HTTP_RETRIES", "101"),
    ("ORDERLY_PAGE_SIZE", "5000"),
    ("ORDERLY_PAGE_SIZE", "0"),
    ("ORDERLY_PAGE_SIZE", "2.5"),
    ("ORDERLY_FETCH_CONCURRENCY", "0"),
    ("ORDERLY_FETCH_CONCURRENCY", "65"),
    ("ORDERLY_HTTP_TIMEOUT", "0"),
    ("ORDERLY_HTTP_TIMEOUT", "nan"),
    ("ORDERLY_HTTP_TIMEOUT", "-inf"),
    ("ORDERLY_LOCK_TIMEOUT", "-1"),
    ("ORDERLY_LOCK_TIMEOUT", "nan"),
    ("ORDERLY_MAX_STOCK_PAGES", "0"),
    ("ORDERLY_MAX_STOCK_PAGES", "1000001"),
    ("ORDERLY_MAX_STOCK_PAGES", "lots"),
    ("ORDERLY_SCHEDULE_SECONDS", "5"),
    ("ORDERLY_SCHEDULE_SECONDS", "nan"),
    ("ORDERLY_ORDERS_URL", "http://[::1"),
    ("ORDERLY_ORDERS_URL", "ftp://example.invalid/"),
    ("ORDERLY_WAREHOUSE_URL", "http://"),
    ("ORDERLY_WAREHOUSE_URL", "http://[::1"),
    ("ORDERLY_API_TOKEN", "s3cr3t\nXyZzYQ"),
    ("ORDERLY_API_TOKEN", "tök3nQQ"),
    ("ORDERLY_API_TOKEN", "two W0rdsZZ"),
    ("ORDERLY_UI_TOKEN", "ui\nXyZzYQ"),
    ("ORDERLY_SANDBOX_TOKEN", "sändbQQ"),
]
SECRET_MARKS = ("XyZzYQ", "tök3nQQ", "W0rdsZZ", "sändbQQ")


@pytest.mark.parametrize("name, value", BAD_SETTINGS, ids=[f"{n}={v!r}" for n, v in BAD_SETTINGS])
def test_every_bad_value_of_a_setting_is_refused_naming_it(name, value):
    """Case 8, every value: the settings check refuses it with one line naming the variable (never the token)."""
    from orderly.settings import Settings

    with pytest.raises(Exception) as refused:
        Settings.from_env({name: value})
    message = str(refused.value)
    assert name in message and "\n" not in message, message
    assert not any(mark in message for mark in SECRET_MARKS), message


# The command, for each kind of check (every value above goes through the same check): a query command
# (`status`) checks too, even settings it does not use; data-changing commands stop before Prefect starts and
# before the store is touched.
SETTING_RUNS = [
    ("ORDERLY_MAX_STOCK_AGE", "nan", "status"),
    ("ORDERLY_HTTP_RETRIES", "1.5", "status"),
    ("ORDERLY_PAGE_SIZE", "5000", "status"),
    ("ORDERLY_MAX_STOCK_PAGES", "0", "status"),
    ("ORDERLY_SCHEDULE_SECONDS", "5", "status"),
    ("ORDERLY_ORDERS_URL", "http://[::1", "status"),
    ("ORDERLY_API_TOKEN", "tök3nQQ", "status"),
    ("ORDERLY_SANDBOX_TOKEN", "sändbQQ", "status"),
    ("ORDERLY_MAX_STOCK_AGE", "nan", "run"),
    ("ORDERLY_HTTP_RETRIES", "nan", "sync"),
    ("ORDERLY_API_TOKEN", "s3cr3t\nXyZzYQ", "run"),
]


@pytest.fixture(scope="module")
def setting_results(tmp_path_factory):
    """Every bad-setting command, two at a time (each is a short process: the setting is checked first)."""
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    tmp = tmp_path_factory.mktemp("settings")

    def one(numbered):
        number, case = numbered
        name, value, command = case
        env = {
            **base,
            "ORDERLY_DB": str(tmp / f"{number}.duckdb"),
            "PREFECT_API_URL": "http://127.0.0.1:9/api",
            name: value,
        }
        started = time.monotonic()
        done = subprocess.run([ORDERLY, command], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        return case, (done, time.monotonic() - started, Path(env["ORDERLY_DB"]).exists())

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, enumerate(SETTING_RUNS)))


@pytest.mark.slow  # setting_results runs the `orderly` executable (tests/tiers.py)
@pytest.mark.parametrize("case", SETTING_RUNS, ids=[f"{c}-{n}={v!r}" for n, v, c in SETTING_RUNS])
def test_a_bad_setting_is_refused_up_front_naming_the_variable(setting_results, case):
    """Case 8: every setting checked once, before anything runs (query commands too): exit 2, one line naming
    the variable, fast, nothing created; a token's value is never echoed."""
    name, _value, _command = case
    result, elapsed, db_created = setting_results[case]
    line = assert_one_clean_line(result, name)
    assert result.returncode == 2, (result.returncode, line)
    assert elapsed < 10, elapsed
    assert not db_created
    for mark in SECRET_MARKS:
        assert mark not in result.stderr + result.stdout


USAGE_ERRORS = [
    ["runs", "--limit", "-1"],
    ["rejects", "--limit", "-1"],
    ["process", "--order", "99999999999999999999"],
    ["reset", "--order", "99999999999999999999"],
    ["process", "--order", str(2**63)],
    ["history", str(2**63)],
    ["sandbox", "--port", "99999"],
    ["sandbox", "--orders", "-5"],
]


@pytest.fixture(scope="module")
def usage_results(tmp_path_factory, prefect_server):
    """Every usage-error command, two at a time (short processes; none may start anything), against a store that
    exists (an empty one reads as nothing to show, which would hide a bad --limit) and the session's Prefect."""
    import os

    from orderly.store import open_store

    db = tmp_path_factory.mktemp("usage") / "orderly.duckdb"
    with open_store(db):
        pass
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(ORDERLY_DB=str(db), PREFECT_API_URL=prefect_server["api_url"], PREFECT_HOME=prefect_server["home"])

    def one(args):
        try:
            return tuple(args), subprocess.run(
                [ORDERLY, *args], env=env, capture_output=True, text=True, timeout=20, cwd=ROOT
            )
        except subprocess.TimeoutExpired:
            return tuple(args), None

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, [[], *USAGE_ERRORS]))


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=[" ".join(a) for a in USAGE_ERRORS])
def test_a_usage_error_is_one_clean_line(usage_results, args):
    """Case 9: one line starting "error: ", exit 2, no traceback, no exception class name."""
    result = usage_results[tuple(args)]
    if result is None:
        pytest.fail(f"orderly {' '.join(args)} did not refuse its arguments: still running after 20 s")
    line = assert_one_clean_line(result)
    assert result.returncode == 2 and line.startswith("error: "), (result.returncode, line)
    assert line.strip() != "error:"


def test_orderly_alone_prints_the_help_and_exits_2(usage_results):
    """Case 9: no arguments: the help, exit 2, and no blank "error: " line."""
    result = usage_results[()]
    assert result is not None
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Usage" in result.stdout + result.stderr and "run" in result.stdout + result.stderr
    assert not any(re.fullmatch(r"\s*error:?\s*", line, re.IGNORECASE) for line in result.stderr.splitlines()), (
        result.stderr
    )
    assert "Traceback" not in result.stderr and not CLASS_NAME.search(result.stderr)


def test_cli_two_different_copies_on_one_page_are_neither_kept(cli_env, remote):
    """Class 12 as the operator sees it: order 2 comes twice on one page with different lines. Neither copy
    becomes an order, both are in `orderly rejects` as a conflict; the other orders are decided; exit 0. A second
    run (the look-back reads the page again) stores it no more than the first did."""
    records = [
        order(1, (101, 1)),
        order(2, (101, 2), customer="first"),
        order(2, (101, 5), customer="second"),
        order(3, (101, 3)),
    ]
    remote.script(orders=records, stock=[item(101, 100)], keys=[1, 2, 2, 3])
    env = hostile_env(cli_env, remote.url, ORDERLY_PAGE_SIZE=10)
    for _ in range(2):
        result = cli(["run"], env)
        assert result.returncode == 0, result.stderr
        assert [r["order_id"] for r in query(["status"], env)] == [1, 3]
    conflicts = [r for r in query(["rejects"], env) if r["source"] == "order"]
    assert [r["record_key"] for r in conflicts] == ["2"] * 4  # both copies, each run
    assert all("neither copy is kept" in r["reasons"] for r in conflicts)
