"""Nothing an `orderly` command starts may outlive it: without PREFECT_API_URL a data-changing command runs a
temporary Prefect server as a child process, and that server must go with the command, even a SIGKILLed one.
Real processes throughout: the CLI, its server, psutil to watch them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import httpx
import psutil
import pytest
from conftest import ORDERLY, ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX process semantics")


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory):
    """One PREFECT_HOME for this module: the first temporary server migrates its database, the next starts warm."""
    return tmp_path_factory.mktemp("prefect-home-orphans")


@pytest.fixture
def env(tmp_path, prefect_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_"))}
    env.update(
        ORDERLY_DB=str(tmp_path / "orderly.duckdb"),
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # a cold first start (database migrations) on a busy machine can take longer than Prefect's 20 s
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
    )
    return env


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _answers_health(process: psutil.Process) -> bool:
    """Whether this process listens on a loopback port where a Prefect API answers /api/health."""
    try:
        ports = {c.laddr.port for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        return False
    for port in ports:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
    return False


class Watched:
    """`orderly ARGS` started in its own session, with every descendant seen while it ran."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.process = subprocess.Popen(
            [ORDERLY, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.seen: dict[tuple[int, float], psutil.Process] = {}

    def look(self) -> list[psutil.Process]:
        found = _descendants(self.process.pid)
        for child in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen.setdefault((child.pid, child.create_time()), child)
        return found

    def wait_for_server(self, timeout: float) -> psutil.Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"orderly exited with {self.process.returncode} before its server answered"
            )
            for child in self.look():
                if _answers_health(child):
                    return child
            time.sleep(0.2)
        raise AssertionError(f"no descendant of orderly answered /api/health within {timeout} s")

    def still_alive(self, within: float) -> list[str]:
        """The recorded descendants still running after `within` seconds (zombies count as gone)."""
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=within)
        described = []
        for process in alive:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    described.append(f"{process.pid} {' '.join(process.cmdline()[:6])}")
            except psutil.NoSuchProcess:
                pass
        return described

    def cleanup(self) -> None:
        """Kill whatever is left so a failing test does not itself leave servers behind."""
        for process in [*self.seen.values()]:
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def test_sigkilled_run_leaves_no_process_behind(env):
    watched = Watched(["run"], {**env, "ORDERLY_SANDBOX_ORDERS": "200000"})  # several seconds of work
    try:
        watched.wait_for_server(timeout=150)
        time.sleep(0.5)  # the flow is under way, talking to the server
        watched.look()
        assert watched.process.poll() is None, "the run ended before it could be killed: make it bigger"
        watched.process.send_signal(signal.SIGKILL)
        watched.process.wait(timeout=10)
        left = watched.still_alive(within=5)
        assert not left, f"still running 5 s after `orderly run` was SIGKILLed: {left}"
    finally:
        watched.cleanup()


def test_sigterm_stops_the_server_and_still_kills_the_run(env):
    watched = Watched(["run"], {**env, "ORDERLY_SANDBOX_ORDERS": "200000"})
    try:
        watched.wait_for_server(timeout=150)
        time.sleep(0.5)
        watched.look()
        assert watched.process.poll() is None, "the run ended before it could be stopped: make it bigger"
        watched.process.send_signal(signal.SIGTERM)
        assert watched.process.wait(timeout=5) == 128 + signal.SIGTERM  # the shell's status for SIGTERM
        left = watched.still_alive(within=1)
        assert not left, f"still running after `orderly run` ended on SIGTERM: {left}"
    finally:
        watched.cleanup()


def test_completed_sync_leaves_no_process_behind(env):
    watched = Watched(["sync"], env)
    try:
        watched.wait_for_server(timeout=150)
        deadline = time.monotonic() + 120
        while watched.process.poll() is None and time.monotonic() < deadline:
            watched.look()
            time.sleep(0.1)
        assert watched.process.returncode == 0, f"orderly sync exited with {watched.process.returncode}"
        left = watched.still_alive(within=0.5)
        assert not left, f"still running after `orderly sync` completed: {left}"
    finally:
        watched.cleanup()


def test_without_prctl_or_with_an_api_url_prefect_keeps_its_own_way(monkeypatch):
    from orderly.runtime import tempserver

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    monkeypatch.setattr(tempserver.sys, "platform", "darwin")
    assert tempserver._prctl() is None
    with tempserver.temporary_server(None) as server:
        assert isinstance(server, tempserver._NoServer)
    monkeypatch.undo()
    with tempserver.temporary_server("http://127.0.0.1:9/api") as server:
        assert isinstance(server, tempserver._NoServer) and server.api_url == "http://127.0.0.1:9/api"
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
