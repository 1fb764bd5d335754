"""Issue 17, class 11: the Prefect server dies mid-run, or the command is sent SIGTERM.

The command ends within seconds (10 s after the server went away, 5 s after SIGTERM), with one line on stderr
saying what was committed, the run's row finished in the store, and no process of ours left behind. Real parts:
a real `prefect server` (a dedicated one, since it is killed), the real `orderly` command, a slow hostile remote
over loopback, the real DuckDB file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import psutil
import pytest
from conftest import ORDERLY, ROOT, run_cli
from hostile import HostileRemote, item, order
from localproc import start_prefect_server, stop

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX process semantics")

ORDERS = 30
PAGE_DELAY = 0.6  # seconds before each orders page: 10 pages of 3, several seconds of ingest


def _orders() -> list[dict]:
    return [order(i, (101 + i % 3, 1), customer=f"C-{i}") for i in range(1, ORDERS + 1)]


@pytest.fixture
def remote():
    with HostileRemote() as hostile:
        hostile.script(
            orders=_orders(),
            stock=[item(101, 5), item(102, 50), item(103, 50)],
            fault=lambda request: replace(request.normal(), delay=PAGE_DELAY) if request.path == "/orders" else None,
        )
        yield hostile


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory):
    """One PREFECT_HOME for this module's servers: the first start migrates its database, the next start warm."""
    return tmp_path_factory.mktemp("prefect-home-gone")


def _env(tmp_path: Path, remote: HostileRemote, home: Path, api: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_"))}
    env.update(
        ORDERLY_DB=str(tmp_path / "orderly.duckdb"),
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        ORDERLY_ORDERS_URL=remote.url,
        ORDERLY_WAREHOUSE_URL=remote.url,
        ORDERLY_PAGE_SIZE="3",
        ORDERLY_HTTP_TIMEOUT="10",
    )
    if api:
        env["PREFECT_API_URL"] = api
    return env


def _start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [ORDERLY, "run"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_orders_page(remote: HostileRemote, process: subprocess.Popen, pages: int, timeout: float) -> None:
    """Until the run has asked for `pages` orders pages: the flow is under way, some pages committed."""
    deadline = time.monotonic() + timeout
    while remote.count("/orders") < pages:
        assert process.poll() is None, f"orderly ended ({process.returncode}) first:\n{process.communicate()}"
        assert time.monotonic() < deadline, f"the run asked for no orders page within {timeout} s"
        time.sleep(0.05)


def _ended_within(process: subprocess.Popen, seconds: float) -> tuple[float, str, str]:
    started = time.monotonic()
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"orderly still running {seconds} s later; stderr so far:\n{err[-3000:]}") from None
    return time.monotonic() - started, out, err


def _one_clean_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err and "ERROR" not in err, err[-3000:]
    return lines[0]


def _runs(db: str) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute("SELECT run_id, state, message, orders_loaded FROM runs ORDER BY started_at").fetchall()


def _committed(db: str) -> str:
    """The run's counters, committed with its data, in the words the command uses."""
    from orderly.cli.output import counts_in_words
    from orderly.store.schema import RUN_COUNTERS

    with duckdb.connect(db, read_only=True) as con:
        row = con.execute(f"SELECT {', '.join(RUN_COUNTERS)} FROM runs").fetchall()[0]
    return counts_in_words(dict(zip(RUN_COUNTERS, row, strict=True)))


def test_the_server_going_away_ends_the_run_in_seconds_keeping_what_was_committed(tmp_path, remote, prefect_home):
    server, api = start_prefect_server(prefect_home, timeout=180)
    env = _env(tmp_path, remote, prefect_home, api)
    process = _start(env)
    try:
        _wait_for_orders_page(remote, process, pages=4, timeout=120)
        os.killpg(server.pid, signal.SIGKILL)  # the server and its children, at once
        server.wait()
        _took, _out, err = _ended_within(process, 10)
    finally:
        stop(server)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 6, (process.returncode, err[-3000:])
    line = _one_clean_line(err)
    assert line.startswith("error: the Prefect server at ") and "went away during the run" in line, line
    [(_, state, message, _)] = _runs(env["ORDERLY_DB"])
    assert state == "FAILED" and "went away" in message, (state, message)
    committed = _committed(env["ORDERLY_DB"])
    assert "stock 3 fetched, 3 loaded" in committed  # the stock step was done before the orders pages
    assert f"what was committed stays: {committed} (" in line, (committed, line)

    # A fresh server, a clean run: the rest of the orders, and every one stored exactly once.
    server, api = start_prefect_server(prefect_home, timeout=180)
    try:
        remote.script(orders=_orders(), stock=[item(101, 5), item(102, 50), item(103, 50)])
        run_cli(["run"], {**env, "PREFECT_API_URL": api}, timeout=180)
    finally:
        stop(server)
    with duckdb.connect(env["ORDERLY_DB"], read_only=True) as con:
        ids = [row[0] for row in con.execute("SELECT order_id FROM orders ORDER BY order_id").fetchall()]
    assert ids == list(range(1, ORDERS + 1))
    assert [state for _, state, _, _ in _runs(env["ORDERLY_DB"])] == ["FAILED", "COMPLETED"]


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_sigterm_ends_a_run_on_its_temporary_server_within_5_s(tmp_path, remote, prefect_home):
    env = _env(tmp_path, remote, prefect_home, api=None)
    process = _start(env)
    seen: list[psutil.Process] = []
    try:
        _wait_for_orders_page(remote, process, pages=2, timeout=180)  # the temporary server answered, the flow runs
        seen = _children(process.pid)
        assert seen, "no temporary server under orderly"
        process.send_signal(signal.SIGTERM)
        _took, _out, err = _ended_within(process, 5)
    finally:
        for child in seen:
            with contextlib.suppress(psutil.Error):
                child.kill()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, err[-3000:])
    line = _one_clean_line(err.replace(_TEMP_NOTE, ""))
    assert line.startswith("terminated (SIGTERM); what was committed stays: "), line
    _, alive = psutil.wait_procs(seen, timeout=0.5)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"still running after orderly ended on SIGTERM: {[p.cmdline()[:4] for p in alive]}"
    [(_, state, message, _)] = _runs(env["ORDERLY_DB"])
    assert state == "FAILED" and message == "terminated (SIGTERM)", (state, message)


_TEMP_NOTE = (
    "note: PREFECT_API_URL is not set, so Prefect starts a temporary server for this command (about 7 s). "
    "For speed and the UI: `make server`, then export PREFECT_API_URL=http://127.0.0.1:4200/api"
)


def test_sigterm_ends_a_run_on_a_real_server_within_5_s(tmp_path, remote, prefect_server):
    env = _env(tmp_path, remote, Path(prefect_server["home"]), prefect_server["api_url"])
    process = _start(env)
    try:
        _wait_for_orders_page(remote, process, pages=2, timeout=120)
        process.send_signal(signal.SIGTERM)
        _took, _out, err = _ended_within(process, 5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, err[-3000:])
    line = _one_clean_line(err)
    assert line.startswith("terminated (SIGTERM); what was committed stays: "), line
    [(_, state, message, _)] = _runs(env["ORDERLY_DB"])
    assert state == "FAILED" and message == "terminated (SIGTERM)", (state, message)
