"""Issue 17's sequence property: never an order lost with exit 0, whatever the orders service's pages do.

A model orders service holds orders 1..N (one content each). Some ids are committed late: hidden from the runs
before their turn, while higher ids are served (a real database's out-of-order commits). Each example runs the
pipeline 2-4 times against it (re-scripting the visible ids between runs) and then one reconcile. Every page
request is drawn: served normally, or with a repeat or a second different copy of an order, a changed copy, a
corrupt record at the end (all within the protocol), or broken in one of the ways the protocol forbids (an empty
page with a cursor, ids at or below after_id with a cursor jumping ahead, a next_after_id past or before the
page's last id, ids going down) or failing (a 503, with no retry). ORDERLY_LOOKBACK_ORDERS and
ORDERLY_MAX_ORDER_PAGES are drawn too.

The oracle is the contract applied to the pages actually served (a log kept by the fault): the pages before the
first broken one load, the broken one loads nothing; on a page, copies of an id not yet stored are stored when
they are all the same, else neither is; a copy of a stored id never replaces it. Checked after every run:
- the run reports an orders problem exactly when a served page broke a rule, failed, or the page bound was hit;
- the store holds exactly the oracle's orders, each with its first stored copy's content;
- the run read from the look-back start: the (ORDERLY_LOOKBACK_ORDERS+1)-th newest stored order, or the cursor if
  lower (0 when fewer are stored);
- the run never moved the cursor past a visible id (above that start) that is neither stored nor quarantined;
- a run with no problem (exit 0) left no visible id above its start unaccounted for, and its cursor at the
  largest visible id.
After the reconcile, if it reported no problem: every model id is stored, with its first valid copy's content,
and its counts (remote, stored, missing, added, changed) are the oracle's.

And the determinism property (issue 17, class 13): the same served pages, run into two fresh stores, give the
same store.

Speed: in-process (hostile.run_pipeline / run_reconcile, the production use case without Prefect), on DuckDB files
held open (hostile.WarmStore), no HTTP retries. SEQUENCE_EXAMPLES sets the count (default 200, as CI runs it, in
shards of 50).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import hostile
import pytest
import shards
from hostile import HostileRemote, Reply, WarmStore, error, item, order, settings_for, stored
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tiers import examples

EXAMPLES = int(os.environ.get("SEQUENCE_EXAMPLES", examples(200)))
DETERMINISM_EXAMPLES = int(os.environ.get("SEQUENCE_DETERMINISM_EXAMPLES", str(max(EXAMPLES // 5, 10))))
# Shrinking re-runs several pipeline passes per step; a failing example is printed without it. SEQUENCE_SHRINK=1
# asks for the smallest one.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("SEQUENCE_SHRINK") else [])
# The examples run as tests of about 50 each (tests/shards.py), so the suite's workers share them (one test of 200
# was the suite's longest); each shard draws its own random examples, as the one test did.
SHARD_SIZE = 50
SHARDS = shards.counts(EXAMPLES, SHARD_SIZE)

STOCK = [item(101, 10**6), item(102, 10**6), item(103, 10**6)]
BAD_IDS = [2**63, 2**64, "7", 7.5, None, -3, 0]

# Page treatments. Within the protocol: the loader's business. Breaking it: the sync stops there.
WITHIN = ["repeat", "pair", "variant", "badtail"]
BREAKING = ["empty-cursor", "stale-jump", "skip", "short", "down", "fail"]


def content(oid: int) -> dict:
    return order(oid, (101 + oid % 3, 1 + oid % 2), customer=f"C-{oid}")


def variant(record: dict, tag: str = "V") -> dict:
    return {**record, "customer_id": f"{tag}-{record['id']}"}


def identity(record: dict) -> tuple:
    return (
        record["placed_at"],
        record["customer_id"],
        tuple((line["inventory_id"], line["quantity"]) for line in record["items"]),
    )


def valid_id(record) -> int | None:
    rid = record.get("id") if type(record) is dict else None
    return rid if type(rid) is int and 1 <= rid <= hostile.INT64_MAX else None


def breaks_protocol(after_id: int, records: list, next_after_id) -> bool:
    """The contract's page rules, written here independently of orderly.boundary.paging."""
    ids = [rid for rid in map(valid_id, records) if rid is not None]
    if any(rid <= after_id for rid in ids) or any(b < a for a, b in itertools.pairwise(ids)):
        return True
    if next_after_id is None:
        return False
    return not ids or next_after_id != ids[-1]


