"""Errors the command line turns into one clear line on stderr and a non-zero exit."""


class OrderlyError(Exception):
    """Base for every failure we explain to the operator in one line."""

    exit_code = 1


class StoreBusy(OrderlyError):
    """Another process holds the DuckDB file and did not let go within the lock timeout."""

    exit_code = 3


class StoreUnusable(OrderlyError):
    """ORDERLY_DB names a file this version cannot open as its store (not DuckDB, another DuckDB version,
    a store from a newer Orderly, no permission)."""

    exit_code = 2


class StaleStock(OrderlyError):
    """Processing refused: no complete stock snapshot, or the last one is too old."""

    exit_code = 4


class RemoteError(OrderlyError):
    """A remote service could not be read (after retries, or at once for 401/403/404)."""

    exit_code = 5


class PrefectGone(OrderlyError):
    """The Prefect server stopped answering while a command ran: the command ends at once, keeping what was
    committed to the store (orderly.ending), instead of waiting minutes on Prefect's retries."""

    exit_code = 6


class RunFailed(OrderlyError):
    """A run handed to the Orderly worker ended FAILED or CRASHED there: its one line and its exit status, as if
    it had run in the caller's process."""

    def __init__(self, message: str, exit_code: int, flow_run_id: str | None) -> None:
        super().__init__(message)
        self.exit_code, self.flow_run_id = exit_code, flow_run_id


class BadArgument(OrderlyError):
    """A value an operator gave that the rules do not know (a status, a reason, an order id)."""

    exit_code = 2


class UnknownOrders(BadArgument):
    """`--order` named ids that are not in the store."""


class IncompleteSnapshot(RemoteError):
    """The warehouse's pages do not make one snapshot (they disagree, or claim too many): nothing changes."""


class ProtocolViolation(RemoteError):
    """An orders page broke the paging protocol (CONTRACT section 1): the sync stops before it, nothing is lost."""
