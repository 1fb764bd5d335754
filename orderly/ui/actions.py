"""The page's two buttons: each press is one Prefect flow run, and only one runs at a time.

With a Prefect server (PREFECT_API_URL), the press goes, in this order of preference, to:
- the Orderly worker of `orderly serve` (flows.worker), which decides it warm, in about a second;
- the button's deployment, when something serves it (a Prefect worker polls it, so Prefect marks it READY):
  run_deployment, then the flow run's state is followed. A deployment that nothing serves is not used: its run
  would wait forever.
Otherwise the page runs the same flow itself, as `orderly process` / `orderly reset` in a subprocess (a flow
run on that server, or on a temporary one without PREFECT_API_URL).

Process All from the page syncs stock first when the snapshot is missing or older than ORDERLY_MAX_STOCK_AGE:
the page offers no other way to refresh it, and an operator pressing it wants the orders decided.

Prefect is imported only here, in the press's own thread, never on the read path.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from flows import handoff
from orderly.errors import PrefectUnreachable, RunFailed, explain, one_line
from orderly.settings import Settings
from orderly.store import queries
from orderly.ui.snapshot import StoreReader

# button -> (the flow's name in the runs table and in Prefect, its deployment, the command that runs it here).
# `reset --yes`: the press is the operator's yes (the page asked first, as `orderly reset` does on a terminal).
BUTTONS: dict[str, tuple[str, str, list[str]]] = {
    "process": ("process-all", "process-all/process-all", ["process", "--sync-stale-stock"]),
    "reset": ("reset-state", "reset-state/reset-state", ["reset", "--yes"]),
}
# button -> the flow's parameters, for the worker and the deployment
PARAMETERS: dict[str, dict[str, Any]] = {"process": {"sync_stale_stock": True}, "reset": {}}
POLL_S = 0.5
FINAL = handoff.FINAL  # the states a run ends in


@dataclass
class ButtonRun:
    """What the page shows of a press: the flow run's state, its link, and how it ended."""

    button: str
    flow: str
    state: str = "STARTING"
    mode: str | None = None  # "deployment" or "local"
    run_id: str | None = None
    run_url: str | None = None
    message: str | None = None  # a failed run's one-line reason, or a note while it waits
    counts: dict[str, int] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    ended_at: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def view(self) -> dict[str, Any]:
        return {**asdict(self), "final": self.final}