def followed(log: list[dict]) -> list[dict]:
    """The pages a one-at-a-time reader asks for, in order: the client also reads ahead the page after the cursor
    a page claims (orderly.boundary.remote), and drops it when the page's check finds another cursor. Those pages were
    served but never used; this is the contract's chain through the log, independent of the client's code."""
    chain: list[dict] = []
    expected = log[0]["after_id"] if log else None
    for page in log:
        if page["after_id"] != expected:
            continue
        chain.append(page)
        if page["failed"] or page["next_after_id"] is None:
            break
        if breaks_protocol(page["after_id"], page["records"], page["next_after_id"]):
            break
        expected = page["next_after_id"]
    return chain


# ---- the served pages ----------------------------------------------------------------------------------------


class ModelService:
    """Answers /orders from the visible model and a drawn treatment per request; logs every page it served."""

    def __init__(self) -> None:
        self.visible: list[dict] = []
        self.plan: list[tuple[str, int]] = []
        self.log: list[dict] = []

    def serve(self, visible_ids: list[int], plan: list[tuple[str, int]]) -> None:
        self.visible = [content(i) for i in sorted(visible_ids)]
        self.plan = plan
        self.log = []

    def fault(self, request):
        if request.path != "/orders":
            return None
        after_id, limit = int(request.params["after_id"]), int(request.params["limit"])
        ordinal = len(self.log)
        kind, pick = self.plan[ordinal] if ordinal < len(self.plan) else ("ok", 0)
        following = [r for r in self.visible if r["id"] > after_id]
        records = following[:limit]
        next_after_id = records[-1]["id"] if len(following) > limit else None
        records, next_after_id, failed = self.treat(kind, pick, after_id, records, next_after_id)
        self.log.append(
            {"after_id": after_id, "records": records, "next_after_id": next_after_id, "kind": kind, "failed": failed}
        )
        if failed:
            return error(503)
        return Reply.json({"orders": records, "next_after_id": next_after_id})

    def treat(self, kind: str, pick: int, after_id: int, records: list, next_after_id):
        records = list(records)
        j = pick % len(records) if records else 0
        if kind == "repeat" and records:
            records.insert(j, records[j])
        elif kind == "pair" and records:
            records.insert(j + 1, variant(records[j], "P"))
        elif kind == "variant" and records:
            records[j] = variant(records[j])
        elif kind == "badtail":
            records.append({**content(after_id + 1), "id": BAD_IDS[pick % len(BAD_IDS)]})
        elif kind == "empty-cursor":
            return [], after_id + 1 + pick % 3, False
        elif kind == "stale-jump":
            old = [r for r in self.visible if r["id"] <= after_id][-2:]
            return old, after_id + 2 + pick % 3, False
        elif kind == "skip":
            return records, (records[-1]["id"] if records else after_id) + 1 + pick % 2, False
        elif kind == "short":
            return records, (records[-2]["id"] if len(records) >= 2 else after_id), False
        elif kind == "down" and len(records) >= 2:
            records[-1], records[-2] = records[-2], records[-1]
        elif kind == "fail":
            return records, next_after_id, True
        return records, next_after_id, False


# ---- the oracle ------------------------------------------------------------------------------------------------


class Oracle:
    """What the contract says the store holds, from the pages served."""

    def __init__(self) -> None:
        self.orders: dict[int, dict] = {}  # id -> the stored copy
        self.quarantined: set[int] = set()  # ids met as two different copies on one page (none stored)

    def lookback_start(self, cursor: int | None, lookback: int) -> int:
        newest = sorted(self.orders, reverse=True)
        floor = newest[lookback] if len(newest) > lookback else 0
        return min(cursor or 0, floor)

    def read(self, log: list[dict], max_pages: int) -> dict:
        """Apply one run's served pages; what the run should report."""
        log = followed(log)
        found = Counter()
        for number, page in enumerate(log, start=1):
            if number > max_pages:
                return {"problem": True, "found": found, "complete": False}
            if page["failed"] or breaks_protocol(page["after_id"], page["records"], page["next_after_id"]):
                return {"problem": True, "found": found, "complete": False}
            self.load(page["records"], found)
            if page["next_after_id"] is None:
                return {"problem": False, "found": found, "complete": True}
        # the service was still paging when the run stopped asking: only the page bound may do that
        assert len(log) == max_pages, (len(log), max_pages, log[-1:] if log else None)
        return {"problem": True, "found": found, "complete": False}

    def load(self, records: list, found: Counter) -> None:
        copies: dict[int, list[dict]] = {}
        for record in records:
            rid = valid_id(record)
            if rid is not None:
                copies.setdefault(rid, []).append(record)
        for rid, same_id in copies.items():
            found["remote"] += 1
            if rid in self.orders:
                found["stored"] += 1
                found["changed"] += sum(identity(c) != identity(self.orders[rid]) for c in same_id)
            else:
                found["missing"] += 1
                if len({identity(c) for c in same_id}) == 1:
                    self.orders[rid] = same_id[0]
                    self.quarantined.discard(rid)
                    found["added"] += 1
                else:
                    self.quarantined.add(rid)
                    found["changed"] += 0  # no first copy: both quarantined, nothing stored to differ from


