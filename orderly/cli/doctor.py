"""`orderly doctor`: what Orderly would use and whether it works, one line per check, with advice per problem.

It reads; it never writes, never imports Prefect (the API's health is one HTTP GET) and never shows a secret:
tokens read as "set (hidden)", a URL's password and query string are masked.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orderly.errors import SettingsError
from orderly.settings import DEFAULT_DB, Settings, mask_url

CHECK_TIMEOUT = 3.0  # seconds per HTTP check: the doctor answers quickly even when everything is down

SECRETS = ("ORDERLY_API_TOKEN", "ORDERLY_UI_TOKEN", "ORDERLY_SANDBOX_TOKEN", "ORDERLY_WEBHOOK_SECRET")
# (variable, Settings field, what the default means); the sandbox's own settings are shown only when set
SHOWN = [
    ("ORDERLY_DB", "db_path", None),
    ("ORDERLY_ORDERS_URL", "orders_url", "the built-in sandbox, in-process"),
    ("ORDERLY_WAREHOUSE_URL", "warehouse_url", "the built-in sandbox, in-process"),
    ("ORDERLY_API_TOKEN", "api_token", "no token sent"),
    ("ORDERLY_MAX_STOCK_AGE", "max_stock_age", None),
    ("ORDERLY_HTTP_TIMEOUT", "http_timeout", None),
    ("ORDERLY_HTTP_RETRIES", "http_retries", None),
    ("ORDERLY_RETRY_AFTER_CAP", "retry_after_cap", None),
    ("ORDERLY_LOCK_TIMEOUT", "lock_timeout", None),
    ("ORDERLY_PAGE_SIZE", "page_size", None),
    ("ORDERLY_FETCH_CONCURRENCY", "fetch_concurrency", None),
    ("ORDERLY_MAX_STOCK_PAGES", "max_stock_pages", None),
    ("ORDERLY_MAX_ORDER_PAGES", "max_order_pages", None),
    ("ORDERLY_LOOKBACK_ORDERS", "lookback_orders", None),
    ("ORDERLY_MAX_BODY_BYTES", "max_body_bytes", None),
    ("ORDERLY_SCHEDULE_SECONDS", "schedule_seconds", None),
    ("ORDERLY_UI_TOKEN", "ui_token", "the page listens on loopback only"),
    ("ORDERLY_WEBHOOK_URL", "webhook_url", "decisions are not delivered (`orderly events` reads them)"),
    ("ORDERLY_WEBHOOK_SECRET", "webhook_secret", None),
    ("ORDERLY_WEBHOOK_BATCH", "webhook_batch", None),
    ("ORDERLY_WEBHOOK_MAX_LAG", "webhook_max_lag", None),
]
_VARIABLE = re.compile(r"\b((?:ORDERLY|PREFECT)_[A-Z0-9_]+)")


@dataclass
class Check:
    name: str
    ok: bool
    text: str  # what was found; for a problem, followed by the advice


def diagnose(env: Mapping[str, str] | None = None) -> tuple[list[tuple[str, str, str]], list[Check]]:
    """(settings as (variable, shown value, source), checks) for this environment."""
    env = dict(os.environ if env is None else env)
    checks: list[Check] = []
    usable = dict(env)
    db_refused: Check | None = None
    for _ in range(40):  # every bad setting is named, not only the first: drop each and read the rest again
        try:
            settings = Settings.from_env(usable)
            break
        except SettingsError as error:
            found = _VARIABLE.search(str(error))
            name = error.variable or (found[1] if found else None)
            if name == "ORDERLY_DB":  # set and refused, or the default refused (run away from a clone's data/)
                db_refused = Check("database", False, f"{error}: fix or set it")
                # a path that passes, so the other settings are still read; never opened (the check is above)
                usable["ORDERLY_DB"] = str(Path(tempfile.gettempdir()) / "orderly-doctor-no-store.duckdb")
                continue
            if name not in usable:
                raise
            checks.append(
                Check(
                    name if name.isascii() and name.isprintable() else ascii(name), False, f"{error}: fix or unset it"
                )
            )
            del usable[name]
    shown = [
        (name, _shown(name, env, getattr(settings, field), meaning), _source(name, env, usable))
        for name, field, meaning in SHOWN
    ]
    if db_refused:  # the placeholder above is not what the operator set
        shown[0] = ("ORDERLY_DB", env.get("ORDERLY_DB") or DEFAULT_DB, "refused")
    shown += [
        (name, _shown(name, env, env[name], None), "set")
        for name in sorted(env)
        if name.startswith("ORDERLY_SANDBOX_") and env[name].strip()
    ]
    shown += [
        (name, _shown(name, env, env.get(name) or "", None), "set" if env.get(name) else "default")
        for name in ("PREFECT_API_URL", "PREFECT_HOME")
    ]
    checks.insert(0, db_refused or _database(settings))
    if "PREFECT_API_URL" in usable or "PREFECT_API_URL" not in env:  # a refused one has its line above
        checks.append(_prefect(settings.prefect_api_url, settings))
    checks.append(
        _remote(
            "orders",
            settings.orders_url,
            "/orders",
            {"after_id": 0, "limit": 1},
            "orders",
            "ORDERLY_ORDERS_URL",
            settings,
        )
    )
    checks.append(
        _remote(
            "warehouse",
            settings.warehouse_url,
            "/stock",
            {"page": 1, "per_page": 1},
            "items",
            "ORDERLY_WAREHOUSE_URL",
            settings,
        )
    )
    if settings.webhook_url:
        checks.append(_receiver(settings))
    return shown, checks


def _source(name: str, env: Mapping[str, str], usable: Mapping[str, str]) -> str:
    if name in env and name not in usable:
        return "refused"
    return "set" if (env.get(name) or "").strip() else "default"


def _shown(name: str, env: Mapping[str, str], value: object, meaning: str | None) -> str:
    if name in SECRETS or name.endswith("_TOKEN"):
        return "set (hidden)" if env.get(name) else f"unset: {meaning}" if meaning else "unset"
    if value is None or value == "":
        return f"unset: {meaning}" if meaning else "unset"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return masked_url(text) if "://" in text or name.endswith("_URL") else text


def masked_url(raw: str) -> str:
    """A URL fit to print: the settings' one masking function (no userinfo, no query string)."""
    return mask_url(raw)


