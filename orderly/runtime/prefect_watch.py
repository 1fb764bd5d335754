"""A watch on the Prefect server while a data-changing command runs: when it goes away, the command ends.

Prefect's client retries a server that stopped answering for minutes, call after call, and its log and event
workers retry again at exit (measured: 147 to 228 s, then `Connection refused` and 14 error blocks). The work a
command does is committed to our own store, not to Prefect, so once the server is gone there is nothing left
worth waiting for: orderly.runtime.ending ends the command, keeping what was committed.

"Gone" is decided on evidence, not on one slow answer: nothing listening (connection refused) for REFUSED_FOR
seconds, or no answer at all for SILENT_FOR seconds (a server that hangs; a busy one answers /health in well
under a second, and its slow answers do not count).
"""

from __future__ import annotations

import threading
import time

from orderly.errors import PrefectGone

EVERY = 0.5  # seconds between probes
PROBE_TIMEOUT = 2.0
REFUSED_FOR = 2.0  # nothing listens on the port: the server is gone (a restart takes longer than this anyway)
SILENT_FOR = 30.0  # it accepts connections but answers nothing: hung, not merely busy


def gone_line(api: str) -> str:
    from orderly.cli.doctor import masked_url

    return f"error: the Prefect server at {masked_url(api)} went away during the run"


def end_as_gone(api: str, line: str | None = None) -> None:
    from orderly.runtime import ending

    ending.end_now(line or gone_line(api), PrefectGone.exit_code)


class _Watch:
    def __init__(self, api: str, refused_for: float = REFUSED_FOR, line: str | None = None) -> None:
        self.api = api.strip().rstrip("/")
        self.refused_for, self.line = refused_for, line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orderly-prefect-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import httpx

        refused_since = silent_since = None
        with httpx.Client(timeout=PROBE_TIMEOUT, verify=self.api.lower().startswith("https:")) as client:
            while not self._stop.wait(EVERY):
                now = time.monotonic()
                try:
                    client.get(f"{self.api}/health")
                    refused_since = silent_since = None  # any answer: something is there
                    continue
                except httpx.ConnectError:
                    refused_since = refused_since or now
                    silent_since = silent_since or now
                except httpx.HTTPError:
                    refused_since = None
                    silent_since = silent_since or now
                if self._stop.is_set():
                    return
                if (refused_since and now - refused_since >= self.refused_for) or (
                    silent_since and now - silent_since >= SILENT_FOR
                ):
                    end_as_gone(self.api, self.line)


def watch(api: str, refused_for: float = REFUSED_FOR, line: str | None = None) -> None:
    """Watch `api` from now until the process exits: Prefect's exit hooks still talk to it after the flow.
    Stopped first at exit (atexit runs hooks last-registered first), before the temporary server stops.
    `refused_for` and `line`: how long a refusing server is given, and what the ending says (`orderly serve`
    gives a restarting server longer than a command does)."""
    import atexit

    watcher = _Watch(api, refused_for, line)
    watcher.start()
    atexit.register(watcher.stop)


def gone_now(api: str) -> bool:
    """Whether the server does not answer /health right now (asked once, when the flow failed)."""
    from orderly.runtime.prefect_health import why_not_answering

    return why_not_answering(api, timeout=PROBE_TIMEOUT) is not None
