"""Issue 17, classes 1, 2, 3, 6a, 12 and 13: the remotes' paging protocol is checked, not trusted.

The rules (docs/CONTRACT.md, section 1): on an orders page the ids ascend and are all above `after_id` (equal
neighbours are copies of one order); `next_after_id` is the page's largest valid id, or null on the last page; an
empty page carries null; at most ORDERLY_MAX_ORDER_PAGES pages a run. A page that breaks one stops the orders sync
with one line naming the service, the URL and the rule (exit 5, the run FAILED); the pages before it stay loaded,
the breaking page loads nothing, and the cursor never moves past an id that was not stored or quarantined. Each
run re-reads from the look-back start, and `reconcile` re-reads the whole remote. A stock snapshot whose pages
repeat an item or hold an empty page before the last is incomplete: nothing changes.

Two depths: the pipeline in-process (hostile.run_pipeline / run_reconcile: the production use case orderly.ingest
without Prefect) for what is stored, and the real `orderly` command for what the operator sees.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import hostile
import pytest
from hostile import HostileRemote, Reply, WarmStore, cli, item, order, query, run_pipeline, settings_for, stored

# An exception's class name in what the operator reads.
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Violation|Broken)\b")

# How each broken rule may be worded: the line must name the rule, not necessarily in these exact words.
RULES = {
    "empty": re.compile(
        r"(empty|\bno\b[\w ]*\borders?\b|null).*(next_after_id|cursor)"
        r"|(next_after_id|cursor).*(empty|\bno\b[\w ]*\borders?\b|null)",
        re.I,
    ),
    "above": re.compile(r"above|below|<=|greater|higher|not after", re.I),
    "next": re.compile(r"next_after_id", re.I),
    "ascending": re.compile(r"ascend|descend|go(es)? down|decreas|out of order|backward", re.I),
    "pages": re.compile(r"ORDERLY_MAX_ORDER_PAGES", re.I),
}


pytestmark = pytest.mark.usefixtures("small_ca_bundle")  # conftest: loopback http never needs the CA bundle


@pytest.fixture
def remote():
    with HostileRemote(max_trickle_s=5) as server:
        yield server


STOCK = [item(101, 1000), item(102, 1000), item(103, 1000)]


def orders(*ids: int) -> list[dict]:
    return [order(i, (101 + i % 3, 1), customer=f"C-{i}") for i in ids]


def settings(remote: HostileRemote, warm: WarmStore, **env):
    return settings_for(remote.url, warm.path, ORDERLY_HTTP_RETRIES=0, **env)


def run(remote: HostileRemote, warm: WarmStore, **env) -> hostile.PipelineResult:
    return run_pipeline(settings(remote, warm, **env), process=False)


def orders_problems(result) -> list[str]:
    return [p for p in result.problems if "/orders" in p]


def assert_violation(result, remote: HostileRemote, rule: str) -> str:
    """The run met a broken rule: exactly one orders problem, one line naming the service, its URL and the rule."""
    problems = orders_problems(result)
    assert len(problems) == 1, result.problems
    line = problems[0]
    assert "\n" not in line and f"{remote.url}/orders" in line, line
    assert "orders" in line.replace(f"{remote.url}/orders", ""), line  # names the service, not only the path
    assert RULES[rule].search(line), (rule, line)
    assert not CLASS_NAME.search(line), line
    return line


def stored_ids(warm: WarmStore) -> list[int]:
    return sorted(stored(warm)["orders"])


def last_run_state(warm: WarmStore) -> str:
    return stored(warm)["runs"][-1]["state"]


def page_reply(records: list, next_after_id) -> Reply:
    return Reply.json({"orders": records, "next_after_id": next_after_id})


def on_orders(after_id: int, reply):
    """A fault that answers `reply(request)` to /orders?after_id=`after_id`, and normally otherwise."""

    def fault(request):
        if request.path == "/orders" and request.params.get("after_id") == str(after_id):
            return reply(request)
        return None

    return fault


def assert_not_followed(remote, cursor: int) -> None:
    """A cursor a breaking page carried was never followed. The client asks for the page after the cursor a page
    claims while it decodes and checks that page (boundary/remote.py, the read-ahead), so that page may have been asked
    for once; its answer is dropped unused, which the callers show in what was stored."""
    assert remote.count("/orders", after_id=cursor) <= 1


# ==== class 1: the cursor never moves past orders it never saw ===============================================
def test_an_empty_page_carrying_a_cursor_stops_the_sync_and_the_next_run_gets_the_rest(remote, warm):
    remote.script(orders=orders(*range(1, 10)), stock=STOCK, fault=on_orders(3, lambda request: page_reply([], 6)))
    result = run(remote, warm)
    assert_violation(result, remote, "empty")
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3] and state["cursor"] == 3
    assert last_run_state(warm) == "FAILED"
    assert_not_followed(remote, 6)

    remote.script(orders=orders(*range(1, 10)), stock=STOCK)
    again = run(remote, warm)
    assert not again.problems, again.problems
    assert stored_ids(warm) == list(range(1, 10)) and stored(warm)["cursor"] == 9


def test_an_empty_page_carrying_its_own_after_id_is_a_violation_too(remote, warm):
    remote.script(orders=orders(1, 2, 3, 4), stock=STOCK, fault=on_orders(3, lambda request: page_reply([], 3)))
    result = run(remote, warm)
    assert_violation(result, remote, "empty")
    assert stored_ids(warm) == [1, 2, 3] and stored(warm)["cursor"] == 3


def test_a_page_of_only_old_ids_with_a_cursor_that_jumps_ahead_loads_nothing(remote, warm):
    every = orders(*range(1, 13))
    remote.script(orders=every, stock=STOCK, fault=on_orders(3, lambda request: page_reply(every[:3], 9)))
    result = run(remote, warm)
    assert_violation(result, remote, "above")
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3] and state["cursor"] == 3
    assert_not_followed(remote, 9)
    assert [r for r in state["rejects"] if r["source"] == "order"] == []  # the breaking page loads nothing


def test_a_page_with_one_id_at_after_id_among_new_ones_is_a_violation(remote, warm):
    every = orders(*range(1, 10))
    remote.script(orders=every, stock=STOCK, fault=on_orders(3, lambda request: page_reply(every[2:5], 5)))
    result = run(remote, warm)
    assert_violation(result, remote, "above")
    assert stored_ids(warm) == [1, 2, 3] and stored(warm)["cursor"] == 3


def test_a_next_after_id_past_the_pages_last_id_is_a_skip_and_loads_nothing(remote, warm):
    remote.script(orders=orders(*range(1, 10)), stock=STOCK, skip_ahead=1)  # page 1 holds 1..3, says 4
    result = run(remote, warm)
    line = assert_violation(result, remote, "next")
    assert "4" in line, line
    state = stored(warm)
    assert state["orders"] == {} and state["cursor"] in (None, 0)
    assert_not_followed(remote, 4)


def test_a_skip_on_a_later_page_keeps_the_pages_before_it(remote, warm):
    remote.script(
        orders=orders(*range(1, 13)),
        stock=STOCK,
        next_after_id=lambda after_id, default: 8 if after_id == 3 else default,
    )
    result = run(remote, warm)
    assert_violation(result, remote, "next")
    assert stored_ids(warm) == [1, 2, 3] and stored(warm)["cursor"] == 3


def test_a_next_after_id_before_the_pages_last_id_is_a_violation(remote, warm):
    remote.script(
        orders=orders(*range(1, 10)),
        stock=STOCK,
        next_after_id=lambda after_id, default: default - 1 if after_id == 3 and default else default,
    )
    result = run(remote, warm)
    assert_violation(result, remote, "next")
    assert stored_ids(warm) == [1, 2, 3] and stored(warm)["cursor"] == 3


def test_ids_going_down_within_a_page_load_nothing_of_that_page(remote, warm):
    records = orders(1, 2, 3, 5, 4, 6, 7, 8, 9)
    remote.script(orders=records, keys=list(range(1, 10)), stock=STOCK)  # page 2 holds 5, 4, 6
    result = run(remote, warm)
    assert_violation(result, remote, "ascending")
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3] and state["cursor"] == 3
    assert [r for r in state["rejects"] if r["source"] == "order"] == []


# ==== class 1, third way: a record rejected for its id never moves the cursor =========================================


@pytest.mark.parametrize("bad_id", [2**63, 2**64, "7", 7.5, None, -1, 0])
def test_a_bad_id_at_the_end_of_the_last_page_does_not_move_the_cursor(remote, warm, bad_id):
    records = [*orders(1, 2, 3, 4, 5), {**orders(6)[0], "id": bad_id}]
    remote.script(orders=records, keys=list(range(1, 7)), stock=STOCK)
    result = run(remote, warm)
    assert not orders_problems(result), result.problems
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3, 4, 5] and state["cursor"] == 5
    assert len([r for r in state["rejects"] if r["source"] == "order"]) == 1


def test_a_bad_id_at_the_end_of_a_middle_page_with_a_correct_cursor_loses_nothing(remote, warm):
    records = [*orders(1, 2), {**orders(3)[0], "id": 10**30}, *orders(4, 5, 6, 7)]
    remote.script(
        orders=records,
        keys=list(range(1, 8)),
        stock=STOCK,
        next_after_id=lambda after_id, default: 2 if after_id == 0 else default,
    )
    result = run(remote, warm)
    assert not result.problems, result.problems
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 4, 5, 6, 7] and state["cursor"] == 7


def test_a_cursor_carried_by_a_bad_id_at_the_end_of_a_page_skips_nothing(remote, warm):
    """The service counts the corrupt record as id 3 and says next_after_id=3, while the page's largest valid id
    is 2. Either reading keeps every order: the page is a violation (nothing of it loads, the run fails), or the
    cursor stops at 2 and the next page is asked from there; never from 3."""
    records = [*orders(1, 2), {**orders(3)[0], "id": "3"}, *orders(4, 5, 6)]
    remote.script(orders=records, keys=list(range(1, 7)), stock=STOCK)
    result = run(remote, warm)
    state = stored(warm)
    if orders_problems(result):
        assert_violation(result, remote, "next")
        assert state["orders"] == {} and state["cursor"] in (None, 0)
    else:
        assert sorted(state["orders"]) == [1, 2, 4, 5, 6] and state["cursor"] == 6
        assert remote.count("/orders", after_id=2) == 1
    assert_not_followed(remote, 3)


def test_a_cursor_carried_past_a_bad_id_in_the_middle_of_a_page_is_a_violation(remote, warm):
    records = [*orders(1), {**orders(2)[0], "id": 2**64}, *orders(3, 4, 5, 6)]
    remote.script(
        orders=records,
        keys=list(range(1, 7)),
        stock=STOCK,
        next_after_id=lambda after_id, default: 4 if after_id == 0 else default,
    )  # page 1: 1, bad, 3
    result = run(remote, warm)
    assert_violation(result, remote, "next")
    assert stored(warm)["orders"] == {}
    assert_not_followed(remote, 4)


def endless_empty_pages(request):
    """Orders pages that never end: each empty, each with a cursor one past the last."""
    if request.path == "/orders":
        return page_reply([], int(request.params["after_id"]) + 1)
    return None


def endless_new_orders(request):
    """Orders pages that never end, each keeping the protocol: one new order, the cursor at its id."""
    if request.path == "/orders":
        after_id = int(request.params["after_id"])
        return page_reply(orders(after_id + 1), after_id + 1)
    return None


# ==== class 2: pages that never end ===================================================================================


def test_endless_empty_pages_with_a_growing_cursor_end_at_the_first(remote, warm):
    remote.script(orders=[], stock=STOCK, fault=endless_empty_pages)
    started = time.monotonic()
    result = run(remote, warm)
    assert time.monotonic() - started < 20
    assert_violation(result, remote, "empty")
    assert remote.count("/orders") <= 2  # the first page, and at most its read-ahead (assert_not_followed)
    assert stored(warm)["cursor"] in (None, 0)


def test_endless_pages_of_new_orders_stop_at_orderly_max_order_pages(remote, warm):
    remote.script(orders=[], stock=STOCK, fault=endless_new_orders)
    started = time.monotonic()
    result = run(remote, warm, ORDERLY_MAX_ORDER_PAGES=20)
    assert time.monotonic() - started < 30
    assert_violation(result, remote, "pages")
    assert 20 <= remote.count("/orders") <= 21  # the page after the bound need not be asked for
    state = stored(warm)
    assert sorted(state["orders"]) == list(range(1, 21)) and state["cursor"] == 20  # the pages read are kept
    assert last_run_state(warm) == "FAILED"


def test_exactly_orderly_max_order_pages_pages_is_within_the_bound(remote, warm):
    remote.script(orders=orders(*range(1, 10)), stock=STOCK)  # three pages of 3
    result = run(remote, warm, ORDERLY_MAX_ORDER_PAGES=3)
    assert not result.problems, result.problems
    assert stored_ids(warm) == list(range(1, 10))


def test_one_page_past_orderly_max_order_pages_stops_with_the_pages_read_kept(remote, warm):
    remote.script(orders=orders(*range(1, 10)), stock=STOCK)
    result = run(remote, warm, ORDERLY_MAX_ORDER_PAGES=2)
    assert_violation(result, remote, "pages")
    assert stored_ids(warm) == list(range(1, 7)) and stored(warm)["cursor"] == 6
    # the bound is per run: the next one goes on from there
    again = run(remote, warm, ORDERLY_MAX_ORDER_PAGES=2, ORDERLY_LOOKBACK_ORDERS=0)
    assert not again.problems, again.problems
    assert stored_ids(warm) == list(range(1, 10))


# ==== class 3: late lower ids, the look-back and the reconcile ========================================================

LATE = [i for i in range(1, 14) if i != 11]  # 11 is committed after 12 was served


def test_a_late_lower_id_is_stored_by_the_next_run_thanks_to_the_look_back(remote, warm):
    remote.script(orders=orders(*LATE), stock=STOCK)
    assert not run(remote, warm).problems
    assert 11 not in stored(warm)["orders"] and stored(warm)["cursor"] == 13
    remote.script(orders=orders(*range(1, 14)), stock=STOCK)
    result = run(remote, warm)
    assert not result.problems, result.problems
    assert stored_ids(warm) == list(range(1, 14))
    assert remote.count("/orders", after_id=0) == 1  # fewer than 1,001 orders stored: the look-back reads all


@pytest.mark.parametrize("lookback, start", [(1, 12), (2, 10), (3, 9)])
def test_the_look_back_starts_at_the_lookback_plus_one_th_newest_stored_order(remote, warm, lookback, start):
    remote.script(orders=orders(*LATE), stock=STOCK)
    assert not run(remote, warm, ORDERLY_LOOKBACK_ORDERS=lookback).problems
    remote.script(orders=orders(*range(1, 14)), stock=STOCK)
    result = run(remote, warm, ORDERLY_LOOKBACK_ORDERS=lookback)
    assert not result.problems, result.problems
    first = next(r for r in remote.requests if r["path"] == "/orders")
    assert first["params"]["after_id"] == str(start)  # stored, newest first: 13, 12, 10, 9, 8...
    # 11 is read again only when the look-back reaches below it
    assert stored_ids(warm) == (list(range(1, 14)) if start < 11 else LATE)


def test_without_a_look_back_the_late_id_is_missed_and_reconcile_finds_and_adds_it(remote, warm):
    remote.script(orders=orders(*LATE), stock=STOCK)
    assert not run(remote, warm, ORDERLY_LOOKBACK_ORDERS=0).problems
    remote.script(orders=orders(*range(1, 14)), stock=STOCK)
    result = run(remote, warm, ORDERLY_LOOKBACK_ORDERS=0)
    assert not result.problems, result.problems
    assert 11 not in stored(warm)["orders"]  # missed, with exit 0: what the reconcile is for
    first = next(r for r in remote.requests if r["path"] == "/orders")
    assert first["params"]["after_id"] == "13"

    found = hostile.run_reconcile(settings(remote, warm, ORDERLY_LOOKBACK_ORDERS=0))
    assert not found.problems, found.problems
    assert stored_ids(warm) == list(range(1, 14))
    assert found.reconcile["missing"] == 1 and found.reconcile["added"] == 1, found.reconcile
    assert found.reconcile["remote"] == 13 and found.reconcile["stored"] == 12, found.reconcile
    assert found.reconcile["changed"] == 0, found.reconcile
    assert remote.count("/orders", after_id=0) == 1

    again = hostile.run_reconcile(settings(remote, warm))
    assert again.reconcile["missing"] == 0 and again.reconcile["added"] == 0, again.reconcile
    assert again.reconcile["stored"] == 13 and again.reconcile["remote"] == 13, again.reconcile


def test_reconcile_counts_a_changed_copy_and_keeps_the_first(remote, warm):
    remote.script(orders=orders(1, 2, 3, 4), stock=STOCK)
    assert not run(remote, warm).problems
    changed = orders(1, 2, 3, 4)
    changed[1] = {**changed[1], "customer_id": "someone else"}
    remote.script(orders=changed, stock=STOCK)
    found = hostile.run_reconcile(settings(remote, warm))
    assert not found.problems, found.problems
    assert found.reconcile == {"remote": 4, "stored": 4, "missing": 0, "added": 0, "changed": 1}
    state = stored(warm)
    assert state["orders"][2]["customer_id"] == "C-2"
    assert [r["record_key"] for r in state["rejects"] if r["source"] == "order"] == ["2"]


def test_reconcile_obeys_the_same_rules(remote, warm):
    remote.script(orders=orders(*range(1, 10)), stock=STOCK, fault=on_orders(3, lambda request: page_reply([], 6)))
    found = hostile.run_reconcile(settings(remote, warm))
    assert_violation(found, remote, "empty")
    assert stored_ids(warm) == [1, 2, 3]
    assert last_run_state(warm) == "FAILED"


# ==== class 12: copies of one id on one page ==========================================================================


def test_two_different_copies_of_one_id_on_one_page_store_neither_and_reject_both(remote, warm):
    one, two = orders(2)[0], {**orders(2)[0], "customer_id": "C-other"}
    remote.script(orders=[*orders(1), one, two, *orders(3, 4, 5)], stock=STOCK)  # page 1: 1, 2, 2'
    result = run(remote, warm)
    assert not orders_problems(result), result.problems
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 3, 4, 5]
    rejected = [r for r in state["rejects"] if r["source"] == "order"]
    assert [r["record_key"] for r in rejected] == ["2", "2"], rejected
    assert {json.loads(r["raw"])["customer_id"] for r in rejected} == {"C-2", "C-other"}
    assert all(r["reasons"].strip() for r in rejected)


def test_the_same_copy_twice_on_one_page_is_stored_once(remote, warm):
    remote.script(orders=orders(1, 2, 2, 3, 4), stock=STOCK)
    result = run(remote, warm)
    assert not result.problems, result.problems
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3, 4] and state["orders"][2]["customer_id"] == "C-2"
    assert [r for r in state["rejects"] if r["source"] == "order"] == []


def test_a_valid_copy_beside_an_invalid_one_on_one_page_is_stored(remote, warm):
    broken = {**orders(2)[0], "items": []}
    remote.script(orders=[*orders(1, 2), broken, *orders(3)], stock=STOCK)
    result = run(remote, warm)
    assert not orders_problems(result), result.problems
    assert stored_ids(warm) == [1, 2, 3]


# ==== class 6a: stock snapshots that lie by repetition ================================================================

SIX = [item(100 + i, 10) for i in range(1, 7)]  # per page 2 (ORDERLY_PAGE_SIZE=2): three pages


def _good_snapshot_then(remote, warm, fault) -> hostile.PipelineResult:
    remote.script(orders=orders(1), stock=SIX)
    first = run_pipeline(settings(remote, warm, ORDERLY_PAGE_SIZE=2), process=True)
    assert not first.problems, first.problems
    remote.script(
        orders=[order(1, (102, 1), customer="C-1"), order(2, (105, 1)), order(3, (106, 2))],
        stock=[item(100 + i, 20) for i in range(1, 7)],
        fault=fault,
    )
    return run_pipeline(settings(remote, warm, ORDERLY_PAGE_SIZE=2), process=True)


def _stock_problem(result, remote) -> str:
    problems = [p for p in result.problems if "/stock" in p]
    assert len(problems) == 1, result.problems
    assert f"{remote.url}/stock" in problems[0] and "\n" not in problems[0]
    return problems[0]


def page_one_always(remote: HostileRemote):
    """A warehouse that ignores `page`: page 1's items for every page (echoing the page asked for)."""

    def fault(request):
        if request.path == "/stock":
            body = json.loads(remote.normal("/stock", page=1, per_page=request.params["per_page"]).body)
            return Reply.json({**body, "page": int(request.params["page"])})
        return None

    return fault


