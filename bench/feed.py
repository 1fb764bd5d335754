"""The decision feed's bench: N decided orders (one event each) delivered to a loopback receiver, signed, in
batches of ORDERLY_WEBHOOK_BATCH (default 1,000). Issue 21's targets: 1M events in ≤ 10 s and ≤ 300 MB RSS.

    .venv/bin/python bench/feed.py --events 1000000

The delivering process runs the use case alone (orderly.feed.deliver, as the `deliver` task calls it), so its
time and peak RSS are the delivery's, without Prefect's start-up; the receiver (bench/feed_receiver.py) is its own
process, checks every signature and counts the events, which must be exactly 1..N in ascending order.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from localproc import free_port, stop  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"orderly-bench-feed-secret-0123456789").decode()

_DELIVER = """
import json, resource, time
t = time.perf_counter()
from orderly.feed.deliver import deliver
from orderly.settings import Settings
imported = time.perf_counter() - t
t = time.perf_counter()
done = deliver(Settings.from_env(), None, budget_s=3600)
print(json.dumps({"deliver_s": time.perf_counter() - t, "imports_s": imported, "delivered": done.delivered,
                  "problem": done.problem, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def feed_bench(work: Path, events: int, log=print) -> dict:
    import bigstore
    from run import run_monitored

    db = work / "orderly-feed.duckdb"
    started = time.perf_counter()
    bigstore.build(db, events)
    log(f"  a store of {events:,} decided orders in {time.perf_counter() - started:.1f} s")
    port = free_port()
    receiver = subprocess.Popen([sys.executable, str(ROOT / "bench" / "feed_receiver.py"), str(port), SECRET])
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/count", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
        env.update(ORDERLY_DB=str(db), ORDERLY_WEBHOOK_URL=f"{url}/hook", ORDERLY_WEBHOOK_SECRET=SECRET)
        ran = run_monitored([sys.executable, "-c", _DELIVER], env)
        inside = json.loads(ran["stdout"].strip().splitlines()[-1])
        got = httpx.get(f"{url}/count", timeout=10).json()
    finally:
        stop(receiver)
        for path in work.glob("orderly-feed.duckdb*"):
            path.unlink()
    complete = got["events"] == events and got["first"] == 1 and got["last"] == events and got["ascending"]
    result = {
        "feed_events": events,
        "feed_wall_s": round(ran["wall_s"], 2),
        "feed_deliver_s": round(inside["deliver_s"], 2),
        "feed_imports_s": round(inside["imports_s"], 2),
        "feed_peak_rss_mb": round(ran["peak_rss_mb"]),
        "feed_maxrss_mb": round(inside["maxrss_mb"]),
        "feed_batches": got["batches"],
        "feed_bad_signatures": got["bad"],
        "feed_complete": complete,
    }
    log(
        f"  delivered {got['events']:,} events in {got['batches']:,} batches: {inside['deliver_s']:.2f} s "
        f"({ran['wall_s']:.2f} s with start-up), peak RSS {ran['peak_rss_mb']:.0f} MB; every id once, in order: "
        f"{complete}; bad signatures: {got['bad']}"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="orderly-feed-") as work:
        result = feed_bench(Path(work), args.events, log=lambda m: print(m, flush=True))
    print(json.dumps(result))
    return 0 if result["feed_complete"] and not result["feed_bad_signatures"] else 1


if __name__ == "__main__":
    sys.exit(main())
