"""Where the Orderly worker and its callers exchange a run's parameters and outcome: files beside the store.

Prefect keeps a background task's parameters and result in its local result storage, $PREFECT_HOME/storage by
default, so a caller and a worker with different PREFECT_HOMEs would not find each other's files. They share the
store's filesystem anyway (they share the store), so the exchange lives beside it. Free of Prefect: it must run
before Prefect's import, which reads its settings once.
"""

from __future__ import annotations

import os
from pathlib import Path


def storage_beside(db_path: Path) -> Path:
    return Path(f"{db_path}.worker")


def share_storage(db_path: Path) -> None:
    """Point Prefect's local result storage beside the store (unless the operator chose one), before Prefect is
    imported."""
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(storage_beside(db_path).absolute()))