def test_a_warehouse_that_ignores_page_is_an_incomplete_snapshot(remote, warm):
    result = _good_snapshot_then(remote, warm, page_one_always(remote))
    _stock_problem(result, remote)
    state = stored(warm)
    assert state["stock"] == {100 + i: 10 for i in range(1, 7)}  # nothing deleted, nothing changed
    assert all(o["reason"] != "UNKNOWN_INVENTORY" for o in state["orders"].values()), state["orders"]
    assert state["orders"][2]["status"] == "PROCESSED" and state["orders"][3]["status"] == "PROCESSED"
    assert last_run_state(warm) == "FAILED"


def test_a_warehouse_that_sends_empty_pages_after_the_first_is_an_incomplete_snapshot(remote, warm):
    def empty_after_one(request):
        if request.path == "/stock" and request.params["page"] != "1":
            normal = request.normal()
            body = json.loads(normal.body)
            return Reply.json({**body, "items": []})
        return None

    result = _good_snapshot_then(remote, warm, empty_after_one)
    line = _stock_problem(result, remote)
    assert "empty" in line, line
    state = stored(warm)
    assert state["stock"] == {100 + i: 10 for i in range(1, 7)}
    assert all(o["reason"] != "UNKNOWN_INVENTORY" for o in state["orders"].values()), state["orders"]


