"""The smaller findings of a new user's walk through the command line (issue 20, item 9), each held by a test that
fails without its fix: help and argument errors in the project's words, one-line answers where a run or a table
would say nothing, tables that read at any width. The store is built in-process (tests/cli_store.py): no Prefect."""

from __future__ import annotations

import re

import pytest
from cli_store import build_store
from test_cli_queries import invoke


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("walk") / "orderly.duckdb"
    build_store(path)
    return {"ORDERLY_DB": str(path)}


# ---- help and errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "metavars"),
    [
        (["process", "--help"], ["--order ID"]),
        (["reset", "--help"], ["--order ID", "--status S", "--reason R"]),
        (["status", "--help"], ["--since TIME", "--limit N"]),
        (["runs", "--help"], ["RUN", "--limit N"]),
        (["explain", "--help"], ["ORDER_ID"]),
        (["history", "--help"], ["ORDER_ID"]),
    ],
)
def test_help_shows_plain_metavars(seeded, monkeypatch, capsys, args, metavars):
    code, out, _ = invoke(args, seeded, monkeypatch, capsys)
    text = re.sub(r"[\s│*]+", " ", out)
    assert code == 0 and all(re.search(rf"{re.escape(m)}\b", text) for m in metavars), text
    assert not re.search(r"<[a-z\[\]]+>|<=x<=|9223372036854775807|\{ORDER_ID\}", out), out  # no Python types


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["explain", "0"], "error: ORDER_ID must be a whole number from 1 to 9223372036854775807"),
        (["history", "x"], "error: ORDER_ID must be a whole number from 1 to 9223372036854775807"),
        (["status", "--limit", "0"], "error: --limit must be a whole number from 1 to 9223372036854775807"),
        (["process", "--order", "-3"], "error: --order must be a whole number from 1 to 9223372036854775807"),
        (["runs", "--limit", "2000000"], "error: --limit must be a whole number from 1 to 1000000"),
        (["sandbox", "--fault-rate", "2"], "error: --fault-rate must be a number from 0.0 to 1.0"),
    ],
)
def test_argument_errors_use_the_projects_words(seeded, monkeypatch, capsys, args, line):
    code, out, err = invoke(args, seeded, monkeypatch, capsys)
    assert (code, out, err.strip()) == (2, "", line)
    assert "Input should" not in err and "order_id" not in err


def test_declined_and_bad_resets_stop_at_once_without_a_flow(seeded, monkeypatch, capsys):
    from orderly.cli import commands

    monkeypatch.setattr(commands, "run_flow", lambda *args, **kwargs: pytest.fail("a flow was started"))
    code, out, err = invoke(["reset", "--status", "NEW"], seeded, monkeypatch, capsys)
    assert (code, out) == (2, "") and err.strip() == (
        "error: status 'NEW' cannot be reset: a reset puts PROCESSED or FAILED orders back to NEW"
    )


# ---- commands -----------------------------------------------------------------------------------------------


def test_a_store_is_created_only_where_its_directory_exists(tmp_path):
    from orderly.errors import StoreUnusable
    from orderly.store import open_store

    mistyped = tmp_path / "dta" / "orderly.duckdb"
    with (
        pytest.raises(StoreUnusable, match=r"ORDERLY_DB=.* is in a directory that does not exist"),
        open_store(mistyped),
    ):
        pass
    assert not mistyped.parent.exists()


def test_a_dry_run_with_no_new_orders_answers_without_prefect(seeded, monkeypatch, capsys):
    from orderly.cli import commands

    monkeypatch.setattr(commands, "run_flow", lambda *args, **kwargs: pytest.fail("a flow (and a server) was started"))
    code, out, err = invoke(["process", "--dry-run"], seeded, monkeypatch, capsys)
    assert (code, out.strip()) == (0, "nothing would change")
    assert err.strip() == "dry run, nothing was written: would process 0, fail 0"
    code, out, _ = invoke(["process", "--dry-run", "--json"], seeded, monkeypatch, capsys)
    assert code == 0 and '"processed": 0' in out


def test_a_run_that_changed_nothing_says_so(seeded, monkeypatch, capsys):
    from orderly.cli import commands

    monkeypatch.setattr(commands, "run_flow", lambda *args, **kwargs: pytest.fail("a flow was started"))
    code, out, _ = invoke(["process", "--order", "6"], seeded, monkeypatch, capsys)  # 6 is PROCESSED: skipped
    assert code == 0 and out.splitlines()[0] == "process: nothing to do", out
    from orderly.cli.commands import _summary

    _summary("sync", {"stock_fetched": 8, "stock_loaded": 8, "orders_fetched": 15, "orders_loaded": 0})
    _summary("process", {"processed": 0, "failed": 0, "waiting": 0})
    assert capsys.readouterr().out.splitlines() == [
        "sync: stock 8 fetched, 8 loaded; orders 15 fetched, 0 loaded",
        "process: nothing to do",
    ]


# ---- explain and dry run ------------------------------------------------------------------------------------


