"""The page's read path: a private copy of the DuckDB file, refreshed when the file changes.

Why a copy: a pipeline run holds the DuckDB file lock while it writes (a million-order Process All or Reset
State holds it for seconds), and while it does no other process can open the file at all. Reading a private
copy, the page answers during a run (with the data as of the last copy, flagged stale), and a writer is kept
out only while a copy is made (about 20 ms for the 37 MB of a million orders), not for every query.
A copy is taken under DuckDB's own shared lock (a read-only connection on the file), so it is never torn;
it is made again only when the file (or its WAL) changed, by one request while the others answer at once.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from orderly.errors import StoreBusy
from orderly.store import connect

T = TypeVar("T")

REFRESH_WAIT_S = 0.2  # a copy exists: wait this long for a writer, then answer from the copy (stale)
FIRST_WAIT_S = 5.0  # no copy yet: there is nothing else to answer from, so wait longer
BUSY_MEMORY_S = 1.0  # after a refresh found the store busy, the next ones within this time do not wait


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class _Copy:
    path: Path
    stamp: tuple
    made_at: float  # wall clock, for "as of"
    con: duckdb.DuckDBPyConnection
    users: int = 0
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            done = self.retired and self.users == 0
        if done:
            self._drop()

    def retire(self) -> None:
        with self.lock:
            self.retired = True
            done = self.users == 0
        if done:
            self._drop()

    def _drop(self) -> None:
        self.con.close()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Read:
    """A query's answer and how fresh it is: `stale` means the store has changed since `as_of` (a run is
    writing) and the page shows the data as of that time."""

    value: Any
    exists: bool
    as_of: float | None = None
    stale: bool = False


class StoreReader:
    """Runs read queries (orderly.store.queries) on the latest private copy of the store."""

    def __init__(self, db_path: Path, *, refresh_wait: float = REFRESH_WAIT_S, first_wait: float = FIRST_WAIT_S):
        self.db_path = Path(db_path)
        self.refresh_wait = refresh_wait
        self.first_wait = first_wait
        self._dir = Path(tempfile.mkdtemp(prefix="orderly-ui-"))
        atexit.register(shutil.rmtree, self._dir, ignore_errors=True)  # also when the server did not shut down
        self._names = itertools.count(1)
        self._refreshing = threading.Lock()  # one refresh at a time
        self._state = threading.Lock()  # guards _current
        self._current: _Copy | None = None
        self._busy_at = float("-inf")

    def _stamp(self) -> tuple | None:
        main = _stat(self.db_path)
        return None if main is None else (main, _stat(self.db_path.with_name(self.db_path.name + ".wal")))

    def read(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> Read:
        """`query(con)` on the freshest copy there is; StoreBusy only when there is no copy at all and a writer
        held the file for FIRST_WAIT_S."""
        with self._copy() as (copy, stale):
            if copy is None:
                return Read(None, exists=False)
            cursor = copy.con.cursor()  # one connection per thread on the copy's database
            try:
                return Read(query(cursor), exists=True, as_of=copy.made_at, stale=stale)
            finally:
                cursor.close()

    @contextmanager
    def _copy(self) -> Iterator[tuple[_Copy | None, bool]]:
        copy, stale = self._refreshed()
        if copy is None:
            yield None, False
            return
        try:
            yield copy, stale
        finally:
            copy.release()

    def _refreshed(self) -> tuple[_Copy | None, bool]:
        """The current copy (with one user taken) and whether it is stale; refreshed first if the store changed
        since it was made. While one request refreshes, the others answer from the copy they have (stale)."""
        stamp = self._stamp()
        if stamp is None:
            return None, False
        with self._state:
            current = self._current
            if current is not None and current.stamp == stamp:
                return self._take(current), False
        if current is None:
            self._refreshing.acquire()  # nothing to answer from: wait for whoever makes the first copy
        elif not self._refreshing.acquire(blocking=False):
            with self._state:  # taken under the state lock: the refresher may be retiring `current` right now
                return self._take(self._current), True
        try:
            with self._state:
                current = self._current
            stamp = self._stamp()
            if stamp is None:
                return None, False
            if current is not None and current.stamp == stamp:  # another request refreshed it meanwhile
                return self._take(current), False
            try:
                fresh = self._make_copy(self._wait(current))
            except StoreBusy:
                self._busy_at = time.monotonic()
                if current is None:
                    raise
                return self._take(current), True
            with self._state:
                self._current = fresh
                taken = self._take(fresh)
            if current is not None:
                current.retire()
            return taken, False
        finally:
            self._refreshing.release()

    def _wait(self, current: _Copy | None) -> float:
        """How long to wait for a writer: long with nothing to show; not at all right after the store was busy
        (a long write: every request would wait again for nothing), else briefly (a write about to commit)."""
        if current is None:
            return self.first_wait
        return 0.0 if time.monotonic() - self._busy_at < BUSY_MEMORY_S else self.refresh_wait

    @staticmethod
    def _take(copy: _Copy) -> _Copy:
        with copy.lock:
            copy.users += 1
        return copy

    def _open_source(self, wait: float) -> duckdb.DuckDBPyConnection:
        """A read-only connection on the store (DuckDB's shared lock), trying every 20 ms for `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return connect(self.db_path, lock_timeout=0, read_only=True)
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _make_copy(self, wait: float) -> _Copy:
        source = self._open_source(wait)  # no writer can change the file while this is open
        try:
            stamp = self._stamp()
            target = self._dir / f"snapshot-{next(self._names)}.duckdb"
            wal = self.db_path.with_name(self.db_path.name + ".wal")
            # The WAL first: closing any descriptor of the main file drops this process's lock on it.
            if wal.exists():
                shutil.copyfile(wal, target.with_name(target.name + ".wal"))
            shutil.copyfile(self.db_path, target)
            made_at = time.time()
        finally:
            source.close()
        return _Copy(target, stamp, made_at, duckdb.connect(str(target), read_only=True))

    def close(self) -> None:
        with self._refreshing, self._state:
            if self._current is not None:
                self._current.retire()
                self._current = None
        shutil.rmtree(self._dir, ignore_errors=True)


def busy_message(db_path: Path) -> str:
    return f"the store {db_path} is busy: a run is writing and this page has no copy of it yet; try again shortly"


__all__ = ["Read", "StoreBusy", "StoreReader", "busy_message"]
