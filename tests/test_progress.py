"""runtime/progress.py: what the tasks report is shown on a terminal once work lasts, and costs nothing elsewhere."""

from __future__ import annotations

import io
import time

from rich.console import Console

from orderly.runtime import progress


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=100, color_system=None), screen


def test_long_work_shows_each_stage_with_records_pages_and_a_rate():
    console, screen = terminal()
    with progress.shown_on(console, delay=0.1):
        for _ in range(6):
            progress.advance("fetch orders", records=1000, pages=1)
            time.sleep(0.05)
        progress.advance("validate orders", records=6000)
        time.sleep(0.3)  # the display refreshes a few times a second
    shown = screen.getvalue()
    assert "fetch orders" in shown and "6,000 records" in shown and "6 pages" in shown
    assert "validate orders" in shown and "/s" in shown


def test_quick_work_shows_nothing():
    console, screen = terminal()
    with progress.shown_on(console, delay=2.0):
        progress.advance("fetch orders", records=15, pages=1)
    assert screen.getvalue() == ""


def test_not_a_terminal_shows_nothing_and_reporting_is_a_no_op():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=False)
    with progress.shown_on(console, delay=0.0):
        assert progress._sink is None
        progress.advance("fetch orders", records=1000, pages=1)
        time.sleep(0.1)
    assert screen.getvalue() == ""
    progress.advance("outside any command", records=1)  # no display installed: nothing happens, nothing fails


def test_each_stage_shows_its_own_time_and_a_rate_over_it():
    now = [100.0]
    console, _ = terminal()
    display = progress._Display(console, delay=60, clock=lambda: now[0])
    display.advance("fetch orders", records=0, pages=0)  # the stage says it starts
    for _ in range(4):
        now[0] += 0.5
        display.advance("fetch orders", records=1000, pages=1)
    now[0] += 3.0  # validation reports once, when done: its time is since the fetch's last page
    display.advance("validate orders", records=4000, pages=0)
    now[0] += 0.001  # loading took a millisecond: too short to rate
    display.advance("load orders", records=4000, pages=0)
    now[0] += 60  # time passes: a stage that ended does not count it
    fields = {task.description: task.fields for task in display._progress.tasks}
    assert fields["fetch orders"]["took"].strip() == "2.0 s" and fields["fetch orders"]["rate"].strip() == "2,000/s"
    assert fields["validate orders"]["took"].strip() == "3.0 s"
    assert fields["validate orders"]["rate"].strip() == "1,333/s"
    assert fields["load orders"]["rate"] == ""
    display.close()
