"""Two data-changing commands at once end as if run one after the other; a held DuckDB file makes a command
wait (ORDERLY_LOCK_TIMEOUT) and then fail with one clear line, never a DuckDB stack trace."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import duckdb
from conftest import ORDERLY, ROOT, run_cli

SANDBOX_ARGS = ("--orders", "600", "--seed", "11")


def remote_env(env: dict, url: str, **extra) -> dict:
    return {
        **env,
        "ORDERLY_ORDERS_URL": url,
        "ORDERLY_WAREHOUSE_URL": url,
        "ORDERLY_PAGE_SIZE": "50",
        "ORDERLY_LOCK_TIMEOUT": "60",
        **extra,
    }


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [ORDERLY, *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def assert_clean_exit(code: int, err: str) -> None:
    """Success, or a non-zero exit with one line on stderr; never a traceback or a raw DuckDB error."""
    assert "Traceback" not in err and "duckdb." not in err and "_duckdb" not in err, err
    if code != 0:
        assert len(err.strip().splitlines()) == 1, err


def statuses(env: dict) -> list[dict]:
    return json.loads(run_cli(["status", "--json"], env).stdout)


def history_counts(env: dict) -> dict[int, int]:
    con = duckdb.connect(env["ORDERLY_DB"], read_only=True)
    try:
        return dict(con.execute("SELECT order_id, count(*) FROM status_changes GROUP BY 1").fetchall())
    finally:
        con.close()


def table_doubles(env: dict) -> list:
    con = duckdb.connect(env["ORDERLY_DB"], read_only=True)
    try:
        return (
            con.execute("SELECT order_id FROM orders GROUP BY 1 HAVING count(*) > 1").fetchall()
            + con.execute("SELECT order_id, line_no FROM order_lines GROUP BY ALL HAVING count(*) > 1").fetchall()
        )
    finally:
        con.close()


def test_two_runs_at_once_equal_one_after_the_other(cli_env, sandbox_server, tmp_path):
    """Command-line runs take no Prefect write slot: they interleave task by task and take turns on
    DuckDB's file lock."""
    url = sandbox_server(*SANDBOX_ARGS)
    env = remote_env(cli_env, url)
    reference = {**env, "ORDERLY_DB": str(tmp_path / "reference.duckdb")}
    first, second, before = start(["run"], env), start(["run"], env), start(["run"], reference)
    results = [finish(first), finish(second)]
    for code, _out, err in results:
        assert_clean_exit(code, err)
    assert any(code == 0 for code, _, _ in results)
    assert finish(before)[0] == 0
    run_cli(["run"], reference)  # the reference: one run after the other
    assert statuses(env) == statuses(reference)
    assert table_doubles(env) == []
    counts = history_counts(env)
    assert len(counts) == 600 and set(counts.values()) == {1}  # each order decided once, by one of the two


def test_run_and_reset_at_once_end_as_one_of_the_two_orders(cli_env, sandbox_server):
    """Each transaction is whole, so the end state is that of one order or the other."""
    url = sandbox_server(*SANDBOX_ARGS)
    env = remote_env(cli_env, url)
    run_cli(["run"], env)
    decided = statuses(env)
    run, reset = start(["run"], env), start(["reset"], env)
    for code, _out, err in (finish(run), finish(reset)):
        assert_clean_exit(code, err)
        assert code == 0, err
    after = statuses(env)
    all_new = [{**row, "status": "NEW", "reason": None} for row in decided]
    assert after in (decided, all_new)  # reset then run, or run then reset
    counts = history_counts(env)
    assert set(counts.values()) == ({3} if after == decided else {2})
    assert table_doubles(env) == []


def test_a_held_store_makes_commands_wait_then_fail_in_one_line(cli_env):
    from pathlib import Path

    from orderly.store import connect

    env = {**cli_env, "ORDERLY_LOCK_TIMEOUT": "1"}
    connect(Path(env["ORDERLY_DB"])).close()  # an initialised store
    holder = duckdb.connect(env["ORDERLY_DB"])  # another process holds the file for writing
    try:
        for args in (["process"], ["status"]):
            started = time.monotonic()
            result = run_cli(args, env, check=False)
            assert result.returncode != 0, args
            assert_clean_exit(result.returncode, result.stderr)
            assert "ORDERLY_LOCK_TIMEOUT" in result.stderr and "in use" in result.stderr, result.stderr
            assert time.monotonic() - started >= 1.0  # it waited the timeout before giving up
    finally:
        holder.close()

    # Held for a moment only: the command waits for it and succeeds.
    holder = duckdb.connect(env["ORDERLY_DB"])
    threading.Timer(1.5, holder.close).start()
    started = time.monotonic()
    result = run_cli(["status", "--json"], {**env, "ORDERLY_LOCK_TIMEOUT": "30"})
    assert time.monotonic() - started >= 1.5 and json.loads(result.stdout) == []
