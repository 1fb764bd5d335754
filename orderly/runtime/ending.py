"""Ending a data-changing command at once, from any thread, keeping what was committed.

Two things end a command before its flow does: its Prefect server going away (prefect_watch.py) and SIGTERM.
Left to Prefect, the first hung for minutes (its client retries every call; its log and event workers retry
their queues at exit) and then printed a page of errors; the second waited on Prefect reporting the crash.
Both end here instead, within a few seconds:

- the store transaction in progress finishes and no new one starts (store.connection.WRITE_GATE): a transaction
  is all or nothing anyway, so nothing committed is lost, nothing half-written stays;
- the run's row, if it is still RUNNING, is finished as FAILED with the reason, in our own store;
- the temporary Prefect server, if the command started one, is stopped;
- one line on stderr says why and what was committed (the run's counters, committed with the data);
- the process exits at once (os._exit): Prefect's exit hooks, which would retry a dead server, never run.

Nothing else reaches stderr from the moment the ending starts: Prefect's threads would print their retries' errors.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

GATE_WAIT = 3.0  # seconds the transaction in progress may take to finish before we exit without it
SIGTERM_STATUS = 128 + 15  # the shell's status of a process ended by SIGTERM

_lock = threading.Lock()
_started = threading.Event()
_run: dict | None = None  # the recorded run going on in this process: id, store path
_stoppers: list[Callable[[], None]] = []  # what must not outlive the command (the temporary server)


def run_started(run_id: str, db_path: Path) -> None:
    """flows.run_record: the run's row is RUNNING in this store from now on. Kept after the run ends: an ending
    during Prefect's exit hooks still says what the run committed (its row, already finished, is left as it is)."""
    global _run
    with _lock:
        _run = {"id": run_id, "db_path": Path(db_path)}


def run_over() -> None:
    """The long-lived worker (flows.worker): its run is over, so an ending from now on has no run to speak of."""
    global _run
    with _lock:
        _run = None


def on_ending(stop: Callable[[], None]) -> Callable[[], None]:
    """Call `stop` when the command ends here; returns a function that forgets it again."""
    with _lock:
        _stoppers.append(stop)

    def forget() -> None:
        with _lock:
            if stop in _stoppers:
                _stoppers.remove(stop)

    return forget


def is_ending() -> bool:
    return _started.is_set()


def wait_if_ending() -> None:
    """Called by the main thread when its flow returns or fails: if an ending is under way it says the last
    word, so this thread waits for it (it exits the process) instead of printing its own outcome."""
    if _started.is_set():
        _park()


def end_now(reason: str, status: int) -> NoReturn:
    """End the command as the module says: `reason` starts the one line (e.g. "error: the Prefect server at ...
    went away during the run"), `status` is the exit status. Only the first caller ends it; later ones wait."""
    with _lock:
        first = not _started.is_set()
        _started.set()
    if not first:
        _park()
    stderr = _silence_stderr()
    try:
        committed = _finish_run(reason)
    except BaseException as error:  # noqa: BLE001 - the line and the exit must happen whatever the store says
        committed = (
            f"the run's end could not be recorded ({_first_line(error)}); `orderly runs` shows it CRASHED "
            "after the next command"
        )
    for stop in _stoppers:
        with contextlib.suppress(BaseException):  # PR_SET_PDEATHSIG still kills the server when we exit
            stop()
    with contextlib.suppress(BaseException):  # the line below must go out whatever stdout does
        sys.stdout.flush()
    os.write(stderr, f"{reason}; {committed}\n".encode("utf-8", "replace"))
    os._exit(status)


def _park() -> NoReturn:
    while True:  # the ending thread exits the process; a thread parked here never resumes
        time.sleep(60)


def _silence_stderr() -> int:
    """Point fd 2 at /dev/null for every other thread; return a descriptor of the real stderr for our line."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return saved


def _finish_run(reason: str) -> str:
    """Wait (bounded) for the transaction in progress, finish the run's row if it is still RUNNING, and say what
    the run committed. The gate stays held: no write starts after this, the process is about to exit."""
    from orderly.store.connection import WRITE_GATE

    WRITE_GATE.acquire(timeout=GATE_WAIT)
    with _lock:
        run = dict(_run) if _run is not None else None
    if run is None:
        return "no run was going on, nothing was lost"
    from orderly.store import open_store
    from orderly.store.connection import first_row, transaction
    from orderly.store.schema import RUN_COUNTERS

    message = reason.removeprefix("error: ")
    with open_store(run["db_path"], lock_timeout=1.0) as con:
        with transaction(con):
            con.execute(
                "UPDATE runs SET state = 'FAILED', ended_at = now(), message = ? "
                "WHERE run_id = ? AND state = 'RUNNING'",
                [message, run["id"]],
            )
        row = first_row(con, f"SELECT {', '.join(RUN_COUNTERS)} FROM runs WHERE run_id = ?", [run["id"]])
    counts = dict(zip(RUN_COUNTERS, row, strict=True)) if row else {}
    return f"what was committed stays: {_in_words(counts)} (`orderly runs` shows the run)"


def _in_words(counts: dict[str, int]) -> str:
    from orderly.cli.output import counts_in_words

    return counts_in_words({name: int(value or 0) for name, value in counts.items()}) or "nothing yet"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or ["no message"])[0]
