"""The per-item bound of ORDERLY_MAX_STOCK_AGE (CONTRACT.md section 2): an item whose last good value is older
than the bound (its newer records were quarantined) is never allocated from; an order that needs it stays NEW,
and the run says how many orders waited and for which items. Against a real DuckDB file, and once through the
real `orderly run` against tests/hostile.py's server."""

from __future__ import annotations

import json

import duckdb
import pytest
from conftest import run_cli
from hostile import HostileRemote, item, order
from test_store import load_orders, load_stock, order_rec, statuses, stock_rec

from orderly import service
from orderly.boundary.records import records_digest
from orderly.boundary.validation import validate_stock
from orderly.store import open_store, queries, writes

AGE = 900


@pytest.fixture
def con(tmp_path):
    with open_store(tmp_path / "store.duckdb") as c:
        yield c


def confirmed_ages(con) -> dict[int, float]:
    return dict(con.execute("SELECT inventory_id, epoch(now()) - epoch(confirmed_at) FROM stock_items").fetchall())


def age_everything(con, hours: int = 2) -> None:
    """As if the last snapshot and every confirmation were `hours` old."""
    con.execute(f"UPDATE stock_items SET confirmed_at = confirmed_at - INTERVAL {hours} HOUR")
    con.execute(f"UPDATE stock_snapshots SET completed_at = completed_at - INTERVAL {hours} HOUR")


def history_rows(con) -> int:
    return con.execute("SELECT count(*) FROM status_changes").fetchone()[0]


# ---- the store: what confirms an item -------------------------------------------------------------------------


def test_a_snapshot_whose_every_record_is_quarantined_confirms_nothing(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3)])
    age_everything(con)
    counts = load_stock(con, [stock_rec(101, -1), stock_rec(102, -2)])
    assert counts["stock_rejected"] == 2 and queries.snapshot_age(con) < 60  # the snapshot itself is fresh
    assert all(age > 7000 for age in confirmed_ages(con).values())  # but no item was confirmed by it


def test_a_partly_quarantined_snapshot_confirms_only_the_items_it_received_valid(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3), stock_rec(103, 1)])
    age_everything(con)
    load_stock(con, [stock_rec(101, -1), stock_rec(102, 4)])  # 101 quarantined, 103 absent (not dropped)
    ages = confirmed_ages(con)
    assert ages[101] > 7000 and ages[103] > 7000 and ages[102] < 60


@pytest.mark.parametrize("with_reject", [False, True])
def test_an_unchanged_snapshot_refreshes_the_confirmation_without_a_rewrite(con, with_reject):
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3)])
    age_everything(con)
    written = con.execute("SELECT inventory_id, snapshot_id FROM stock_items ORDER BY 1").fetchall()
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3)] + ([stock_rec(104, -1)] if with_reject else []))
    assert con.execute("SELECT inventory_id, snapshot_id FROM stock_items ORDER BY 1").fetchall() == written
    assert all(age < 60 for age in confirmed_ages(con).values())


def test_a_repeated_snapshot_refreshes_the_confirmation_of_every_item(con):
    records = [stock_rec(101, 5), stock_rec(102, 3)]
    v = validate_stock(records)
    writes.load_stock_snapshot(con, None, v.items, v.rejects, v.received, v.repeated, records_digest(records))
    age_everything(con)
    assert writes.repeat_stock_snapshot(con, None, records_digest(records)) is not None
    assert all(age < 60 for age in confirmed_ages(con).values())


# ---- processing: orders that need a stale item wait ------------------------------------------------------------


def test_orders_needing_a_stale_item_stay_new_and_the_run_says_which(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3), stock_rec(205, 9)])
    age_everything(con)
    load_stock(con, [stock_rec(101, -1), stock_rec(102, 3), stock_rec(205, -1)])  # 101 and 205 quarantined
    load_orders(
        con,
        [
            order_rec(1, (101, 1)),
            order_rec(2, (102, 3)),
            order_rec(3, (205, 1), (102, 1)),
            order_rec(4, (102, 1)),
            order_rec(5, (999, 1)),
        ],
    )
    writes.start_run(con, "run-1", "process-all")
    outcome = service.process(con, "run-1", max_stock_age=AGE)
    # 3 waits and takes nothing, so 4 is decided as if it were not there: 2 took all of 102, 4 is short
    assert statuses(con) == {
        1: ("NEW", None),
        2: ("PROCESSED", None),
        3: ("NEW", None),
        4: ("FAILED", "INSUFFICIENT_STOCK"),
        5: ("FAILED", "UNKNOWN_INVENTORY"),
    }
    assert outcome == {
        "processed": 1,
        "failed": 2,
        "waiting": 2,
        "waiting_items": [101, 205],
        "note": "2 orders wait for stale stock: items 101, 205 "
        "(last good value older than ORDERLY_MAX_STOCK_AGE=900 s)",
    }
    assert queries.order_history(con, 1) == [] and queries.order_history(con, 3) == []
    (run,) = queries.recent_runs(con)
    assert (run["processed"], run["failed"], run["waiting"]) == (1, 2, 2)

    # the next good snapshot confirms them: the waiting orders are decided then (3 finds 102 taken by 2)
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3), stock_rec(205, 9)])
    assert service.process(con, "run-2", max_stock_age=AGE) == {"processed": 1, "failed": 1, "waiting": 0}
    assert statuses(con)[1] == ("PROCESSED", None) and statuses(con)[3] == ("FAILED", "INSUFFICIENT_STOCK")


