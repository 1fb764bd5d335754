"""A data-changing command as a Prefect flow run: handed to the Orderly worker when `orderly serve` runs one for
this store, else run in this process, under a temporary Prefect server when PREFECT_API_URL is not set. The settings,
the store and the server are checked first, so a bad one is one line before seconds of Prefect's imports."""

from __future__ import annotations

import os
from typing import Any

from orderly.cli.output import err
from orderly.cli.reads import settings
from orderly.errors import PrefectUnreachable
from orderly.settings import mask_url


def run_flow(name: str, **params: Any) -> dict[str, int]:
    current = settings()  # a bad setting is reported before Prefect spends seconds starting up
    from orderly.store.connection import probe

    probe(current.db_path)  # so is a store this version cannot open (or create): exit 2, before any flow
    api = current.prefect_api_url
    check_prefect_api(api)  # a dead server is one line now, not Prefect's traceback after a second of imports
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")  # our own lines say what happened
    if api:  # `orderly serve` runs a worker: the run is decided there, warm, and Prefect is not imported here
        from flows import handoff

        key = handoff.worker_key(api, current)
        if key:
            return handoff.hand_off(name, params, api, current.db_path, key)["outcome"]
    else:
        err.print(
            "note: PREFECT_API_URL is not set, so Prefect starts a temporary server for this command (about 7 s). "
            "For speed and the UI: `make server`, then export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from orderly.runtime import ending, prefect_watch, progress, sigterm
    from orderly.runtime.tempserver import temporary_server

    # The server dies with us, even of SIGKILL; SIGTERM ends the command within seconds, with one line.
    with temporary_server(api) as server, sigterm.ends_the_command(), progress.shown_on(err):
        from flows import orders

        sigterm.also_during_flows()
        server.use()
        api = server.api_url  # the configured server's, or the temporary one's
        if api:
            prefect_watch.watch(api)  # a server that goes away ends the command in seconds, not minutes
        flow = orders.BY_COMMAND[name]
        try:
            result = flow(**params)
        except BaseException:
            ending.wait_if_ending()  # the ending says the last word (and exits)
            if api and prefect_watch.gone_now(api):  # Prefect's error would name a connection, not the cause
                prefect_watch.end_as_gone(api)
            raise
        ending.wait_if_ending()
        return result


def check_prefect_api(api: str | None) -> None:
    """The settings' PREFECT_API_URL (its form checked with them) must answer: checked before importing Prefect."""
    from orderly.runtime.prefect_health import why_not_answering

    if not api:
        return
    advice = "start it with `make server`, or unset PREFECT_API_URL (each command then starts a temporary server)"
    why = why_not_answering(api, timeout=2)
    if why:
        raise PrefectUnreachable(f"no Prefect server answers at PREFECT_API_URL={mask_url(api)} ({why}): {advice}")
