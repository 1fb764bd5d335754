"""Remote text never drives the terminal (issue 17, class 9; CONTRACT.md section 3): the real `orderly` command
prints control characters from a remote escaped, visibly, in tables and CSV, and CSV guards formula cells."""

from __future__ import annotations

import csv
import io
import os
import subprocess

import duckdb
import pytest

from tests.cli_store import build_store, seed_records
from tests.conftest import ORDERLY, ROOT

pytestmark = pytest.mark.slow  # each test runs the `orderly` executable (tests/tiers.py)

ESC_SKU = "\x1b[31mRED"
FORMULA = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    """A real store whose stock and rejects carry what a hostile warehouse sent: escapes and formulas."""
    path = tmp_path_factory.mktemp("terminal") / "orderly.duckdb"
    stock, orders = seed_records()
    stock[0].update(sku=ESC_SKU, product_name=FORMULA)
    stock[1].update(product_name="+cmd|' /C calc'!A0\x07")
    stock[2].update(sku="@SUM(1+1)", product_name="two\nlines\u202eevil")
    stock.append({**stock[3], "inventory_id": "\x1b]0;owned\x07", "sku": "\x1b[2J"})  # rejected: the id is text
    orders[0]["customer_id"] = "-C\x1b[1m"
    run_id = build_store(path, stock, orders)
    # A reason that quotes what the remote sent (a validator may), and a key that is text: the table shows both
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO rejects VALUES (?, 'stock', ?, ?, ?, now())",
        [run_id, "=1+1\x1b[5m", '{"sku": "\\u001b[2J"}', "sku is not valid: '\x1b[2J\x1b[H'"],
    )
    con.close()
    return path


def orderly(args: list[str], db) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(ORDERLY_DB=str(db), COLUMNS="200")
    result = subprocess.run(
        [ORDERLY, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    return result


def no_raw_controls(text: str) -> None:
    raw = [ch for ch in text if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F or ch == "\u202e"]
    assert not raw, f"raw control characters reached the output: {raw!r}"


def test_stock_table_shows_escapes_visibly(hostile_store):
    shown = orderly(["stock"], hostile_store)
    no_raw_controls(shown.stdout + shown.stderr)
    assert "\\x1b[31mRED" in shown.stdout  # the escape is there to see, not acted on
    assert "two\\nlines\\u202eevil" in shown.stdout and "\\x07" in shown.stdout


def test_stock_csv_escapes_and_guards_formulas(hostile_store):
    shown = orderly(["stock", "--csv"], hostile_store)
    no_raw_controls(shown.stdout.replace("\n", ""))
    rows = {int(r["inventory_id"]): r for r in csv.DictReader(io.StringIO(shown.stdout))}
    first, second, third = (rows[item["inventory_id"]] for item in seed_records()[0][:3])
    assert first["sku"] == "\\x1b[31mRED" and first["product_name"] == "'" + FORMULA
    assert second["product_name"].startswith("'+cmd") and second["product_name"].endswith("\\x07")
    assert third["sku"] == "'@SUM(1+1)"
    # numbers stay numbers: nothing numeric is quoted, even a negative one would not be (it is not text)
    assert all(
        not r[name].startswith("'")
        for r in rows.values()
        for name in ("inventory_id", "on_hand", "allocated", "available")
    )


def test_status_csv_and_rejects_are_safe(hostile_store):
    status = orderly(["status", "--csv"], hostile_store)
    no_raw_controls(status.stdout.replace("\n", ""))
    rejects = orderly(["rejects"], hostile_store)
    no_raw_controls(rejects.stdout + rejects.stderr)
    assert "'\\x1b[2J\\x1b[H'" in rejects.stdout and "=1+1\\x1b[5m" in rejects.stdout
    rejects_csv = orderly(["rejects", "--csv"], hostile_store)
    no_raw_controls(rejects_csv.stdout.replace("\n", ""))
    rows = list(csv.DictReader(io.StringIO(rejects_csv.stdout)))
    quoted = [r for r in rows if r["record_key"].startswith("'=1+1")]
    assert quoted and quoted[0]["reasons"] == "sku is not valid: '\\x1b[2J\\x1b[H'"
    assert quoted[0]["raw"] == '{"sku": "\\u001b[2J"}'  # JSON escapes by its nature; not a formula either


def test_csv_cells_are_guarded_only_when_text():
    from orderly.cli.output import _csv_value, visible

    assert _csv_value(-5) == -5 and _csv_value("-5") == "'-5"
    for start in "=+-@\t\r":
        assert _csv_value(f"{start}x").startswith("'")
    assert _csv_value("plain") == "plain" and visible("a\x00b\x9bc") == "a\\x00b\\x9bc"