def test_a_dry_run_waits_alike_and_writes_nothing(con):
    load_stock(con, [stock_rec(101, 5)])
    age_everything(con)
    load_stock(con, [stock_rec(101, -1)])
    load_orders(con, [order_rec(1, (101, 1))])
    preview = service.process(con, None, max_stock_age=AGE, dry_run=True)
    assert (preview["processed"], preview["failed"], preview["waiting"], preview["changes"]) == (0, 0, 1, [])
    assert preview["note"].startswith("1 order would wait for stale stock: item 101 ")
    assert statuses(con) == {1: ("NEW", None)} and history_rows(con) == 0


def test_within_the_bound_nothing_waits(con):
    load_stock(con, [stock_rec(101, 5)])
    load_stock(con, [stock_rec(101, -1)])  # quarantined now, but the last good value is seconds old
    load_orders(con, [order_rec(1, (101, 1))])
    assert service.process(con, "r", max_stock_age=AGE) == {"processed": 1, "failed": 0, "waiting": 0}


# ---- the command --------------------------------------------------------------------------------------------


def test_cli_run_after_a_snapshot_of_only_rejects_leaves_orders_new_and_says_why(cli_env):
    """Class 6b as the operator sees it: a good sync, then (the stock 2 h old) a snapshot whose every record is
    rejected. The new orders wait, NEW; exit 0 (waiting is not a refusal of the run); the summary line counts
    them and the next line names the items; `orderly runs` keeps the count and the line."""
    with HostileRemote() as remote:
        env = {
            **cli_env,
            "ORDERLY_ORDERS_URL": remote.url,
            "ORDERLY_WAREHOUSE_URL": remote.url,
            "ORDERLY_HTTP_RETRIES": "1",
            "ORDERLY_HTTP_TIMEOUT": "2",
        }
        remote.script(orders=[order(1, (101, 1))], stock=[item(101, 10), item(205, 10), item(300, 10)])
        first = run_cli(["run"], env, check=False)
        assert first.returncode == 0, first.stderr
        with duckdb.connect(env["ORDERLY_DB"]) as db:
            age_everything(db)
        remote.script(
            orders=[order(1, (101, 1)), order(2, (101, 2)), order(3, (205, 1), (300, 1)), order(4, (300, 1))],
            stock=[item(101, -1), item(205, "x"), item(300, None)],
        )
        second = run_cli(["run"], env, check=False)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    assert "waiting 3" in second.stdout
    assert (
        "3 orders wait for stale stock: items 101, 205, 300 (last good value older than ORDERLY_MAX_STOCK_AGE=900 s)"
    ) in second.stdout
    rows = json.loads(run_cli(["status", "--json"], env).stdout)
    assert {r["order_id"]: r["status"] for r in rows} == {1: "PROCESSED", 2: "NEW", 3: "NEW", 4: "NEW"}
    latest = json.loads(run_cli(["runs", "--json"], env).stdout)[0]
    assert latest["state"] == "COMPLETED" and latest["waiting"] == 3 and latest["stock_rejected"] == 3
    assert "3 orders wait for stale stock" in latest["message"]


def test_the_run_summary_artifact_counts_the_waiting_and_keeps_the_note():
    from tasks.report import summary_markdown

    note = "2 orders wait for stale stock: items 101, 205 (last good value older than ORDERLY_MAX_STOCK_AGE=900 s)"
    markdown = summary_markdown(
        "pipeline", "COMPLETED", 1.0, {"processed": 1, "waiting": 2}, None, {"NEW": 2}, [], [note]
    )
    assert "| waiting | 2 |" in markdown and f"## Notes\n- {note}" in markdown
