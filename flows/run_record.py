"""Every flow run leaves a row in the store's runs table and a report in the Prefect UI, whatever happens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger, runtime

from flows.write_slot import write_slot
from orderly.errors import RunIncomplete
from orderly.runtime import ending
from orderly.settings import Settings
from orderly.settings import current as current_settings
from orderly.store import open_store, writes
from orderly.store.connection import held_open
from tasks.report import publish_report


@dataclass
class Run:
    id: str
    flow: str
    settings: Settings
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the operator should know of a run that completed

    def add(self, counts: dict[str, Any]) -> None:
        for name, value in counts.items():
            if isinstance(value, int):
                self.counts[name] = self.counts.get(name, 0) + value
        if counts.get("note"):  # e.g. the orders that wait for stale stock: said, but not a failure of the run
            self.notes.append(counts["note"])

    def outcome(self) -> dict[str, Any]:
        """What the flow returns: its counts, and its notes when there are any."""
        return {**self.counts, "notes": list(self.notes)} if self.notes else dict(self.counts)


@contextmanager
def recorded_run(
    flow: str, hold_store: bool = False, settings: Settings | None = None, shares_write_slot: bool = True
) -> Iterator[Run]:
    """The run's row and report, inside the one write slot shared by every data-changing run (flows.write_slot).
    `hold_store`: a short run (a press) keeps the store open from its first transaction to its last
    (store.connection.held_open) instead of opening it for each; an ingest lets go between its chunks.
    `settings`: the ones the flow read already (orderly.settings.current otherwise). `shares_write_slot=False`:
    a run that changes nothing processing reads (the feed's delivery) and must never wait for it."""
    with (
        write_slot() if shares_write_slot else nullcontext(),
        _recorded_run(flow, hold_store, settings or current_settings()) as run,
    ):
        yield run


@contextmanager
def _recorded_run(flow: str, hold_store: bool, settings: Settings) -> Iterator[Run]:
    started = time.monotonic()
    run = Run(str(runtime.flow_run.id or uuid.uuid4()), flow, settings)
    held = held_open(settings.db_path, lock_timeout=settings.lock_timeout) if hold_store else nullcontext()
    with held, _recorded(run, flow, settings, started):
        yield run


@contextmanager
def _recorded(run: Run, flow: str, settings: Settings, started: float) -> Iterator[None]:
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        crashed = writes.start_run(con, run.id, flow)
    crashed_in_prefect(crashed)
    ending.run_started(run.id, settings.db_path)  # a command that must end at once finishes the row itself
    state, message = "COMPLETED", None
    try:
        yield
        if run.problems:
            raise RunIncomplete("; ".join(run.problems))
        message = "; ".join(run.notes) or None
    except BaseException as error:
        state, message = "FAILED", str(error).splitlines()[0] if str(error) else type(error).__name__
        raise
    finally:
        try:
            publish_report(
                settings,
                run.id,
                flow,
                run.counts,
                run.problems if state == "COMPLETED" else [message],
                state=state,
                duration_s=time.monotonic() - started,
                notes=run.notes,
            )
        except Exception as error:  # noqa: BLE001 - a report that cannot be published must not hide the run's own outcome
            get_run_logger().warning("could not publish the report: %s", error)
        with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
            writes.finish_run(con, run.id, state, message)
        announce(run, state, message, time.monotonic() - started)


def crashed_in_prefect(run_ids: list[str]) -> None:
    """Runs the store found left RUNNING by a process that is gone: CRASHED in Prefect too, if still running there
    (a killed worker cannot say so itself; a run of a temporary server is not on this one, and is skipped)."""
    if not run_ids:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            try:
                state = client.read_flow_run(run_id).state
                if state is not None and not state.is_final():
                    client.set_flow_run_state(run_id, Crashed(message="the process running it ended"), force=True)
            except Exception:  # noqa: BLE001 - not on this server, or it does not answer: the store says CRASHED
                continue


def announce(run: Run, state: str, message: str | None, duration_s: float) -> None:
    """One Prefect event per run, `orderly.run.completed` or `orderly.run.failed`, with its counts: what operators
    build their own automations on (flows.alerts). Prefect relates it to the flow run, flow and deployment."""
    from prefect.events import emit_event

    try:
        emit_event(
            event=f"orderly.run.{state.lower()}",
            resource={"prefect.resource.id": f"orderly.run.{run.id}", "prefect.resource.name": run.flow},
            payload={
                "flow": run.flow,
                "state": state,
                "counts": dict(run.counts),
                "message": message,
                "duration_s": round(duration_s, 3),
            },
        )
    except Exception as error:  # noqa: BLE001 - an event that cannot be sent must not change the run's outcome
        get_run_logger().warning("could not emit the run's event: %s", error)
