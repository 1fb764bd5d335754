"""Settings read once from the environment (CONTRACT.md section 3), validated into one frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum:g}, got {raw!r}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return int(_number(env, name, 0, minimum=0))


def _ui_token(env: Mapping[str, str]) -> str | None:
    """The web page's bearer token travels in an HTTP header: printable ASCII without spaces. The message never
    repeats the value (its length is `orderly ui`'s to judge)."""
    raw = env.get("ORDERLY_UI_TOKEN")
    if raw is None or raw == "":
        return None
    if not all("!" <= ch <= "~" for ch in raw):
        raise SettingsError("ORDERLY_UI_TOKEN must be printable ASCII without spaces or line breaks (the value is not shown)")
    return raw


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
            orders=_optional_int(env, "ORDERLY_SANDBOX_ORDERS"),
            items=_optional_int(env, "ORDERLY_SANDBOX_ITEMS"),
            seed=int(_number(env, "ORDERLY_SANDBOX_SEED", 0)),
            fault_rate=_number(env, "ORDERLY_SANDBOX_FAULT_RATE", 0.0),
            latency_ms=_number(env, "ORDERLY_SANDBOX_LATENCY_MS", 0.0),
            bad_rate=_number(env, "ORDERLY_SANDBOX_BAD_RATE", 0.0),
            token=env.get("ORDERLY_SANDBOX_TOKEN") or None,
        )


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("data/orderly.duckdb")
    orders_url: str | None = None  # None: the in-process sandbox
    warehouse_url: str | None = None
    api_token: str | None = field(default=None, repr=False)  # never printed, logged or stored
    max_stock_age: float = 900.0
    http_timeout: float = 10.0
    http_retries: int = 5
    retry_after_cap: float = 60.0
    lock_timeout: float = 30.0
    page_size: int = 1000
    fetch_concurrency: int = 4
    ui_token: str | None = field(default=None, repr=False)  # the web page's bearer token; never printed or logged
    sandbox: SandboxSettings = SandboxSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            db_path=Path(env.get("ORDERLY_DB") or "data/orderly.duckdb"),
            orders_url=(env.get("ORDERLY_ORDERS_URL") or None),
            warehouse_url=(env.get("ORDERLY_WAREHOUSE_URL") or None),
            api_token=env.get("ORDERLY_API_TOKEN") or None,
            max_stock_age=_number(env, "ORDERLY_MAX_STOCK_AGE", 900.0),
            http_timeout=_number(env, "ORDERLY_HTTP_TIMEOUT", 10.0, minimum=0.1),
            http_retries=int(_number(env, "ORDERLY_HTTP_RETRIES", 5)),
            retry_after_cap=_number(env, "ORDERLY_RETRY_AFTER_CAP", 60.0),
            lock_timeout=_number(env, "ORDERLY_LOCK_TIMEOUT", 30.0),
            page_size=int(_number(env, "ORDERLY_PAGE_SIZE", 1000, minimum=1)),
            fetch_concurrency=int(_number(env, "ORDERLY_FETCH_CONCURRENCY", 4, minimum=1)),
            ui_token=_ui_token(env),
            sandbox=SandboxSettings.from_env(env),
        )

    @property
    def uses_sandbox(self) -> bool:
        return self.orders_url is None or self.warehouse_url is None