def test_an_empty_stock_page_before_the_last_is_an_incomplete_snapshot(remote, warm):
    def second_empty(request):
        if request.path == "/stock" and request.params["page"] == "2":
            return Reply.json({**json.loads(request.normal().body), "items": []})
        return None

    result = _good_snapshot_then(remote, warm, second_empty)
    line = _stock_problem(result, remote)
    assert "empty" in line, line
    assert stored(warm)["stock"] == {100 + i: 10 for i in range(1, 7)}


def test_one_item_on_two_stock_pages_is_an_incomplete_snapshot(remote, warm):
    def repeat_on_three(request):
        if request.path == "/stock" and request.params["page"] == "3":
            body = json.loads(request.normal().body)
            return Reply.json({**body, "items": body["items"] + [item(101, 20)]})
        return None

    result = _good_snapshot_then(remote, warm, repeat_on_three)
    _stock_problem(result, remote)
    assert stored(warm)["stock"] == {100 + i: 10 for i in range(1, 7)}


def test_an_empty_last_stock_page_is_not_a_lie(remote, warm):
    """Only a page *before* the last must hold items: a warehouse with nothing (one empty page) is a snapshot."""
    remote.script(orders=orders(1), stock=[])
    result = run(remote, warm)
    assert not [p for p in result.problems if "/stock" in p], result.problems


