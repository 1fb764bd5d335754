"""The temporary Prefect server of a command run without PREFECT_API_URL, tied to the command's life.

Left to itself Prefect starts that server as a plain child process and stops it from an atexit hook, which never
runs when the command is SIGKILLed (a scheduler's timeout, the OOM killer): the server then lives on, orphaned.
On Linux we start the same server ourselves with PR_SET_PDEATHSIG, so the kernel kills it when we die however we
die, and stop it ourselves on every other way out. Elsewhere Prefect keeps doing it its own way.

Usage, around the first Prefect import so the server boots while Prefect imports here:

    with temporary_server(settings.prefect_api_url) as server:
        from flows import orders        # imports Prefect
        server.use()                    # waits for the server, points Prefect at it
        orders.pipeline()
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from orderly.errors import TemporaryServerFailed
from orderly.runtime import ending

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Prefect's own bound is 20 s, but a first start migrates the database: 16 s on an idle machine, 40 s on a busy
# one, where Prefect gives up. Used unless PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS is set.
DEFAULT_STARTUP_TIMEOUT = 120.0
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when we stop it, as Prefect does
ENDING_GRACE = 1.0  # the same when the command must end within seconds (orderly.runtime.ending)
PORT_ATTEMPTS = 3  # free_port() can lose its port to another process before the server binds it


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Terminated(BaseException):
    """SIGTERM arrived: unwind so the server is stopped, then die of SIGTERM as before."""


def _prctl():
    """libc's prctl, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


def _die_with(parent_pid: int, prctl):
    """preexec_fn of the server: the kernel SIGKILLs it when the thread that started it ends. Looked up and
    bound in the parent, so the child between fork and exec calls nothing that could take a lock."""

    def tie() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(70)
        if os.getppid() != parent_pid:  # the parent died before the tie was made: nobody will ever stop us
            os.kill(os.getpid(), signal.SIGKILL)

    return tie


class TemporaryServer:
    """Prefect's own ephemeral server app (the command SubprocessASGIServer runs, prefect 3.9), on a free
    loopback port, in a process group of its own, with the caller's PREFECT_HOME and so its database."""

    def __init__(self, prctl) -> None:
        self._prctl = prctl
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        import importlib.util

        self.port = free_port()
        # Where Prefect is installed, found without importing it (that costs a second we spend booting instead).
        app_dir = os.path.dirname(os.path.dirname(importlib.util.find_spec("prefect").origin))
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network beyond loopback
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                app_dir,
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # its own group: Ctrl-C reaches only us, so a flow can still report its end before we stop the server
            process_group=0,
            preexec_fn=_die_with(os.getpid(), self._prctl),
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        attempts = 1
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    if attempts >= PORT_ATTEMPTS:
                        raise TemporaryServerFailed(
                            f"the temporary Prefect server exited with {self.process.returncode} "
                            "before it answered (its messages are above)"
                        )
                    attempts += 1
                    self.start()
                    continue
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise TemporaryServerFailed(
            f"the temporary Prefect server did not answer within {timeout:g} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS raises the bound)"
        )

    def use(self) -> None:
        """Wait until the server answers, then point this process's Prefect at it (Prefect is imported by now
        and read its settings at import, hence the refresh)."""
        from prefect.context import refresh_global_settings_context
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            self.stop()  # a profile names a server, or forbids a temporary one: Prefect decides, as before
            return
        ephemeral = settings.server.ephemeral
        explicit = "startup_timeout_seconds" in ephemeral.model_fields_set
        self.wait_ready(float(ephemeral.startup_timeout_seconds) if explicit else DEFAULT_STARTUP_TIMEOUT)
        os.environ["PREFECT_API_URL"] = self.api_url
        refresh_global_settings_context()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, SIGKILL after `grace` seconds, then the same to whatever is left of its process group."""
        process, self.process = self.process, None
        if process is None:
            return
        # Until we reap it its pid, and so its group id, cannot be reused: signal both by number until then
        # (Popen.terminate() could reap it first).
        if process.returncode is None:
            if not self._exited(process.pid, 0):
                os.kill(process.pid, signal.SIGTERM)
                if not self._exited(process.pid, grace):
                    os.kill(process.pid, signal.SIGKILL)
                    self._exited(process.pid, STOP_GRACE)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    @staticmethod
    def _exited(pid: int, timeout: float) -> bool:
        """Whether `pid` has exited within `timeout`, leaving it unreaped."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:  # already reaped
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


class _NoServer:
    """PREFECT_API_URL is set, or we cannot tie a server's life to ours: Prefect does what it always did."""

    def __init__(self, api_url: str | None) -> None:
        self.api_url = api_url  # the configured server's, or None: Prefect then starts its own, unwatched

    def use(self) -> None:
        pass


def _terminate(signum, frame) -> None:
    raise _Terminated()


@contextmanager
def temporary_server(configured_api: str | None) -> Iterator[TemporaryServer | _NoServer]:
    """Start the temporary server now (see the module's doc) and stop it however the command ends: at exit after
    a return, an exception or SIGINT; at once on SIGTERM; on SIGKILL the kernel does it (PR_SET_PDEATHSIG).
    `configured_api`: the settings' PREFECT_API_URL; with one, no temporary server is started."""
    prctl = _prctl()
    if configured_api or prctl is None:
        yield _NoServer(configured_api)
        return
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    # A SIGTERM (default: die at once, skipping every `finally`) now unwinds the block instead. Prefect's flow
    # engine takes SIGTERM over while a flow runs, reports the run crashed (to our server, still up), then
    # re-sends it here. A SIGTERM that is ignored, or handled by code we cannot see, is left alone.
    takes_sigterm = previous is not None and previous is not signal.SIG_IGN
    if takes_sigterm:
        signal.signal(signal.SIGTERM, _terminate)
    server = TemporaryServer(prctl)
    # A normal or failed exit stops the server at interpreter exit, as Prefect does with its own: Prefect flushes
    # the run's queued logs and events to it from its thread-exit hooks, which run before atexit's; stopped any
    # earlier, each flush retries against a closed port for a minute.
    atexit.register(server.stop)
    # A command that ends at once (its Prefect server is gone, or SIGTERM: orderly.runtime.ending) skips atexit.
    ending.on_ending(lambda: server.stop(grace=ENDING_GRACE))
    terminated = False
    try:
        server.start()
        yield server
    except _Terminated:
        terminated = True
    finally:
        if takes_sigterm:  # a SIGTERM from now on kills us, and so the kernel kills the server
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        server.stop()
        os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM as the caller expects, or run the caller's handler
        raise SystemExit(128 + signal.SIGTERM)
