"""Progress of a long command, on the operator's terminal: the tasks report, the command line shows.

The tasks call `advance(stage, records=..., pages=...)` once per page or chunk, never per record. It does
nothing unless `orderly` installed a display (`shown_on`), which it does only when stderr is a terminal; the
display itself appears only once the work has gone on for DELAY seconds, so quick commands print nothing.
Deployment runs (`orderly serve`, workers) never install one: there `advance` is a no-op.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

DELAY = 2.0  # seconds of work before the display appears
MIN_RATED_S = 0.05  # a stage shorter than this shows no rate: records over almost no time means nothing


class _Sink(Protocol):
    def __call__(self, stage: str, records: int, pages: int) -> None: ...


_sink: _Sink | None = None


def advance(stage: str, *, records: int = 0, pages: int = 0) -> None:
    """Report work done in a stage ("fetch orders", "validate", "load", "process"...). Cheap when nobody shows it."""
    sink = _sink
    if sink is not None:
        sink(stage, records, pages)


@contextmanager
def shown_on(console: Any, delay: float = DELAY) -> Iterator[None]:
    """Show the stages' progress on `console` (rich, stderr) while the block runs, if it is a terminal."""
    global _sink
    if not console.is_terminal or console.is_dumb_terminal or _sink is not None:
        yield
        return
    display = _Display(console, delay)
    _sink = display.advance
    try:
        yield
    finally:
        _sink = None
        display.close()


class _Display:
    """A rich Progress with one row per stage: records, pages, the stage's own time and its rate. Started lazily,
    by a timer.

    A stage's time runs from its start to its latest report, not to now: a stage that ended stops counting. It
    starts when it says so (a report of no work), else when the report before its first one was made (the work it
    reports began when the previous step ended; the first stage: when the display was made). Its rate is its
    records over its own time: a stage that reports once, when done, is not rated over a millisecond."""

    def __init__(self, console: Any, delay: float, clock=time.monotonic) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<14}"),
            TextColumn("{task.completed:>12,.0f} records"),
            TextColumn("{task.fields[pages]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[took]}"),
            console=console,
            transient=False,
            refresh_per_second=5,
        )
        self._clock = clock
        self._last_report = clock()
        self._lock = threading.Lock()
        self._stages: dict[str, Any] = {}
        self._pages: dict[str, int] = {}
        self._records: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._timer: threading.Timer | None = None
        self._delay = delay
        self._live = self._closed = False

    def advance(self, stage: str, records: int, pages: int) -> None:
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            if stage not in self._stages:
                self._stages[stage] = self._progress.add_task(stage, total=None, pages="", rate="", took="")
                self._pages[stage] = self._records[stage] = 0
                self._started_at[stage] = now if not (records or pages) else self._last_report
                if self._timer is None:  # the clock starts with the first piece of work, not with Prefect's imports
                    self._timer = threading.Timer(self._delay, self._start)
                    self._timer.daemon = True
                    self._timer.start()
            self._last_report = now
            self._pages[stage] += pages
            self._records[stage] += records
            done, took = self._records[stage], now - self._started_at[stage]
            self._progress.update(
                self._stages[stage],
                completed=done,
                pages=f"{self._pages[stage]:>6,} pages" if self._pages[stage] else "",
                rate=f"{done / took:>10,.0f}/s" if done and took >= MIN_RATED_S else "",
                took=f"{took:6.1f} s",
            )

    def _start(self) -> None:
        with self._lock:
            if not self._closed:
                self._progress.start()
                self._live = True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._live:
                for stage, task in self._stages.items():  # the spinners stop: every stage is over
                    self._progress.update(task, total=self._records[stage], completed=self._records[stage])
                self._progress.stop()