def test_an_incomplete_snapshot_still_lets_the_orders_arrive(remote, warm):
    remote.script(orders=orders(1, 2, 3, 4), stock=SIX, fault=page_one_always(remote))
    result = run(remote, warm, ORDERLY_PAGE_SIZE=2)
    _stock_problem(result, remote)
    assert not orders_problems(result)
    state = stored(warm)
    assert sorted(state["orders"]) == [1, 2, 3, 4] and state["stock"] == {}


# ==== class 13: the same pages always give the same store =============================================================


def test_the_same_pages_twice_give_the_same_store(remote, tmp_path):
    """Page by page (3 a page): run 1 serves [1, 2, 2] [3, 5, 5'] [6, bad, 7]; run 2 serves [1, 2', 3] [4, 5, 5']
    [6, 7]: an unchanged repeat, two different copies on one page (twice), a bad id, a changed copy in a later run."""
    variant = {**orders(5)[0], "customer_id": "C-late"}
    first_pages = [*orders(1, 2, 2, 3, 5), variant, *orders(6), {**orders(7)[0], "id": "7"}, *orders(7)]
    second_pages = [*orders(1), {**orders(2)[0], "customer_id": "C-x"}, *orders(3, 4, 5), variant, *orders(6, 7)]
    states = []
    for name in ("a", "b"):
        with WarmStore(tmp_path / f"{name}.duckdb") as store:
            for records in (first_pages, second_pages):
                remote.script(orders=records, keys=hostile.order_keys(records), stock=STOCK)
                run_pipeline(settings(remote, store, ORDERLY_FETCH_CONCURRENCY=2), process=True)
            states.append(_comparable(stored(store)))
    assert states[0] == states[1]
    assert sorted(states[0]["orders"]) == [1, 2, 3, 4, 6, 7]  # 5 came as two different copies on one page, twice
    assert states[0]["orders"][2]["customer_id"] == "C-2"  # the first copy stays