def _database(settings: Settings) -> Check:
    from orderly.errors import StoreBusy
    from orderly.store import open_store, queries

    path = Path(settings.db_path).absolute()
    if not path.exists():
        return Check(
            "database",
            False,
            f"no database at {path} (ORDERLY_DB): run `orderly sync` to create it, or point ORDERLY_DB at the store",
        )
    try:
        with open_store(path, lock_timeout=1.0, read_only=True) as con:
            counts = queries.status_counts(con)
            age = queries.snapshot_age(con)
    except StoreBusy:
        return Check("database", True, f"{path} exists; another orderly process is writing to it just now")
    except Exception as error:  # noqa: BLE001 - whatever the file is, the doctor says so in one line
        first = (str(error).strip().splitlines() or ["unreadable"])[0]
        return Check(
            "database",
            False,
            f"{path} cannot be read as an Orderly store ({first}): "
            "point ORDERLY_DB at the store, or move this file away",
        )
    orders = sum(counts.values())
    per_status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    stock = "no stock snapshot yet" if age is None else f"stock snapshot {age:.0f} s old"
    text = f"{path} exists: {orders} orders{' (' + per_status + ')' if per_status else ''}, {stock}"
    if age is not None and age > settings.max_stock_age:
        return Check(
            "database",
            False,
            f"{text}, older than ORDERLY_MAX_STOCK_AGE={settings.max_stock_age:g}: "
            "processing refuses until `orderly sync` succeeds",
        )
    return Check("database", True, text)


