"""Opening the DuckDB file: waits (bounded) for another process's lock, and migrates the schema."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from orderly.errors import StoreBusy, StoreUnusable
from orderly.settings import store_file_problem
from orderly.store.schema import MIGRATIONS

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")

# Held by every write transaction of this process while it is open. A command that must end at once (its Prefect
# server went away, or SIGTERM: orderly.runtime.ending) takes it, so the transaction in progress finishes and no new one
# starts before the process exits. Reentrant: the ending thread itself writes the run's end.
WRITE_GATE = threading.RLock()

_HELD: set[Path] = set()  # stores this process holds open (held_open): their schema is checked already


def _is_lock_conflict(error: duckdb.Error) -> bool:
    return any(marker in str(error) for marker in _LOCK_MARKERS)


def connect(path: Path, *, lock_timeout: float = 30.0, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying while another process holds it, for at most `lock_timeout` seconds."""
    path = Path(path)
    if not read_only and not path.exists():
        # Created only where its directory exists: a mistyped ORDERLY_DB directory must not become a new store.
        problem = store_file_problem(path)
        if problem:
            raise StoreUnusable(f"ORDERLY_DB={str(path)!r} {problem}")
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as error:
            if not _is_lock_conflict(error):
                raise _unusable(path, error) from None
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"{path} is in use by another orderly process; waited {lock_timeout:g} s "
                    "(raise ORDERLY_LOCK_TIMEOUT to wait longer)"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    if path in _HELD and not read_only:
        return con  # the holder checked and migrated the schema when it opened the file
    version = schema_version(con)
    if version > len(MIGRATIONS):
        con.close()
        raise _newer(path, version)
    if not read_only:
        migrate(con)
    elif version < len(MIGRATIONS):
        # A file from an older version is upgraded on first use, even by a reader; then read as asked.
        con.close()
        connect(path, lock_timeout=max(deadline - time.monotonic(), 0.0)).close()
        return connect(path, lock_timeout=max(deadline - time.monotonic(), 0.0), read_only=True)
    return con


def _unusable(path: Path, error: duckdb.Error) -> StoreUnusable:
    """DuckDB's reason in one line: the file is not a store this version can open."""
    first = (str(error).strip().splitlines() or ["cannot be opened"])[0]
    return StoreUnusable(
        f"ORDERLY_DB={str(path)!r} cannot be opened as a store by this version ({first}): "
        "point ORDERLY_DB at the store, or move this file away"
    )


def _newer(path: Path, version: int) -> StoreUnusable:
    return StoreUnusable(
        f"ORDERLY_DB={str(path)!r} is a store of a newer Orderly (schema version {version}, "
        f"this one knows {len(MIGRATIONS)}): upgrade Orderly, or point ORDERLY_DB elsewhere"
    )


def probe(path: Path) -> None:
    """Raise StoreUnusable unless `path` opens as a store (or could be created); cheap, and before any flow
    starts. A file another process holds open is a store in use: fine here, the lock waits come later."""
    import tempfile

    path = Path(path)
    if not path.exists():
        try:  # a directory we may write in by its mode bits can still refuse a file (root on /proc, a full disk)
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as error:
            raise StoreUnusable(f"ORDERLY_DB={str(path)!r} cannot be created: {error.strerror or error}") from None
        return
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        if _is_lock_conflict(error):
            return
        raise _unusable(path, error) from None
    try:
        version = schema_version(con)
    finally:
        con.close()
    if version > len(MIGRATIONS):
        raise _newer(path, version)


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row or None. DuckDB 2.0 keeps a result open after fetchone(), blocking the next
    register() on the connection, so every read here fetches to the end."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = first_row(con, sql, params)
    return None if row is None else row[0]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'")
    if not exists:
        return 0
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_version"))


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply every migration newer than the file's version, each in its own transaction."""
    current = schema_version(con)
    for version, ddl in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        with transaction(con):
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
            con.execute(ddl)
            con.execute("INSERT INTO schema_version VALUES (?, now())", [version])


# A bulk load checkpoints every ~64 MB of WAL rather than every ~16 MB (DuckDB's default): each checkpoint
# rewrites the orders' primary-key index, so a million-order ingest spent 7.5 s loading instead of 4.8 s
# (bench/load_floor.py). Not once at the end either (1 GB): until a checkpoint, DuckDB holds what was loaded in
# memory, ~200 MB at a million orders, and that was the run's peak. A crash replays the WAL on the next open.
BULK_CHECKPOINT_THRESHOLD = "64MB"


@contextmanager
def open_store(
    path: Path, *, lock_timeout: float = 30.0, read_only: bool = False, bulk: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The store, closed (and so checkpointed) at the end. `bulk`: one connection held for many load
    transactions (an ingest), checkpointed every BULK_CHECKPOINT_THRESHOLD of WAL and when it closes."""
    con = connect(path, lock_timeout=lock_timeout, read_only=read_only)
    if bulk and not read_only:
        con.execute(f"SET checkpoint_threshold = '{BULK_CHECKPOINT_THRESHOLD}'")
    try:
        yield con
    finally:
        con.close()


@contextmanager
def held_open(path: Path, *, lock_timeout: float = 30.0) -> Iterator[None]:
    """Keep the store open across a short run's several transactions: every open_store inside reuses this
    process's open database (DuckDB caches it by path), 6 ms instead of 40-60 ms a time (measured on the seed
    data), and the file is checkpointed once, at the end. Short runs only: other processes stay out until then."""
    path = Path(path)
    con = connect(path, lock_timeout=lock_timeout)
    _HELD.add(path)
    try:
        yield
    finally:
        _HELD.discard(path)
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One unit of work: everything inside commits together or not at all."""
    with WRITE_GATE:
        con.begin()
        try:
            yield con
        except BaseException:
            con.rollback()
            raise
        con.commit()


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **tables: Any) -> Iterator[None]:
    """Arrow tables (or frames) visible to SQL under these names while the block runs."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield
    finally:
        for name in tables:
            with suppress(duckdb.TransactionException):  # the failed statement says why
                con.unregister(name)
