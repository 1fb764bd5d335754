"""The command's settings, read once, and the store read by a query command (read-only, an absent store empty)."""

from __future__ import annotations

from typing import Any

from orderly import settings as _settings
from orderly.cli.output import err
from orderly.settings import Settings


def settings() -> Settings:
    """The command's settings, read and checked once (orderly.settings.current): a bad one is a SettingsError."""
    return _settings.current()


def read(query, *args: Any, note: bool = True) -> Any:
    """Run a read query. A store that does not exist yet reads as None (empty), and says so on stderr."""
    from orderly.store import open_store

    current = settings()
    if not current.db_path.exists():
        if note:
            err.print(f"note: {no_database()}", markup=False)
        return None
    with open_store(current.db_path, lock_timeout=current.lock_timeout, read_only=True) as con:
        return query(con, *args)


def no_database() -> str:
    return f"no database at {settings().db_path.absolute()} (ORDERLY_DB); run `orderly sync` first"
