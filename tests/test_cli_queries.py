"""The query commands and `orderly doctor` as an operator meets them: tables at 80 columns, filters, CSV, run ids
by prefix, colour, a missing database, and the checks that run before any flow. The store is a real DuckDB file
built in-process (tests/cli_store.py); no Prefect server is needed, so this file runs in seconds."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest
from cli_store import build_store, seed_records
from conftest import ORDERLY, ROOT, SEED_TABLE, free_port

LONG_NAME = "Extra large insulated stainless steel travel mug with a lid that never leaks, matte black edition"
LONG_SKU = "MUG-XL-INSULATED-STAINLESS-BLACK-2026"
FAILED_REASON = "no such order: 999; nothing was changed"
# Prefect's flow run ids are UUIDv7: two runs started within the same minute share their first 8 hex digits.
RUN_A = "01a23ac7-1f2e-7c3d-8a4b-5c6d7e8f9a01"
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-8]|9[0-7])[;m]")  # an SGR sequence that sets a foreground colour
RUN_B = "01a23ac7-9b80-7e21-b3c4-d5e6f7a8b902"


def invoke(args: list[str], env: dict[str, str], monkeypatch, capsys, width: int = 80) -> tuple[int, str, str]:
    """`orderly ARGS` in this process (fast): the exit status, stdout and stderr."""
    from orderly.cli import main as cli
    from orderly.cli import output as cli_output

    for name in [n for n in os.environ if n.startswith(("ORDERLY_", "PREFECT_API"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli_output.out, "width", width)
    monkeypatch.setattr(sys, "argv", ["orderly", *args])
    capsys.readouterr()
    try:
        cli.main()
        code = 0
    except SystemExit as done:
        code = done.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict[str, str]:
    """The seed, decided, with one item's names far too long for a terminal, a FAILED run and a quarantined record."""
    stock, orders = seed_records()
    stock[0].update(product_name=LONG_NAME, sku=LONG_SKU)
    orders.append(
        {"id": 17, "placed_at": "2026-11-20T10:00:00Z", "customer_id": "C", "items": []}
    )  # no lines: rejected
    path = tmp_path_factory.mktemp("queries") / "orderly.duckdb"
    build_store(path, stock, orders, run_id=RUN_A)
    build_store(path, stock, orders, run_id=RUN_B, decide=False, failed_run=FAILED_REASON)
    return {"ORDERLY_DB": str(path)}


def test_every_table_fits_80_columns_and_cuts_only_text(store, monkeypatch, capsys):
    for args in (["status"], ["stock"], ["runs"], ["rejects"], ["history", "2"], ["explain", "2"], ["doctor"]):
        code, out, err = invoke(args, store, monkeypatch, capsys)
        assert code == 0, (args, err)
        too_wide = [line for line in out.splitlines() if len(line) > 80]
        assert not too_wide, (args, too_wide)
    code, out, _ = invoke(["stock"], store, monkeypatch, capsys)
    (mug,) = [line for line in out.splitlines() if line.split() and line.split()[0] == "101"]
    assert "…" in mug and LONG_NAME not in out  # cut with an ellipsis...
    assert mug.split()[-4:] == ["1", "5", "2", "3"]  # ...and the warehouse and the three numbers whole
    code, out, _ = invoke(["stock", "--json"], store, monkeypatch, capsys)
    assert json.loads(out)["items"][0]["product_name"] == LONG_NAME  # full in --json