class Buttons:
    """Starts button runs, one at a time: a press while a run goes returns that run instead (server-side)."""

    def __init__(self, reader: StoreReader, settings: Settings, command: list[str] | None = None) -> None:
        self.reader = reader
        self.settings = settings
        self.command = command or [sys.executable, "-c", "from orderly.cli.main import main; main()"]
        self._lock = threading.Lock()
        self._run: ButtonRun | None = None

    def current(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._run is None else self._run.view()

    def press(self, button: str) -> tuple[bool, dict[str, Any]]:
        """(True, the new run) or (False, the run still going)."""
        flow, _, _ = BUTTONS[button]
        with self._lock:
            if self._run is not None and not self._run.final:
                return False, self._run.view()
            run = self._run = ButtonRun(button, flow)
            view = run.view()
        threading.Thread(target=self._drive, args=(run,), name=f"orderly-ui-{button}", daemon=True).start()
        return True, view

    # ---- driving one run (its own thread) ---------------------------------------------------------

    def _set(self, run: ButtonRun, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(run, name, value)
            if run.final and run.ended_at is None:
                run.ended_at = datetime.now(UTC).isoformat()

    def _drive(self, run: ButtonRun) -> None:
        try:
            api = self.settings.prefect_api_url
            if api:
                self._check_server(api)
                key = handoff.worker_key(api, self.settings)
                if key:
                    return self._drive_worker(run, api, key)
                if self._deployment_ready(BUTTONS[run.button][1]):
                    return self._drive_deployment(run)
            self._drive_local(run)
        except Exception as error:  # noqa: BLE001 - the page shows one line, never a traceback
            self._set(run, state="FAILED", message=explain(error).line)  # as the command line would say it

    @staticmethod
    def _check_server(api: str) -> None:
        from orderly.runtime.prefect_health import why_not_answering
        from orderly.settings import mask_url

        why = why_not_answering(api, timeout=5)
        if why:
            raise PrefectUnreachable(f"no Prefect server answers at PREFECT_API_URL={mask_url(api)} ({why})")

    def _drive_worker(self, run: ButtonRun, api: str, key: str) -> None:
        self._set(run, mode="worker", state="RUNNING")
        try:
            ended = handoff.hand_off(run.button, PARAMETERS[run.button], api, self.reader.db_path, key)
        except RunFailed as failure:
            return self._ended_in_worker(run, failure.flow_run_id, "FAILED", str(failure))
        self._ended_in_worker(run, ended["flow_run_id"], "COMPLETED", None)

    def _ended_in_worker(self, run: ButtonRun, flow_run_id: str | None, state: str, message: str | None) -> None:
        ui = self.settings.prefect_ui_url
        if flow_run_id:
            self._set(run, run_id=flow_run_id, run_url=f"{ui}/runs/flow-run/{flow_run_id}" if ui else None)
        self._finish(run, state, message)

    def _deployment_ready(self, name: str) -> bool:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import DeploymentStatus
        from prefect.exceptions import ObjectNotFound

        with get_client(sync_client=True) as client:
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                return False
        return deployment.status == DeploymentStatus.READY

    def _drive_deployment(self, run: ButtonRun) -> None:
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        ui = self.settings.prefect_ui_url
        flow_run = run_deployment(
            BUTTONS[run.button][1], parameters=PARAMETERS[run.button], timeout=0, as_subflow=False
        )
        self._set(
            run, mode="deployment", run_id=str(flow_run.id), run_url=f"{ui}/runs/flow-run/{flow_run.id}" if ui else None
        )
        waiting_since = time.monotonic()
        with get_client(sync_client=True) as client:
            while True:
                state = client.read_flow_run(flow_run.id).state
                name = state.type.value if state is not None else "SCHEDULED"
                note = None
                if name in {"SCHEDULED", "PENDING"} and time.monotonic() - waiting_since > 15:
                    note = "waiting for `orderly serve` (or a worker) to pick the run up"
                if name in FINAL:
                    return self._finish(run, name, state.message)
                self._set(run, state=name, message=note)
                time.sleep(POLL_S)

    def _drive_local(self, run: ButtonRun) -> None:
        flow, _, args = BUTTONS[run.button]
        ui = self.settings.prefect_ui_url if self.settings.prefect_api_url else None
        since = datetime.now(UTC)
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [*self.command, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
            self._set(run, mode="local", state="RUNNING")
            while process.poll() is None:
                if run.run_id is None:
                    self._note_local_run(run, process.pid, flow, since, ui)
                time.sleep(POLL_S)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        recorded = self._note_local_run(run, process.pid, flow, since, ui)
        if recorded is not None:
            recorded = self._final_row(recorded["run_id"]) or recorded
        if process.returncode == 0:
            return self._finish(run, "COMPLETED", None)
        reason = (recorded or {}).get("message") or one_line(stderr.strip().splitlines()[-1] if stderr.strip() else "")
        self._finish(run, "FAILED", reason or f"the run exited with status {process.returncode}")

    def _final_row(self, run_id: str, timeout: float = 5.0) -> dict | None:
        """The run's row once the copy the page reads is current (the flow wrote it just before ending)."""
        deadline = time.monotonic() + timeout
        row = None
        while True:
            try:
                found = self.reader.read(lambda con: queries.run_by_id(con, run_id))
            except Exception:  # noqa: BLE001 - busy: try again until the deadline
                found = None
            if found is not None:
                row = found.value if found.exists else None
                if not found.stale and (row is None or row["state"] != "RUNNING"):
                    return row
            if time.monotonic() >= deadline:
                return row
            time.sleep(0.2)

    def _note_local_run(self, run: ButtonRun, pid: int, flow: str, since: datetime, ui: str | None) -> dict | None:
        """The subprocess's run row, once it has one: its id is the Prefect flow run's id."""
        try:
            found = self.reader.read(lambda con: queries.run_of_process(con, pid, flow, since))
        except Exception:  # noqa: BLE001 - the store busy or not there yet: the next poll tries again
            return None
        row = found.value if found.exists else None
        if row is not None and run.run_id is None:
            self._set(run, run_id=row["run_id"], run_url=f"{ui}/runs/flow-run/{row['run_id']}" if ui else None)
        return row

    def _finish(self, run: ButtonRun, state: str, prefect_message: str | None) -> None:
        """The end: counts and the one-line reason from the runs table (the flow wrote them), else Prefect's."""
        row = self._final_row(run.run_id) if run.run_id is not None else None
        shown = ("reset",) if run.button == "reset" else ("processed", "failed", "waiting")
        counts = {name: row[name] for name in shown} if row else {}
        message = (row or {}).get("message") if state == "COMPLETED" else None  # a completed run's note, if any
        if state != "COMPLETED":
            message = (row or {}).get("message") or run.message or one_line(prefect_message or "") or None
        elif row is None and run.mode == "deployment":
            message = (
                f"the run completed but left no record in {self.reader.db_path}: "
                "is `orderly serve` using another ORDERLY_DB than this page?"
            )
        self._set(run, state=state, counts=counts, message=message)
