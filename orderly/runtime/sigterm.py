"""SIGTERM ends a data-changing command within seconds, through orderly.runtime.ending, with one line.

While a flow runs, Prefect's engine puts a handler of its own in place: it raises in the flow, reports the crash to
the server and re-sends the signal (with a dead server, minutes of retries). We point that handler at ours
instead, so SIGTERM means the same thing before, during and after the flow: the transaction in progress finishes,
the run's row is finished, the temporary server is stopped, and the command exits with 143 (128 + SIGTERM).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orderly.runtime import ending

_PREFECT_HANDLER = "_prefect_sigterm_handler"  # prefect.utilities.engine: what capture_sigterm() installs


def _on_sigterm(signum, frame) -> None:
    # A handler runs on the main thread between two bytecodes: it must neither raise (that would unwind the
    # flow through Prefect's crash path) nor block (the transaction in progress could never finish). The
    # ending runs on a thread of its own; the main thread carries on until that thread exits the process.
    threading.Thread(
        target=ending.end_now, args=("terminated (SIGTERM)", ending.SIGTERM_STATUS), name="orderly-sigterm", daemon=True
    ).start()


@contextmanager
def ends_the_command() -> Iterator[None]:
    """SIGTERM ends the command (see the module) while the block runs; `also_during_flows()` once Prefect is
    imported. A SIGTERM that is ignored, or handled by code we cannot see, is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None or previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine = sys.modules.get("prefect.utilities.engine")
        if _prefects is not None and getattr(engine, _PREFECT_HANDLER, None) is _on_sigterm:
            setattr(engine, _PREFECT_HANDLER, _prefects)


_prefects = None  # Prefect's own handler, while ours stands in for it


def also_during_flows() -> None:
    """Make Prefect's flow engine install our handler where it would install its own (Prefect is imported).
    Prefect looks the handler up by this module-level name each time a flow starts (prefect 3.9)."""
    global _prefects
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return
    engine = sys.modules.get("prefect.utilities.engine")
    current = getattr(engine, _PREFECT_HANDLER, None)
    if current is None or current is _on_sigterm:
        return
    _prefects = current
    setattr(engine, _PREFECT_HANDLER, _on_sigterm)