def test_numbers_are_right_aligned(store, monkeypatch, capsys):
    _, out, _ = invoke(["stock"], store, monkeypatch, capsys, width=120)
    rows = [line.rstrip() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(rows) == 8 and len({len(row) for row in rows}) == 1  # the last column ends where the others do
    assert rows[0].startswith(" 101  ")  # the item id too, under its header "Item"


def test_runs_show_short_ids_that_tell_runs_apart_and_the_reason_of_a_failed_run(store, monkeypatch, capsys):
    _, out, _ = invoke(["runs"], store, monkeypatch, capsys)
    assert FAILED_REASON in " ".join(out.split())  # wrapped in its column, whole
    shown = [line.split()[0] for line in out.splitlines() if re.match(r"\s*[0-9a-f]{8}", line)]
    # RUN_A and RUN_B share 8 digits: every id shows up to the one after the dash, where they differ
    assert len(shown) == 3 and len(set(shown)) == 3 and {RUN_A[:10], RUN_B[:10]} < set(shown), shown
    assert {len(run_id) for run_id in shown} == {10} and RUN_A not in out
    assert "orders 16 fetched, 15 loaded, 1 rejected; processed 6, failed 9" in " ".join(out.split())  # in words
    (failed,) = [
        r for r in json.loads(invoke(["runs", "--json"], store, monkeypatch, capsys)[1]) if r["state"] == "FAILED"
    ]
    assert failed["message"] == FAILED_REASON and len(failed["run_id"]) == 36


def test_a_run_id_prefix_is_accepted_and_a_bad_one_is_one_line(store, monkeypatch, capsys):
    code, out, _ = invoke(["runs", RUN_A[:-1] + "1", "--json"], store, monkeypatch, capsys)
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [RUN_A]
    code, out, _ = invoke(["runs", RUN_A.upper()], store, monkeypatch, capsys)
    assert code == 0 and f"run {RUN_A}: pipeline" in out and "processed 6, failed 9, reset 0" in out
    code, _, err = invoke(["runs", RUN_A[:8]], store, monkeypatch, capsys)  # both runs start 01a23ac7
    line = one_line(err)
    assert code == 2 and "ambiguous" in line, line
    # each candidate by the part of its id that differs, with its flow and start, newest first
    candidates = re.findall(r"(01a23ac7-[0-9a-f]+) \((pipeline), started (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\)", line)
    assert [c[0] for c in candidates] == [RUN_B[:10], RUN_A[:10]], line
    code, out, _ = invoke(["runs", RUN_B[:10]], store, monkeypatch, capsys)  # what the table shows is enough
    assert code == 0 and f"run {RUN_B}: pipeline" in out
    code, _, err = invoke(["runs", "fff"], store, monkeypatch, capsys)
    assert code == 2 and "no run id starts with 'fff'" in one_line(err)
    code, _, err = invoke(["rejects", "--run", "xyz"], store, monkeypatch, capsys)
    assert code == 2 and "'xyz' is not a run id" in one_line(err)
    code, out, _ = invoke(["rejects", "--run", RUN_A[:-1] + "1", "--json"], store, monkeypatch, capsys)
    assert code == 0 and [(r["run_id"], r["record_key"]) for r in json.loads(out)] == [(RUN_A, "17")]
    code, out, _ = invoke(["rejects", "--run", RUN_B, "--json"], store, monkeypatch, capsys)
    assert code == 0 and {r["run_id"] for r in json.loads(out)} <= {RUN_B}


def test_status_filters(store, monkeypatch, capsys):
    def ids(*args: str) -> list[int]:
        code, out, err = invoke(["status", *args, "--json"], store, monkeypatch, capsys)
        assert code == 0, err
        return [row["order_id"] for row in json.loads(out)]

    failed = sorted(oid for oid, (_, _, status) in SEED_TABLE.items() if status == "FAILED")
    assert ids("--status", "failed") == failed
    assert ids("--status", "FAILED", "--reason", "UNKNOWN_INVENTORY") == [3, 7, 13]
    assert ids("--reason", "insufficient_stock", "--limit", "2") == [14, 15]
    assert ids("--limit", "3") == [14, 15, 16]  # the latest three, still ascending
    # the seed places order N at 09:15 + (N - 2) minutes on 2026-11-20 (UTC)
    assert ids("--since", "2026-11-20T09:25:00Z") == list(range(12, 17))
    assert ids("--since", "2026-11-20T10:25:00+01:00") == list(range(12, 17))
    assert ids("--since", "2026-11-20 09:25") == list(range(12, 17))  # UTC when it says nothing
    assert ids("--since", "2026-11-21") == []
    assert ids("--since", "5000w") == sorted(SEED_TABLE)  # an age: placed within the last 5000 weeks
    assert ids("--status", "NEW") == []


def test_status_table_ends_with_the_counts_and_programs_get_only_data(store, monkeypatch, capsys):
    _, out, _ = invoke(["status"], store, monkeypatch, capsys)
    assert out.rstrip().splitlines()[-1] == "15 orders: 6 PROCESSED, 9 FAILED"
    _, out, _ = invoke(["status", "--reason", "UNKNOWN_INVENTORY"], store, monkeypatch, capsys)
    assert out.rstrip().splitlines()[-1] == "3 matching orders: 3 FAILED"
    _, out, _ = invoke(["status", "--limit", "2"], store, monkeypatch, capsys)
    assert "15 orders: 6 PROCESSED, 9 FAILED" in out and "the latest 2 shown" in out
    code, out, err = invoke(["status", "--json"], store, monkeypatch, capsys)
    assert code == 0 and err == "" and len(json.loads(out)) == 15  # nothing but the JSON
    code, out, err = invoke(["status", "--csv"], store, monkeypatch, capsys)
    assert code == 0 and err == "" and "orders:" not in out


def test_csv_carries_the_json_fields(store, monkeypatch, capsys):
    for args, pick in (
        (["status"], lambda j: j),
        (["stock"], lambda j: j["items"]),
        (["runs"], lambda j: j),
        (["rejects"], lambda j: j),
        (["history", "2"], lambda j: j),
    ):
        _, as_json, _ = invoke([*args, "--json"], store, monkeypatch, capsys)
        code, as_csv, err = invoke([*args, "--csv"], store, monkeypatch, capsys)
        assert code == 0, err
        expected = pick(json.loads(as_json))
        rows = list(csv.DictReader(io.StringIO(as_csv)))
        assert len(rows) == len(expected) > 0, args
        for row, want in zip(rows, expected, strict=True):
            assert list(row) == list(want), args  # the same fields, in the same order
            for name, value in want.items():
                shown = "" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
                if isinstance(value, float):
                    assert float(row[name]) == pytest.approx(value), (args, name)
                else:
                    assert row[name] == shown, (args, name)
    code, _, err = invoke(["status", "--json", "--csv"], store, monkeypatch, capsys)
    assert code == 2 and "choose one of --json and --csv" in one_line(err)


def test_a_missing_database_is_said_on_stderr_and_reads_as_empty(tmp_path, monkeypatch, capsys):
    env = {"ORDERLY_DB": str(tmp_path / "orderly.duckdb")}
    absolute = str(tmp_path / "orderly.duckdb")
    for args, empty in (
        (["status", "--json"], []),
        (["runs", "--json"], []),
        (["rejects", "--json"], []),
        (["stock", "--json"], {"snapshot": None, "items": []}),
    ):
        code, out, err = invoke(args, env, monkeypatch, capsys)
        assert code == 0 and json.loads(out) == empty, args
        assert one_line(err) == f"note: no database at {absolute} (ORDERLY_DB); run `orderly sync` first"
    code, out, err = invoke(["status", "--csv"], env, monkeypatch, capsys)
    assert code == 0 and out == "order_id,status,items,total_qty,reason\n" and "no database at" in one_line(err)
    code, _, err = invoke(["explain", "3"], env, monkeypatch, capsys)
    assert code == 2 and one_line(err).startswith("error: no such order: 3 (no database at ")
    code, _, err = invoke(["history", "3"], env, monkeypatch, capsys)
    assert code == 2 and "no database at" in one_line(err)
    # relative to where the command runs: the line shows the absolute path it looked at
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()  # the default's directory (a clone has it); a missing one is refused, not made
    code, _, err = invoke(["status"], {}, monkeypatch, capsys)
    assert f"no database at {tmp_path / 'data' / 'orderly.duckdb'}" in one_line(err)


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """stdout of `orderly ARGS` run on a pseudo-terminal, as an operator sees it."""
    import pty

    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [ORDERLY, *args], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=secondary, stderr=subprocess.PIPE
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    finally:
        os.close(primary)
    return b"".join(chunks).decode()


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_statuses_in_colour_on_a_terminal_only_and_never_with_no_color(store):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "NO_COLOR", "FORCE_COLOR"))}
    env = {**base, **store, "COLUMNS": "80", "TERM": "xterm-256color"}
    coloured = _on_a_terminal(["status", "--limit", "2"], env)
    assert "\x1b[32mPROCESSED" in coloured and "\x1b[31mFAILED" in coloured
    plain = _on_a_terminal(["status", "--limit", "2"], {**env, "NO_COLOR": "1"})
    assert "PROCESSED" in plain and not COLOUR.search(plain)  # bold headers may stay: NO_COLOR is about colour
    piped = subprocess.run([ORDERLY, "status"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout and "PROCESSED" in piped.stdout
    assert max(len(line) for line in piped.stdout.splitlines()) <= 80  # COLUMNS is honoured when piped too


def test_doctor_names_each_problem_in_one_line_and_never_a_token(tmp_path, monkeypatch, capsys):
    token, ui_token, password = "tok-3f9a1c77e2", "ui-token-0123456789abcdef", "pa55word"
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        "ORDERLY_DB": str(tmp_path / "missing.duckdb"),
        "ORDERLY_API_TOKEN": token,
        "ORDERLY_UI_TOKEN": ui_token,
        "ORDERLY_ORDERS_URL": f"http://ops:{password}@127.0.0.1:{free_port()}/?key={token}",
        "ORDERLY_WAREHOUSE_URL": dead,
        "PREFECT_API_URL": f"{dead}/api",
        "ORDERLY_PAGE_SIZE": "0",
    }
    code, out, err = invoke(["doctor"], env, monkeypatch, capsys, width=200)
    assert code == 1
    assert "5 problems" in one_line(err)
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    assert [line.split()[1] for line in problems] == [
        "database:",
        "ORDERLY_PAGE_SIZE:",
        "Prefect:",
        "orders:",
        "warehouse:",
    ]
    assert f"no database at {tmp_path / 'missing.duckdb'} (ORDERLY_DB): run `orderly sync`" in problems[0]
    assert "make server" in problems[2] and "connection refused" in problems[2]
    assert "nothing answers at" in problems[4] and "ORDERLY_WAREHOUSE_URL" in problems[4]
    for secret in (token, ui_token, password):
        assert secret not in out + err
    assert "set (hidden)" in out and "http://***@127.0.0.1" in out


def test_doctor_all_good_and_remotes_that_answer_or_refuse(store, stub_server, monkeypatch, capsys):
    def handler(path, params, headers):
        if headers.get("Authorization") != "Bearer good-token":
            return 401, {}, b"{}"
        body = {
            "/orders": {"orders": [], "next_after_id": None},
            "/api/health": True,
            "/stock": {"items": [], "page": 1, "per_page": 1, "total_pages": 1},
        }.get(path)
        return (
            (200, {"Content-Type": "application/json"}, json.dumps(body).encode())
            if body is not None
            else (404, {}, b"")
        )

    stub = stub_server(handler)
    env = {
        **store,
        "ORDERLY_ORDERS_URL": stub.url,
        "ORDERLY_WAREHOUSE_URL": stub.url,
        "ORDERLY_MAX_STOCK_AGE": "1e9",
        "ORDERLY_API_TOKEN": "good-token",
    }
    code, out, err = invoke(["doctor"], env, monkeypatch, capsys, width=200)
    assert code == 0 and err == "", out
    assert [line.split()[:2] for line in out.splitlines()[:4]] == [
        ["ok", "database:"],
        ["ok", "Prefect:"],
        ["ok", "orders:"],
        ["ok", "warehouse:"],
    ]
    shown = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("ORDERLY_")}
    assert (shown["ORDERLY_MAX_ORDER_PAGES"], shown["ORDERLY_LOOKBACK_ORDERS"], shown["ORDERLY_MAX_BODY_BYTES"]) == (
        "100000",
        "1000",
        "16777216",
    )  # the paging bounds issue 17 added, with their defaults
    code, out, err = invoke(["doctor"], {**env, "ORDERLY_API_TOKEN": "bad-token"}, monkeypatch, capsys, width=200)
    assert code == 1 and "2 problems" in one_line(err)
    assert "answers 401: the token is refused: set ORDERLY_API_TOKEN" in out and "bad-token" not in out
    code, out, err = invoke(["doctor"], {**env, "ORDERLY_ORDERS_URL": stub.url + "/v2"}, monkeypatch, capsys, width=200)
    assert code == 1 and "/v2/orders answers 404: check ORDERLY_ORDERS_URL" in out