def _comparable(state: dict) -> dict:
    """A store without what differs by nature between two runs of the same pages: run ids and times."""
    return {
        **state,
        "rejects": [{k: v for k, v in r.items() if k != "run_id"} for r in state["rejects"]],
        "runs": [(r["state"], r["message"]) for r in state["runs"]],
    }


# ==== the command, as the operator sees it ============================================================================


def hostile_env(cli_env: dict, url: str, **extra) -> dict:
    return hostile.hostile_env(cli_env, url, **{"ORDERLY_HTTP_RETRIES": 0, **extra})  # a bad page: at once


def assert_exit_5_one_line(result: subprocess.CompletedProcess, url: str, rule: str) -> str:
    assert result.returncode == 5, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not CLASS_NAME.search(lines[0]), lines[0]
    assert f"{url}/orders" in lines[0] and RULES[rule].search(lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", ["empty-page-with-cursor", "ids-going-down"])
def test_cli_a_broken_orders_page_is_exit_5_one_line_and_a_failed_run(cli_env, remote, case):
    if case == "empty-page-with-cursor":
        remote.script(orders=orders(*range(1, 10)), stock=STOCK, fault=on_orders(3, lambda request: page_reply([], 6)))
        rule = "empty"
    else:
        remote.script(orders=orders(1, 2, 3, 5, 4, 6, 7, 8, 9), keys=list(range(1, 10)), stock=STOCK)
        rule = "ascending"
    env = hostile_env(cli_env, remote.url)
    result = cli(["run"], env)
    assert_exit_5_one_line(result, remote.url, rule)
    assert [r["order_id"] for r in query(["status"], env)] == [1, 2, 3]
    latest = query(["runs"], env)[0]
    assert latest["state"] == "FAILED" and f"{remote.url}/orders" in latest["message"], latest
    assert stored(env["ORDERLY_DB"])["cursor"] == 3


def test_cli_endless_pages_end_fast(cli_env, remote):
    remote.script(orders=[], stock=STOCK, fault=endless_empty_pages)
    env = hostile_env(cli_env, remote.url)
    started = time.monotonic()
    result = cli(["run"], env, timeout=60)
    assert time.monotonic() - started < 60
    assert_exit_5_one_line(result, remote.url, "empty")
    assert remote.count("/orders") <= 2  # the first page, and at most its read-ahead (assert_not_followed)


def test_cli_endless_orders_stop_at_orderly_max_order_pages(cli_env, remote):
    remote.script(orders=[], stock=STOCK, fault=endless_new_orders)
    env = hostile_env(cli_env, remote.url, ORDERLY_MAX_ORDER_PAGES=15)
    result = cli(["sync"], env, timeout=60)
    assert_exit_5_one_line(result, remote.url, "pages")
    assert len(query(["status"], env)) == 15


def test_cli_a_warehouse_that_ignores_page_changes_no_stock_and_fails_the_run(cli_env, remote):
    remote.script(orders=orders(1), stock=SIX)
    env = hostile_env(cli_env, remote.url, ORDERLY_PAGE_SIZE=2)
    assert cli(["run"], env).returncode == 0
    before = {i["inventory_id"]: i["on_hand"] for i in query(["stock"], env)["items"]}
    remote.script(
        orders=[order(1, (102, 1), customer="C-1"), order(2, (105, 1)), order(3, (106, 2))],
        stock=[item(100 + i, 20) for i in range(1, 7)],
        fault=page_one_always(remote),
    )
    result = cli(["run"], env)
    assert result.returncode == 5, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{remote.url}/stock" in lines[0], result.stderr
    assert {i["inventory_id"]: i["on_hand"] for i in query(["stock"], env)["items"]} == before
    rows = {r["order_id"]: (r["status"], r["reason"]) for r in query(["status"], env)}
    assert rows[2] == ("PROCESSED", None) and rows[3] == ("PROCESSED", None), rows
    assert query(["runs"], env)[0]["state"] == "FAILED"


def test_cli_reconcile_adds_the_late_id_the_look_back_missed(cli_env, remote):
    remote.script(orders=orders(*LATE), stock=STOCK)
    env = hostile_env(cli_env, remote.url, ORDERLY_LOOKBACK_ORDERS=0)
    assert cli(["sync"], env).returncode == 0
    remote.script(orders=orders(*range(1, 14)), stock=STOCK)
    assert cli(["sync"], env).returncode == 0
    assert 11 not in {r["order_id"] for r in query(["status"], env)}
    result = cli(["reconcile"], env)
    assert result.returncode == 0, result.stderr
    assert [r["order_id"] for r in query(["status"], env)] == list(range(1, 14))
    latest = query(["runs"], env)[0]
    assert latest["state"] == "COMPLETED", latest
    assert latest["flow"] == "reconcile" and latest["reconcile_missing"] == 1 and latest["reconcile_added"] == 1, latest
    assert latest["reconcile_remote"] == 13 and latest["reconcile_stored"] == 12, latest
    assert "reconcile 13 remote, 12 stored, 1 missing, 1 added" in result.stdout, result.stdout
