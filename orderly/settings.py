"""Settings read once from the environment (CONTRACT.md section 3), every one checked before anything runs.

A bad value is refused with one line naming its variable: never silently ignored (`nan` would disable
the stale-stock guard), never echoed when it is a secret.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from domain.bounds import MAX_INT
from orderly.errors import SettingsError

# Every ORDERLY_* variable Orderly reads: the one list. Any other ORDERLY_* name is a typo, refused with a
# did-you-mean, because a misspelt URL setting would otherwise quietly mean "use the built-in sandbox".
SETTING_NAMES = frozenset(
    {
        "ORDERLY_DB",
        "ORDERLY_ORDERS_URL",
        "ORDERLY_WAREHOUSE_URL",
        "ORDERLY_API_TOKEN",
        "ORDERLY_MAX_STOCK_AGE",
        "ORDERLY_HTTP_TIMEOUT",
        "ORDERLY_HTTP_RETRIES",
        "ORDERLY_RETRY_AFTER_CAP",
        "ORDERLY_LOCK_TIMEOUT",
        "ORDERLY_PAGE_SIZE",
        "ORDERLY_FETCH_CONCURRENCY",
        "ORDERLY_MAX_STOCK_PAGES",
        "ORDERLY_MAX_ORDER_PAGES",
        "ORDERLY_LOOKBACK_ORDERS",
        "ORDERLY_MAX_BODY_BYTES",
        "ORDERLY_SCHEDULE_SECONDS",
        "ORDERLY_UI_TOKEN",
        "ORDERLY_SANDBOX_ORDERS",
        "ORDERLY_SANDBOX_ITEMS",
        "ORDERLY_SANDBOX_SEED",
        "ORDERLY_SANDBOX_FAULT_RATE",
        "ORDERLY_SANDBOX_LATENCY_MS",
        "ORDERLY_SANDBOX_BAD_RATE",
        "ORDERLY_SANDBOX_TOKEN",
        "ORDERLY_DEBUG",  # the command line shows a traceback instead of its one line
        "ORDERLY_WEBHOOK_URL",  # the decision feed (orderly/feed): where, signed with what, how many a batch,
        # and how far behind before the automation alerts
        "ORDERLY_WEBHOOK_SECRET",
        "ORDERLY_WEBHOOK_BATCH",
        "ORDERLY_WEBHOOK_MAX_LAG",
    }
)
DEFAULT_DB = "data/orderly.duckdb"


MAX_PAGE_SIZE = 1000  # the contract's bound on `limit` and `per_page`
# A bearer token is sent in a header: printable ASCII without spaces (RFC 6750's b64token is narrower still).
_TOKEN = re.compile(r"[\x21-\x7e]+")


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def mask_url(raw: str) -> str:
    """A URL fit to show anywhere: userinfo becomes ***@ and the query (and fragment) ?***.

    Works on the raw text, so a URL that does not parse is masked too. An '@' after the first '?' or '#'
    could end a password that holds one of them, so then nothing after the scheme is shown."""
    text = raw.strip()
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    head, rest = text[:start], text[start:]
    cut = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    at = rest.rfind("@")
    tail = "?***" if cut < len(rest) else ""
    if at < 0:
        return head + rest[:cut] + tail
    if at < cut:
        return head + "***@" + rest[at + 1 : cut] + tail
    return head + "***" + tail


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def mask_urls_in(text: str) -> str:
    """Text (a library's error message) with every URL in it masked as mask_url masks one."""
    return _URL_IN_TEXT.sub(lambda found: mask_url(found.group()), text)


def _unknown_names(env: Mapping[str, str]) -> None:
    for name in sorted(env):
        if name.startswith("ORDERLY_") and name not in SETTING_NAMES:
            shown = name if re.fullmatch(r"[A-Z0-9_]+", name) else ascii(name)
            close = difflib.get_close_matches(name.upper(), SETTING_NAMES, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "unset it (README, Settings, lists them all)"
            raise SettingsError(f"{shown} is not an Orderly setting: {hint}", name)


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float = 0.0,
    maximum: float = math.inf,
    above: bool = False,
) -> float:
    """A finite number in [minimum, maximum] (or > minimum when `above`); nan and inf are refused."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    too_low = value <= minimum if above else value < minimum
    if too_low or value > maximum:
        low = f"> {minimum:g}" if above else f">= {minimum:g}"
        bound = low if maximum == math.inf else f"{low} and <= {maximum:g}"
        raise SettingsError(f"{name} must be {bound}, got {raw!r}")
    return value


def _integer(
    env: Mapping[str, str], name: str, default: int | None, *, minimum: int = 0, maximum: int = MAX_INT
) -> int | None:
    """A whole number in [minimum, maximum]: "1.5", "nan" and "1e3" are refused rather than rounded."""
    raw = _raw(env, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]{1,19}", raw):
        raise SettingsError(f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {raw!r}")
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = _raw(env, name)
    if raw is None:
        return None
    import httpx  # already a dependency of every command that uses a URL

    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError):
        raise SettingsError(f"{name} is not a valid URL: {mask_url(raw)!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise SettingsError(f"{name} must be an http:// or https:// URL with a host, got {mask_url(raw)!r}")
    return raw


def _both_urls_or_neither(orders: str | None, warehouse: str | None) -> None:
    """The built-in sandbox stands in for both remotes or neither: real stock with sandbox orders (or the
    other way round) would decide orders that do not exist, and move the cursor past the real ones."""
    if (orders is None) != (warehouse is None):
        given, missing = (
            ("ORDERLY_ORDERS_URL", "ORDERLY_WAREHOUSE_URL")
            if orders
            else ("ORDERLY_WAREHOUSE_URL", "ORDERLY_ORDERS_URL")
        )
        raise SettingsError(
            f"{given} is set but {missing} is not: set both (the real services) or neither (the built-in sandbox)",
            given,
        )


def secret(env: Mapping[str, str], name: str) -> str | None:
    """A token: printable ASCII without spaces. The message never repeats the value."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    if not _TOKEN.fullmatch(raw):
        raise SettingsError(f"{name} must be printable ASCII without spaces or line breaks (the value is not shown)")
    return raw


def _webhook(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """ORDERLY_WEBHOOK_URL and its ORDERLY_WEBHOOK_SECRET: both or neither (an unsigned feed would be trusted by
    no receiver; a secret without a URL is a setting that does nothing)."""
    url, key = _url(env, "ORDERLY_WEBHOOK_URL"), secret(env, "ORDERLY_WEBHOOK_SECRET")
    if url and not key:
        raise SettingsError(
            "ORDERLY_WEBHOOK_URL is set but ORDERLY_WEBHOOK_SECRET is not: set the whsec_ secret the receiver "
            "verifies signatures with",
            "ORDERLY_WEBHOOK_URL",  # the one set: `orderly doctor` reads the rest without it
        )
    if key and not url:
        raise SettingsError(
            "ORDERLY_WEBHOOK_SECRET is set but ORDERLY_WEBHOOK_URL is not: set where decisions are delivered",
            "ORDERLY_WEBHOOK_SECRET",
        )
    if key:
        from orderly.feed.signing import secret_key

        secret_key(key)  # its form, checked now: a bad one is one line before anything runs
    return url, key


def _db_path(env: Mapping[str, str]) -> Path:
    """The store's path, `~` expanded here once so every command means the same file; refused when it cannot
    be a store: a directory, a file that is not DuckDB, a directory that does not exist (never created for
    you), a directory we may not write in. Opening checks the rest (a DuckDB file this version cannot read)."""
    raw = env.get("ORDERLY_DB") or DEFAULT_DB
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # ~someone who does not exist
        raise SettingsError(f"ORDERLY_DB={raw!r}: the home directory in it is unknown", "ORDERLY_DB") from None
    problem = store_file_problem(path)
    if problem:
        raise SettingsError(f"ORDERLY_DB={str(path)!r} {problem}", "ORDERLY_DB")
    return path


_DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB file (after an 8-byte checksum)


def store_file_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a store, in words; None when it can. Cheap: a stat and 12 bytes,
    and never blocks (a FIFO is refused before it is opened)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        parent = path.parent
        if not parent.is_dir():
            return f"is in a directory that does not exist ({str(parent)!r}): create it, or fix ORDERLY_DB"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot be created: no permission to write in {str(parent)!r}"
        return None
    except OSError as error:  # a file where a directory should be, a loop of links, no permission
        return f"cannot be reached: {error.strerror or error}"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory: ORDERLY_DB must name a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a pipe, socket or device): ORDERLY_DB must name a file"
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if head[8:12] != _DUCKDB_MAGIC:
        return "is not a DuckDB store file: point ORDERLY_DB at the store, or move this file away"
    return None


def _prefect_api(env: Mapping[str, str]) -> str | None:
    """PREFECT_API_URL, checked before Prefect is imported: Prefect's own error would be a traceback."""
    raw = _raw(env, "PREFECT_API_URL")
    if raw is None:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - read for its check: a port that is not a number, or out of range, raises
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"PREFECT_API_URL is not an http:// or https:// URL with a host and port: {mask_url(raw)!r}",
            "PREFECT_API_URL",
        )
    return raw.rstrip("/")


