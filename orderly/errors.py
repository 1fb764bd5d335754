"""Every failure Orderly explains to an operator, with its exit status (CONTRACT.md section 3), and the one place
that turns any error into the line an operator reads: `explain()`, used by the command line, `serve`, the
worker and the web page alike.

An error class says what went wrong and carries its exit status; the message is one line that says what to do.
Importing this module imports only the standard library, so every layer may raise these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class OrderlyError(Exception):
    """Base for every failure we explain to the operator in one line. Exit status 1 unless a subclass says."""

    exit_code = 1
    prefix = "error: "  # how the command line starts its line; a declined question is no error


# ---- 1: a run or a check that did not succeed --------------------------------------------------


class Declined(OrderlyError):
    """The operator answered no to a question (`orderly reset`): nothing was done, and that is not an error."""

    prefix = ""


class ProblemsFound(OrderlyError):
    """`orderly doctor` found at least one problem (each is on its own line above)."""


class TemporaryServerFailed(OrderlyError):
    """The temporary Prefect server of a command did not come up."""


class RunFailed(OrderlyError):
    """A run handed to the Orderly worker ended FAILED or CRASHED there: its one line and its exit status, as if
    it had run in the caller's process."""

    def __init__(self, message: str, exit_code: int, flow_run_id: str | None) -> None:
        super().__init__(message)
        self.exit_code, self.flow_run_id = exit_code, flow_run_id

    def __reduce__(self):  # Prefect may pickle a run's exception: rebuilt with every argument, not the message alone
        return type(self), (str(self), self.exit_code, self.flow_run_id)


# ---- 2: bad usage ------------------------------------------------------------------------------


class UsageError(OrderlyError):
    """Bad usage: an argument, a setting, an id that names nothing, a Prefect server that does not answer when
    the command starts. Nothing was changed."""

    exit_code = 2


class SettingsError(UsageError, ValueError):
    """A setting has a value we cannot use; the message names the variable (also kept in `variable`)."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable

    def __reduce__(self):  # as RunFailed's
        return type(self), (str(self), self.variable)


class BadArgument(UsageError):
    """A value an operator gave that the rules do not know (a status, a reason, a time, a run id)."""


class UnknownOrders(BadArgument):
    """Order ids that are not in the store: the one wording, wherever the check runs."""

    def __init__(self, order_ids: Iterable[int], then: str = "; nothing was changed") -> None:
        self.order_ids, self.then = sorted(set(order_ids)), then
        super().__init__(f"no such order: {ids_in_words(self.order_ids)}{then}")

    def __reduce__(self):  # as RunFailed's
        return type(self), (self.order_ids, self.then)


class StoreUnusable(UsageError):
    """ORDERLY_DB names a file this version cannot open as its store (not DuckDB, another DuckDB version,
    a store from a newer Orderly, no permission)."""


class PrefectUnreachable(UsageError):
    """No Prefect server answers at PREFECT_API_URL when a command starts, or `serve` has none to register with."""


class UiRefused(UsageError):
    """`orderly ui` cannot start as asked (an unsafe address, a bad token, a port in use)."""


# ---- 3 to 6: the store, the stock, the remotes, Prefect ------------------------------------------


class StoreBusy(OrderlyError):
    """Another process holds the DuckDB file and did not let go within the lock timeout."""

    exit_code = 3


class StaleStock(OrderlyError):
    """Processing refused: no complete stock snapshot, or the last one is too old."""

    exit_code = 4


class RemoteError(OrderlyError):
    """A remote service could not be read (after retries, or at once for 401/403/404)."""

    exit_code = 5


class IncompleteSnapshot(RemoteError):
    """The warehouse's pages do not make one snapshot (they disagree, or claim too many): nothing changes."""


class ProtocolViolation(RemoteError):
    """An orders page broke the paging protocol (CONTRACT section 1): the sync stops before it, nothing is lost."""


class RunIncomplete(RemoteError):
    """A remote could not be read, so a step could not finish; what could be done was done. The message
    starts with the remote's own line (service, URL, the setting to fix): that is what the operator reads."""