def _prefect(api: str | None, settings: Settings) -> Check:
    from orderly.runtime.prefect_health import why_not_answering

    if not api:
        return Check(
            "Prefect",
            True,
            "PREFECT_API_URL unset: each data-changing command starts a temporary "
            "Prefect server (about 7 s); `make server` and PREFECT_API_URL for speed and the UI",
        )
    shown = masked_url(api)
    why = why_not_answering(api, CHECK_TIMEOUT)
    if why:
        return Check(
            "Prefect",
            False,
            f"no Prefect server answers at PREFECT_API_URL={shown} ({why}): "
            "start it with `make server`, or unset PREFECT_API_URL",
        )
    from flows.handoff import worker_key

    worker = (
        "an `orderly serve` worker serves this store: commands and presses run in it"
        if worker_key(api, settings)
        else "no `orderly serve` worker serves this store with these settings: each command runs in its own process"
    )
    return Check("Prefect", True, f"the Prefect API at {shown} answers; {worker}")


def _remote(name: str, base: str | None, path: str, params: dict, key: str, variable: str, settings: Settings) -> Check:
    import httpx

    from orderly.runtime.prefect_health import failure_in_words

    if base is None:
        return Check(name, True, f"the built-in sandbox, in-process ({variable} unset)")
    url, shown = f"{base.rstrip('/')}{path}", masked_url(base)
    headers = {"Accept": "application/json"}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token}"
    try:
        answer = httpx.get(url, params=params, headers=headers, timeout=min(settings.http_timeout, CHECK_TIMEOUT))
    except (httpx.HTTPError, ValueError) as error:
        why = failure_in_words(error, CHECK_TIMEOUT)
        return Check(name, False, f"nothing answers at {shown} ({why}): start the service, or fix {variable}")
    if answer.status_code in (401, 403):
        token = "the token is refused" if settings.api_token else "it wants a token"
        return Check(name, False, f"{shown} answers {answer.status_code}: {token}: set ORDERLY_API_TOKEN")
    if answer.status_code != 200:
        return Check(
            name, False, f"{shown}{path} answers {answer.status_code}: check {variable} (the base URL, without {path})"
        )
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or key not in body:
        return Check(
            name, False, f"{shown}{path} answers, but not with the {name} JSON of the contract: check {variable}"
        )
    return Check(name, True, f"{shown} answers")


def _receiver(settings: Settings) -> Check:
    """The webhook receiver takes a signed, empty batch (`{"events":[]}`, webhook-id msg_doctor_<time>): it answers,
    and it accepts our signature. Nothing is delivered and the feed's cursor does not move."""
    import time

    import httpx

    from orderly.feed.signing import secret_key, signed_headers
    from orderly.runtime.prefect_health import failure_in_words

    shown, now = masked_url(settings.webhook_url or ""), int(time.time())
    content = b'{"events":[]}'
    headers = signed_headers(secret_key(settings.webhook_secret or ""), f"msg_doctor_{now}", now, content)
    try:
        answer = httpx.post(
            settings.webhook_url or "",
            content=content,
            headers=headers,
            timeout=min(settings.http_timeout, CHECK_TIMEOUT),
        )
    except (httpx.HTTPError, ValueError) as error:
        why = failure_in_words(error, CHECK_TIMEOUT)
        return Check(
            "webhook", False, f"nothing answers at {shown} ({why}): start the receiver, or fix ORDERLY_WEBHOOK_URL"
        )
    if answer.status_code in (401, 403):
        return Check(
            "webhook",
            False,
            f"{shown} answers {answer.status_code} to a signed batch: ORDERLY_WEBHOOK_SECRET is not the secret the "
            "receiver verifies with",
        )
    if not 200 <= answer.status_code < 300:
        return Check(
            "webhook", False, f"{shown} answers {answer.status_code} to a signed, empty batch: check the receiver"
        )
    return Check("webhook", True, f"{shown} accepts a signed, empty batch ({answer.status_code})")