def test_explain_names_each_lines_item_numbers_lines_from_1_and_fits_80_columns(seeded, monkeypatch, capsys):
    code, out, _ = invoke(["explain", "2"], seeded, monkeypatch, capsys, width=80)
    lines = out.splitlines()
    assert code == 0 and all(len(line) <= 80 for line in lines), lines
    assert lines[0] == "order 2: FAILED INSUFFICIENT_STOCK" and re.fullmatch(
        r"decided \S+ \S+ by run [0-9a-f]{8}", lines[1]
    ), lines[:2]
    rows = [line.split() for line in lines if line.split() and line.split()[0].isdigit()]
    assert [row[:4] for row in rows] == [["1", "101", "MUG-BLK", "Black"], ["2", "205", "TEE-WHT-M", "White"]]
    assert "why: item 205 short: needed 1, available 0" in out
    _, wide, _ = invoke(["explain", "2"], seeded, monkeypatch, capsys, width=120)
    assert "White T-shirt (M)" in wide  # at 80 columns the name gives way (cut with an ellipsis), never a number


def test_a_dry_run_says_why_an_order_would_be_processed(monkeypatch, capsys):
    from orderly.cli.commands import _preview

    monkeypatch.setattr("orderly.cli.output.out.width", 120)
    changes = [
        {"order_id": 6, "from_status": "NEW", "to_status": "PROCESSED", "reason": None, "details": None},
        {
            "order_id": 7,
            "from_status": "NEW",
            "to_status": "FAILED",
            "reason": "UNKNOWN_INVENTORY",
            "details": {"unknown": [999]},
        },
    ]
    _preview({"processed": 1, "failed": 1, "changes": changes}, as_json=False)
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.split()[0].isdigit()}
    assert rows["6"].endswith("every item is available; its quantities would be allocated to it"), rows
    assert rows["7"].endswith("item 999 is not in the stock snapshot"), rows


# ---- tables and output --------------------------------------------------------------------------------------


def test_status_shows_when_each_order_was_placed(seeded, monkeypatch, capsys):
    code, out, _ = invoke(["status"], seeded, monkeypatch, capsys)
    assert code == 0 and out.splitlines()[0].split()[:3] == ["Order", "ID", "Placed"]
    (two,) = [line for line in out.splitlines() if line.split()[:1] == ["2"]]
    assert "2026-11-20 09:15" in two
    _, out, _ = invoke(["status", "--since", "2026-11-20T09:16", "--json"], seeded, monkeypatch, capsys)
    assert "placed_at" not in out and '"order_id": 2,' not in out  # the JSON fields stay as the contract says


def test_an_empty_table_says_so(seeded, monkeypatch, capsys):
    code, out, _ = invoke(["rejects"], seeded, monkeypatch, capsys)
    assert (code, out) == (0, "no quarantined records\n")


def test_counts_keep_thousands_separators():
    from orderly.cli.output import Column, _cell, counts_in_words

    assert counts_in_words({"orders_fetched": 12000, "orders_loaded": 1234567, "processed": 1000}) == (
        "orders 12,000 fetched, 1,234,567 loaded; processed 1,000"
    )
    assert _cell(9000, Column("Qty", "num")).plain == "9,000" and _cell(9000, Column("Item", "id")).plain == "9000"


def test_piped_tables_carry_no_padding(seeded, monkeypatch, capsys):
    for args in (["status"], ["runs"], ["history", "2"], ["stock"]):
        _, out, _ = invoke(args, seeded, monkeypatch, capsys, width=200)  # as piped: 200 columns
        padded = [line for line in out.splitlines() if line != line.rstrip()]
        assert not padded, (args, padded)


def test_words_are_not_broken_at_narrow_widths(seeded, monkeypatch, capsys):
    _, out, _ = invoke(["runs"], seeded, monkeypatch, capsys, width=50)
    words = set(out.split())
    assert {"fetched,", "loaded;", "processed"} <= words, out
    _, out, _ = invoke(["history", "2"], seeded, monkeypatch, capsys, width=60)
    assert {"short:", "available"} <= set(out.split()), out


# ---- Prefect ------------------------------------------------------------------------------------------------


def test_make_server_turns_prefects_telemetry_off():
    import subprocess

    from conftest import ROOT

    shown = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", "shown: ; @echo $$PREFECT_SERVER_ANALYTICS_ENABLED", "shown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert shown.stdout.strip() == "false"


def test_the_reset_state_form_describes_status_and_reason_and_offers_no_new():
    from prefect.utilities.callables import parameter_schema

    from flows.orders import reset_state

    fields = parameter_schema(reset_state).model_dump()["properties"]
    assert fields["status"]["enum"] == ["PROCESSED", "FAILED"] and fields["status"]["description"]
    assert fields["reason"]["enum"] == ["UNKNOWN_INVENTORY", "INSUFFICIENT_STOCK"] and fields["reason"]["description"]
    assert "anyOf" not in fields["status"] and "anyOf" not in fields["reason"]  # no "Property is type None" picker
