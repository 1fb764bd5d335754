"""Prefect's own floor for a flow command: a fresh interpreter imports Prefect, runs a flow that calls one task
against the server in PREFECT_API_URL, and exits. `bench/run.py` times this beside the incremental run: an
`orderly run` cannot take less, whatever it does."""

from prefect import flow, task


@task
def one_task() -> int:
    return 1


@flow
def empty_flow() -> int:
    return one_task()


if __name__ == "__main__":
    empty_flow()
