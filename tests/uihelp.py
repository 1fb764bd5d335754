"""Helpers for the web page's tests: start `orderly ui` as a real process, and the seed table as the API shows it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ORDERLY, ROOT, SEED_TABLE, UNKNOWN, free_port, stop, wait_for

__all__ = ["UiProcess", "seed_rows", "stop"]


def seed_rows() -> list[dict]:
    """The seed's orders table, as /api/orders lists it."""
    return [
        {
            "order_id": oid,
            "status": status,
            "items": items,
            "total_qty": qty,
            "reason": None
            if status == "PROCESSED"
            else ("UNKNOWN_INVENTORY" if oid in UNKNOWN else "INSUFFICIENT_STOCK"),
        }
        for oid, (items, qty, status) in SEED_TABLE.items()
    ]


class UiProcess:
    """`orderly ui --port N [args]` on loopback; `url`, and its stderr (for what it logs) in `log`."""

    def __init__(self, env: dict, log_dir: Path, *args: str, host: str = "127.0.0.1", timeout: float = 60) -> None:
        self.port = free_port()
        self.log = Path(log_dir) / f"ui-{self.port}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [ORDERLY, "ui", "--host", host, "--port", str(self.port), *args],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_for(f"{self.url}/api/config", self.process, timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> str:
        stop(self.process)
        return self.log.read_text()