# ---- the strategy ---------------------------------------------------------------------------------------------

treatment_st = st.tuples(
    st.sampled_from(["ok"] * 14 + WITHIN * 2 + BREAKING),
    st.integers(0, 7),
)


@st.composite
def sequence_st(draw):
    n = draw(st.integers(1, 30))
    runs = draw(st.integers(2, 4))
    # the run from which each id is visible: most at once; some committed late (visible only from a later run)
    visible_from = {i: (draw(st.integers(1, runs - 1)) if draw(st.integers(0, 4)) == 0 else 0) for i in range(1, n + 1)}
    plans = [draw(st.lists(treatment_st, max_size=12)) for _ in range(runs)]
    reconcile_plan = draw(st.lists(treatment_st.filter(lambda t: t[0] != "pair"), max_size=12))
    if draw(st.integers(0, 2)) == 0:
        reconcile_plan = []  # often a clean reconcile: then the end state is pinned down completely
    return {
        "n": n,
        "visible_from": visible_from,
        "plans": plans,
        "reconcile_plan": reconcile_plan,
        "page_size": draw(st.integers(1, 4)),
        "lookback": draw(st.sampled_from([0, 0, 1, 2, 1000])),
        "max_pages": draw(st.sampled_from([100_000] * 5 + [2, 4])),
    }


# ---- the checks ------------------------------------------------------------------------------------------------


def orders_problems(result) -> list[str]:
    return [p for p in result.problems if "/orders" in p or p.startswith("orders")]


def check_store(state: dict, oracle: Oracle) -> None:
    assert sorted(state["orders"]) == sorted(oracle.orders), (sorted(state["orders"]), sorted(oracle.orders))
    for oid, copy in oracle.orders.items():
        assert state["orders"][oid]["customer_id"] == copy["customer_id"], oid
        assert state["lines"][oid] == [(line["inventory_id"], line["quantity"]) for line in copy["items"]], oid


def check_run(
    result,
    expected: dict,
    state: dict,
    oracle: Oracle,
    visible: list[int],
    start: int,
    log: list[dict],
    cursor_before: int | None,
) -> None:
    assert log, "the run asked for no orders page"
    assert log[0]["after_id"] == start, (log[0]["after_id"], start)  # the look-back start
    problems = orders_problems(result)
    assert bool(problems) == expected["problem"], (problems, [(p["kind"], p["after_id"]) for p in log])
    assert all("\n" not in p for p in problems)
    assert len(result.problems) == len(problems), result.problems  # the stock is always good here
    check_store(state, oracle)
    cursor = state["cursor"] or 0
    unaccounted = [v for v in visible if v > start and v not in oracle.orders and v not in oracle.quarantined]
    # the run never moved the cursor past an id that was not stored or quarantined (a late id the cursor was
    # already past when it was committed is the look-back's and the reconcile's)
    crossed = [v for v in unaccounted if (cursor_before or 0) < v <= cursor]
    assert crossed == [], (cursor_before, cursor, crossed)
    if not problems:  # exit 0: nothing visible above the start is missing
        assert unaccounted == [], unaccounted
        assert cursor == max(visible, default=cursor), (cursor, max(visible, default=None))


