"""Settings read once from the environment (CONTRACT.md section 3), every one checked before anything runs.

A bad value is refused with one line naming its variable: never silently ignored (`nan` would disable
the stale-stock guard), never echoed when it is a secret.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


MAX_PAGE_SIZE = 1000  # the contract's bound on `limit` and `per_page`
# A bearer token is sent in a header: printable ASCII without spaces (RFC 6750's b64token is narrower still).
_TOKEN = re.compile(r"[\x21-\x7e]+")


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0,
            maximum: float = math.inf, above: bool = False) -> float:
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


def _integer(env: Mapping[str, str], name: str, default: int | None, *, minimum: int = 0,
             maximum: int = 2**63 - 1) -> int | None:
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
        raise SettingsError(f"{name} is not a valid URL: {raw!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise SettingsError(f"{name} must be an http:// or https:// URL with a host, got {raw!r}")
    return raw


def secret(env: Mapping[str, str], name: str) -> str | None:
    """A token: printable ASCII without spaces. The message never repeats the value."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    if not _TOKEN.fullmatch(raw):
        raise SettingsError(
            f"{name} must be printable ASCII without spaces or line breaks (the value is not shown)"
        )
    return raw


def _db_path(env: Mapping[str, str]) -> Path:
    path = Path(env.get("ORDERLY_DB") or "data/orderly.duckdb")
    if path.is_dir():
        raise SettingsError(f"ORDERLY_DB must name a file, but {str(path)!r} is a directory")
    return path


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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SandboxSettings":
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
    http_timeout: float = 10.0     # seconds for a whole request: connect, headers and body
    http_retries: int = 5
    retry_after_cap: float = 60.0
    lock_timeout: float = 30.0
    page_size: int = 1000
    fetch_concurrency: int = 4
    max_stock_pages: int = 10_000  # a warehouse claiming more pages than this is refused, not believed
    max_order_pages: int = 100_000  # the most orders pages one run reads (100M orders at 1,000 a page)
    lookback_orders: int = 1_000    # each run re-reads from the id of the lookback_orders-th newest stored order
    max_body_bytes: int = 16 * 2**20  # the largest response body, after decompression
    schedule_seconds: float = 300.0
    ui_token: str | None = field(default=None, repr=False)
    sandbox: SandboxSettings = SandboxSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            db_path=_db_path(env),
            orders_url=_url(env, "ORDERLY_ORDERS_URL"),
            warehouse_url=_url(env, "ORDERLY_WAREHOUSE_URL"),
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
        )

    @property
    def uses_sandbox(self) -> bool:
        return self.orders_url is None or self.warehouse_url is None
