"""Shared fixtures: a real `prefect server` for the session, a loopback sandbox, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spread
import tiers
from localproc import free_port, pause_schedule, start_prefect_server, stop, wait_for  # noqa: F401 - re-exported

ROOT = Path(__file__).resolve().parent.parent

# The `orderly` subprocesses print for a pipe (200 columns) unless a test sets COLUMNS itself: a COLUMNS exported
# by the developer's shell (or a test runner) would wrap their lines and break what the tests read.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)
ORDERLY = str(Path(sys.executable).parent / "orderly")

tiers.load_profile()  # before the test modules are imported: their settings read it


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers.classify(items)
    spread.arrange(config, items)


# The seed table: order -> (items, total_qty, status)
SEED_TABLE = {
    2: (2, 2, "FAILED"),
    3: (1, 1, "FAILED"),
    4: (1, 4, "FAILED"),
    5: (1, 2, "FAILED"),
    6: (1, 2, "PROCESSED"),
    7: (1, 1, "FAILED"),
    8: (1, 2, "PROCESSED"),
    9: (1, 1, "PROCESSED"),
    10: (1, 1, "PROCESSED"),
    11: (1, 1, "FAILED"),
    12: (1, 1, "PROCESSED"),
    13: (1, 1, "FAILED"),
    14: (1, 1, "FAILED"),
    15: (2, 4, "FAILED"),
    16: (1, 1, "PROCESSED"),
}
UNKNOWN = {3, 7, 13}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on a free loopback port, with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    process, api = start_prefect_server(home, timeout=120)
    try:
        yield {"api_url": api, "home": str(home), "port": int(api.rsplit(":", 1)[1].split("/")[0])}
    finally:
        stop(process)


@pytest.fixture
def cli_env(tmp_path, prefect_server):
    """Environment for `orderly` subprocesses: a fresh DuckDB file, the session's Prefect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_DB=str(tmp_path / "orderly.duckdb"),
        PREFECT_API_URL=prefect_server["api_url"],
        PREFECT_HOME=prefect_server["home"],
    )
    return env


def run_cli(args: list[str], env: dict, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    # stdin is not a terminal, as in a script: `orderly reset` asks first only on a terminal
    result = subprocess.run(
        [ORDERLY, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(f"orderly {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def sandbox_server():
    """Start `orderly sandbox ARGS...` on a free loopback port; returns its base URL. Stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [ORDERLY, "sandbox", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", process, timeout=60)
        return url

    yield start
    for process in started:
        stop(process)


class StubServer:
    """A tiny real HTTP server on loopback whose answers a test scripts: `handler(path, params, headers)` returns
    (status, headers, body bytes) or (status, headers, body, delay_s). Every request is kept in `requests`."""

    def __init__(self, handler) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qsl, urlsplit

        stub = self
        self.handler = handler
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                with stub._lock:
                    stub.requests.append(
                        {"path": parts.path, "params": params, "headers": dict(self.headers), "at": time.monotonic()}
                    )
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    answer = stub.handler(parts.path, params, self.headers)
                    status, headers, body = answer[:3]
                    if len(answer) > 3 and answer[3]:
                        time.sleep(answer[3])
                    try:
                        self.send_response(status)
                        for name, value in (headers or {}).items():
                            self.send_header(name, value)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def count(self, path: str, **params) -> int:
        return sum(
            1
            for r in self.requests
            if r["path"] == path and all(r["params"].get(k) == str(v) for k, v in params.items())
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_server():
    """Start a scripted loopback HTTP server: `stub = stub_server(handler)`; `stub.url`, `stub.requests`."""
    started: list[StubServer] = []

    def start(handler) -> StubServer:
        stub = StubServer(handler)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.close()


# ---- the hostile remote's tests (tests/hostile.py) ---------------------------------------------------------


@pytest.fixture(scope="session")  # one file serves every module: their tests can go to any worker
def ca_file(tmp_path_factory):
    from hostile import one_ca_bundle

    return one_ca_bundle(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def small_ca_bundle(monkeypatch, ca_file):
    """SSL_CERT_FILE holding one certificate: see hostile.one_ca_bundle (loopback http never uses the bundle)."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)


@pytest.fixture
def warm(tmp_path):
    """A fresh DuckDB file held open by the test (hostile.WarmStore)."""
    from hostile import WarmStore

    with WarmStore(tmp_path / "orderly.duckdb") as store:
        yield store