def _with_a_terminal_for_stdin(args: list[str], env: dict[str, str], answer: bytes | None) -> tuple[int, str]:
    """`orderly ARGS` with stdin on a pseudo-terminal (an operator at the keyboard); returns (status, stderr)."""
    import pty

    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [ORDERLY, *args],
            env=env,
            cwd=ROOT,
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if answer is not None:
            os.write(primary, answer)
        _, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    return process.returncode, err


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_reset_asks_on_a_terminal_only_when_everything_would_go_back(store):
    """Declining changes nothing and starts nothing. --yes, --order or a filter are not asked: they reach the flow,
    here stopped at once by a Prefect server that is down (so no flow runs and the store stays as it is)."""
    dead = f"http://127.0.0.1:{free_port()}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_API"))},
        **store,
        "PREFECT_API_URL": dead,
    }
    question = "Put every PROCESSED and FAILED order back to NEW?"
    code, err = _with_a_terminal_for_stdin(["reset"], env, b"n\n")
    assert code == 1 and question in err and "nothing was reset" in err and "Traceback" not in err
    for args in (["reset", "--yes"], ["reset", "--status", "FAILED"], ["reset", "--order", "2"]):
        code, err = _with_a_terminal_for_stdin(args, env, None)
        assert code == 2 and question not in err, (args, err)
        assert one_line(err).startswith("error: no Prefect server answers")
    piped = subprocess.run(
        [ORDERLY, "reset"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )  # a script: never asked
    assert piped.returncode == 2 and question not in piped.stderr


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_a_prefect_url_that_answers_but_is_no_prefect_api_is_one_line(store, stub_server):
    """Something listens at PREFECT_API_URL, but its /health is not Prefect's (here a 404): the data-changing
    commands stop before importing Prefect, and the doctor says the same, each in one line."""
    stub = stub_server(lambda path, params, headers: (404, {}, b"not here"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_API"))},
        **store,
        "PREFECT_API_URL": f"{stub.url}/not-prefect",
    }
    for args in (["sync"], ["doctor"]):
        result = subprocess.run(
            [ORDERLY, *args], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        )
        said = result.stdout + result.stderr
        assert result.returncode == (2 if args == ["sync"] else 1), said
        assert "answers 404 to /health: is it a Prefect API" in said and "Traceback" not in said, said
    assert stub.count("/not-prefect/health") == 2