def _prefect_ui(env: Mapping[str, str], api: str | None) -> str | None:
    ui = (_raw(env, "PREFECT_UI_URL") or "").rstrip("/")
    if ui:
        return ui
    if not api:
        return None
    return api[: -len("/api")] if api.endswith("/api") else api


def debug_wanted(env: Mapping[str, str] | None = None) -> bool:
    """ORDERLY_DEBUG. A function as well as a setting: an error may come before the settings could be read, or
    because they could not (orderly.errors.explain asks it then)."""
    return _raw(os.environ if env is None else env, "ORDERLY_DEBUG") is not None


@dataclass(frozen=True)
class SandboxSettings:
    """How the built-in sandbox behaves when it stands in for the remotes (in-process or `orderly sandbox`)."""

    orders: int | None = None  # None: the seed data set; a number: a generated one of that size
    items: int | None = None
    seed: int = 0
    fault_rate: float = 0.0
    latency_ms: float = 0.0
    bad_rate: float = 0.0
    token: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)  # a whsec_ secret: POST /webhook checks it

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SandboxSettings:
        return cls(
            orders=_integer(env, "ORDERLY_SANDBOX_ORDERS", None, maximum=100_000_000),
            items=_integer(env, "ORDERLY_SANDBOX_ITEMS", None, minimum=1, maximum=100_000_000),
            seed=_integer(env, "ORDERLY_SANDBOX_SEED", 0),
            fault_rate=_number(env, "ORDERLY_SANDBOX_FAULT_RATE", 0.0, maximum=1.0),
            latency_ms=_number(env, "ORDERLY_SANDBOX_LATENCY_MS", 0.0, maximum=600_000.0),
            bad_rate=_number(env, "ORDERLY_SANDBOX_BAD_RATE", 0.0, maximum=1.0),
            token=secret(env, "ORDERLY_SANDBOX_TOKEN"),
        )


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("data/orderly.duckdb")
    orders_url: str | None = None  # None: the in-process sandbox
    warehouse_url: str | None = None
    api_token: str | None = field(default=None, repr=False)  # never printed, logged or stored
    max_stock_age: float = 900.0
    http_timeout: float = 10.0  # seconds for a whole request: connect, headers and body
    http_retries: int = 5
    retry_after_cap: float = 60.0
    lock_timeout: float = 30.0
    page_size: int = 1000
    fetch_concurrency: int = 4
    max_stock_pages: int = 10_000  # a warehouse claiming more pages than this is refused, not believed
    max_order_pages: int = 100_000  # the most orders pages one run reads (100M orders at 1,000 a page)
    lookback_orders: int = 1_000  # each run re-reads from the id of the lookback_orders-th newest stored order
    max_body_bytes: int = 16 * 2**20  # the largest response body, after decompression
    schedule_seconds: float = 300.0
    ui_token: str | None = field(default=None, repr=False)
    sandbox: SandboxSettings = SandboxSettings()
    prefect_api_url: str | None = None  # None: each data-changing command starts a temporary Prefect server
    prefect_ui_url: str | None = None  # where the Prefect UI is: PREFECT_UI_URL, or the API URL without its /api
    debug: bool = False  # ORDERLY_DEBUG: a traceback instead of the one line
    webhook_url: str | None = None  # None: decisions are not delivered (the pull feed still serves them)
    webhook_secret: str | None = field(default=None, repr=False)  # whsec_...: never printed, logged or stored
    webhook_batch: int = 1000  # the most events one POST carries
    webhook_max_lag: float = 900.0  # seconds the oldest undelivered event may wait before the automation alerts

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        _unknown_names(env)
        orders_url, warehouse_url = _url(env, "ORDERLY_ORDERS_URL"), _url(env, "ORDERLY_WAREHOUSE_URL")
        _both_urls_or_neither(orders_url, warehouse_url)
        webhook_url, webhook_secret = _webhook(env)
        return cls(
            db_path=_db_path(env),
            orders_url=orders_url,
            warehouse_url=warehouse_url,
            api_token=secret(env, "ORDERLY_API_TOKEN"),
            max_stock_age=_number(env, "ORDERLY_MAX_STOCK_AGE", 900.0),
            http_timeout=_number(env, "ORDERLY_HTTP_TIMEOUT", 10.0, above=True, maximum=3600.0),
            http_retries=_integer(env, "ORDERLY_HTTP_RETRIES", 5, maximum=100),
            retry_after_cap=_number(env, "ORDERLY_RETRY_AFTER_CAP", 60.0, maximum=3600.0),
            lock_timeout=_number(env, "ORDERLY_LOCK_TIMEOUT", 30.0, maximum=86_400.0),
            page_size=_integer(env, "ORDERLY_PAGE_SIZE", 1000, minimum=1, maximum=MAX_PAGE_SIZE),
            fetch_concurrency=_integer(env, "ORDERLY_FETCH_CONCURRENCY", 4, minimum=1, maximum=64),
            max_stock_pages=_integer(env, "ORDERLY_MAX_STOCK_PAGES", 10_000, minimum=1, maximum=1_000_000),
            max_order_pages=_integer(env, "ORDERLY_MAX_ORDER_PAGES", 100_000, minimum=1, maximum=100_000_000),
            lookback_orders=_integer(env, "ORDERLY_LOOKBACK_ORDERS", 1_000, minimum=0, maximum=100_000_000),
            max_body_bytes=_integer(env, "ORDERLY_MAX_BODY_BYTES", 16 * 2**20, minimum=1024, maximum=2**34),
            schedule_seconds=_number(env, "ORDERLY_SCHEDULE_SECONDS", 300.0, minimum=10.0, maximum=86_400.0 * 7),
            ui_token=secret(env, "ORDERLY_UI_TOKEN"),
            sandbox=SandboxSettings.from_env(env),
            prefect_api_url=(api := _prefect_api(env)),
            prefect_ui_url=_prefect_ui(env, api),
            debug=debug_wanted(env),
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_batch=_integer(env, "ORDERLY_WEBHOOK_BATCH", 1000, minimum=1, maximum=10_000),
            webhook_max_lag=_number(env, "ORDERLY_WEBHOOK_MAX_LAG", 900.0, minimum=1.0, maximum=86_400.0 * 30),
        )

    @property
    def uses_sandbox(self) -> bool:
        return self.orders_url is None or self.warehouse_url is None


_READS = ("ORDERLY_", "PREFECT_API_URL", "PREFECT_UI_URL")  # the variables Settings.from_env reads
_loaded: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def current() -> Settings:
    """This process's settings: read from the environment and checked once, then kept for as long as the
    environment holds the same values (the command line, its flow and the page all ask; a test that changes the
    environment gets the new ones). A bad setting is raised again at every call, never kept."""
    global _loaded
    seen = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith(_READS)))
    if _loaded is None or _loaded[0] != seen:
        _loaded = (seen, Settings.from_env())
    return _loaded[1]