@pytest.fixture
def remote():
    """One per test (a loopback server thread: it starts in milliseconds), so the shards need not share a worker."""
    with HostileRemote(max_trickle_s=5) as server:
        yield server


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("shard, count", enumerate(SHARDS), ids=shards.ids(SHARDS))
def test_no_order_is_lost_with_exit_0_over_runs_and_a_reconcile(
    shard, count, remote, tmp_path_factory, small_ca_bundle
):
    stats: Counter = Counter()
    service = ModelService()
    started = time.monotonic()

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        print_blob=True,
        phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(example=sequence_st())
    def check(example):
        stats["examples"] += 1
        oracle = Oracle()
        with (
            tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as directory,
            WarmStore(Path(directory) / "orderly.duckdb") as warm,
        ):
            options = settings_for(
                remote.url,
                warm.path,
                ORDERLY_PAGE_SIZE=example["page_size"],
                ORDERLY_HTTP_RETRIES=0,
                ORDERLY_LOOKBACK_ORDERS=example["lookback"],
                ORDERLY_MAX_ORDER_PAGES=example["max_pages"],
            )
            cursor = None  # no store yet
            for run, plan in enumerate(example["plans"]):
                visible = [i for i, k in example["visible_from"].items() if k <= run]
                service.serve(visible, plan)
                remote.script(stock=STOCK, fault=service.fault)
                start = oracle.lookback_start(cursor, example["lookback"])
                result = hostile.run_pipeline(options, process=False)
                expected = oracle.read(service.log, example["max_pages"])
                state = stored(warm)
                check_run(result, expected, state, oracle, visible, start, service.log, cursor)
                cursor = state["cursor"]
                stats["failed runs"] += expected["problem"]
                stats["clean runs"] += not expected["problem"]
                stats.update(page["kind"] for page in service.log)

            model = list(example["visible_from"])
            service.serve(model, example["reconcile_plan"])
            remote.script(stock=STOCK, fault=service.fault)
            lost_before = [i for i in model if i not in oracle.orders]
            result = hostile.run_reconcile(options)
            expected = oracle.read(service.log, example["max_pages"])
            state = stored(warm)
            assert service.log and service.log[0]["after_id"] == 0
            problems = orders_problems(result)
            assert bool(problems) == expected["problem"], (problems, [(p["kind"], p["after_id"]) for p in service.log])
            check_store(state, oracle)
            if not problems:
                stats["clean reconciles"] += 1
                stats["lost then found"] += bool(lost_before)
                assert sorted(state["orders"]) == sorted(model)  # every model id, stored once
                found = {k: result.reconcile[k] for k in ("remote", "stored", "missing", "added", "changed")}
                assert found == {k: expected["found"][k] for k in found}, (found, dict(expected["found"]))
                assert found["missing"] == found["added"] == len(lost_before), (found, lost_before)

    check()
    elapsed = time.monotonic() - started
    print(f"\n{stats['examples']} examples in {elapsed:.1f} s: {dict(stats)}")
    assert stats["examples"] >= count
    # the examples of all the shards did exercise what the property is about (checked by the shard that ends last)
    everything = shards.pooled(tmp_path_factory, "sequence", shard, len(SHARDS), stats)
    if everything and EXAMPLES >= 50:
        for kind in ("failed runs", "clean runs", "clean reconciles", "lost then found", *WITHIN, *BREAKING):
            assert everything[kind] > 0, (kind, dict(everything))


# ---- determinism (class 13) --------------------------------------------------------------------------------------


@st.composite
def pages_st(draw):
    """Two runs' worth of orders as a service holds them: ascending ids, some repeated (same or different copy),
    some corrupt ids, a later run re-serving some ids changed."""

    def holding(tag: str) -> list:
        records = []
        for oid in sorted(draw(st.sets(st.integers(1, 12), max_size=10))):
            base = content(oid)
            kind = draw(st.sampled_from(["one"] * 4 + ["same", "different", "bad"]))
            if kind == "bad":
                records.append({**base, "id": draw(st.sampled_from(BAD_IDS))})
            records.append(base if tag == "a" or draw(st.booleans()) else variant(base, tag))
            if kind == "same":
                records.append(records[-1])
            elif kind == "different":
                records.append(variant(base, "D" + tag))
        return records

    return {"runs": [holding("a"), holding("b")], "page_size": draw(st.integers(1, 4))}


@pytest.mark.timeout(1800)
def test_the_same_pages_always_give_the_same_store(remote, tmp_path_factory, small_ca_bundle):

    @settings(
        max_examples=DETERMINISM_EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(example=pages_st())
    def check(example):
        states = []
        with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as directory:
            for name in ("first", "second"):
                with WarmStore(Path(directory) / f"{name}.duckdb") as warm:
                    options = settings_for(
                        remote.url,
                        warm.path,
                        ORDERLY_PAGE_SIZE=example["page_size"],
                        ORDERLY_HTTP_RETRIES=0,
                        ORDERLY_FETCH_CONCURRENCY=2,
                    )
                    for records in example["runs"]:
                        remote.script(orders=records, stock=STOCK)
                        hostile.run_pipeline(options, process=True)
                    states.append(comparable(stored(warm)))
        assert states[0] == states[1]

    check()


def comparable(state: dict) -> dict:
    """A store without what differs by nature between two runs of the same pages: run ids."""
    return {
        **state,
        "rejects": [(r["source"], r["record_key"], r["raw"], r["reasons"]) for r in state["rejects"]],
        "runs": [(r["state"], r["message"]) for r in state["runs"]],
    }