class WebhookRefused(RemoteError):
    """The webhook receiver answered a status that another try would not change (3xx, 4xx but 408 and 429): the
    delivery stops at once, and the next one sends the same batch again. The message names the masked URL."""


class WebhookUnavailable(RemoteError):
    """The webhook receiver did not take a batch before the delivery's deadline (5xx, 429, time-outs, broken
    connections, retried until then): the next delivery sends the same batch again."""


class PrefectGone(OrderlyError):
    """The Prefect server stopped answering while a command ran: the command ends at once, keeping what was
    committed to the store (orderly.runtime.ending), instead of waiting minutes on Prefect's retries."""

    exit_code = 6


class WorkerGone(PrefectGone):
    """The Orderly worker, or its Prefect server, went away before a handed-off run ended (or could not start it)."""


class NotStarted(WorkerGone):
    """The worker did not start a handed-off run in time; it is withdrawn, nothing was changed."""


# ---- the one mapping ----------------------------------------------------------------------------

INTERRUPTED = 130  # Ctrl-C, as a shell reports it (128 + SIGINT)


@dataclass(frozen=True)
class Explained:
    line: str  # one line, URLs masked; never a traceback, never an internal exception name
    exit_code: int
    prefix: str  # "error: " before the line on a terminal, or nothing (a declined question)
    expected: bool  # one of ours (or a usage error): ORDERLY_DEBUG shows a traceback only for the others

    def on_terminal(self) -> str:
        """The line as the command line and `serve` print it; an unexpected failure says how to see more."""
        return f"{self.prefix}{self.line}" + ("" if self.expected else " (ORDERLY_DEBUG=1 shows the traceback)")


def explain(error: BaseException) -> Explained:
    """What an operator reads for `error`, and the exit status it means: the command line prints it, `serve` and
    `python -m flows.deployments` too, the worker records it as the run's message, the page shows it."""
    from orderly.settings import mask_urls_in  # URLs in a library's words may carry a password

    if isinstance(error, OrderlyError):
        return Explained(
            mask_urls_in(one_line(str(error))) or type(error).__doc__ or "failed", error.exit_code, error.prefix, True
        )
    if isinstance(error, KeyboardInterrupt):
        return Explained("interrupted", INTERRUPTED, "", True)
    if hasattr(error, "format_message"):  # a usage error from typer's click: one line, in our words if typer's are
        return Explained(
            _out_of_range(error) or one_line(error.format_message()),
            int(getattr(error, "exit_code", 2)),
            "error: ",
            True,
        )
    first = mask_urls_in(one_line(str(error))) or "no message"
    return Explained(f"unexpected failure: {first}", 1, "error: ", False)


def _out_of_range(error: BaseException) -> str | None:
    """Typer checks a number's type and bounds with pydantic, whose words ("Invalid value for 'order_id': Input
    should be greater than or equal to 1") name a Python parameter and no range: the line says what is accepted."""
    param = getattr(error, "param", None)
    if param is None or not type(error.__cause__).__module__.startswith("pydantic"):
        return None
    name = param.opts[0] if getattr(param, "param_type_name", "") == "option" else (param.metavar or param.name.upper())
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    whole = getattr(getattr(param, "type_descriptor", None), "annotation", int) is not float
    kind = "a whole number" if whole else "a number"
    bounds = (
        f" from {low} to {high}"
        if low is not None and high is not None
        else f" of at least {low}"
        if low is not None
        else f" of at most {high}"
        if high is not None
        else ""
    )
    return f"{name} must be {kind}{bounds}"


def one_line(text: object) -> str:
    """The first line of a message that has text, without a leading `error: ` (a subprocess's line, read back)."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line[len("error: ") :] if line.startswith("error: ") else line


def ids_in_words(ids: list[int], shown: int = 10) -> str:
    """Ids as an operator reads them in one line: the first `shown`, then how many more."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(map(str, ids[:shown])) + more
