"""The million-order benchmark: a real `orderly run` against a loopback sandbox, measured against the floor.

    .venv/bin/python bench/run.py                       # 1,000,000 orders (make bench)
    .venv/bin/python bench/run.py --orders 100000
    .venv/bin/python bench/run.py --sizes 100000,300000,1000000

For each size N it starts (all subprocesses, all on loopback, all in a temp dir):
  1. a `prefect server` with its own PREFECT_HOME (started once for every size), so the
     flow overhead measured is the real-server one;
  2. `orderly sandbox --orders N --items M --seed S`;
  3. `orderly run` on a fresh ORDERLY_DB, polled with psutil for its peak RSS;
  4. `orderly reconcile` against the same sandbox, on a copy of the store as the full run left it: the reconcile
     at N (its counts in the copy's runs table must say N at the remote, N stored, none missing);
  5. the sandbox again with N + 1000 orders (prefix-stable: the first N are unchanged), and
     a second `orderly run`: the incremental run (default look-back, ORDERLY_LOOKBACK_ORDERS=1000);
  6. the same incremental run with ORDERLY_LOOKBACK_ORDERS=0 on a copy of the store taken before step 5: what
     the look-back costs.
Per-step times come from the Prefect task runs of each flow run (the server's own record).
The floor is the contract's rule as a plain in-memory Python loop over the same orders: tests/reference.py,
the one reference model the tests use too. The bench also checks every status, reason and recorded
explanation against it (the result must be identical).

In the same run it also measures the floors and a peer:
  - fetch_floor_s: the same order pages from the same sandbox server fetched with bare httpx + orjson, right
    after the full run; ingest_s: the orders' sync in that run, the ingest_orders task's duration (fetch, validate
    and load, overlapped: the fetch runs one chunk ahead in a thread);
  - dlt_s: dlt's rest_api source -> duckdb over a sandbox of --peer-orders (100,000) orders, when `make bench-peers`
    has made the side environment .venv-peers (dlt is not a dependency of Orderly); otherwise one line says so.

The last line printed is one JSON object; the same object, with every size's details, goes to
<temp dir>/orderly-bench-results/<timestamp>.json (`--results bench/results` keeps it in the checkout).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import reference  # noqa: E402 - the one plain statement of the rule, shared with the tests
from localproc import free_port, start_prefect_server, stop, wait_for  # noqa: E402 - tests/localproc.py

sys.path.insert(0, str(ROOT / "bench"))
from feed import feed_bench  # noqa: E402 - bench/feed.py, beside this file
from presses import incremental_through_worker, press_bench  # noqa: E402 - bench/presses.py, beside this file

BIN = Path(sys.executable).parent
ORDERLY = str(BIN / "orderly")
# Results kept in the checkout only when asked (`--results bench/results`): a bench run should not dirty the tree.
RESULTS = Path(tempfile.gettempdir()) / "orderly-bench-results"

# Prefect task name -> pipeline step (tasks/ingest.py, tasks/process.py, tasks/report.py). Each ingest task is one
# use case of orderly.ingest: fetch, validate and load happen inside it (overlapped), so they are not told apart.
STEP_OF_TASK = {
    "sync_stock": "stock",
    "ingest_orders": "ingest",
    "process_new_orders": "process",
    "publish_report": "report",
    "publish_reconciliation": "report",
    "reconcile_orders": "reconcile",
}
STEPS = ("stock", "ingest", "process", "report", "reconcile")


# ---- subprocesses --------------------------------------------------------------------------


def start_sandbox(orders: int, items: int, seed: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            ORDERLY,
            "sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--orders",
            str(orders),
            "--items",
            str(items),
            "--seed",
            str(seed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health", process, timeout=60)
    return process, url


def run_monitored(args: list[str], env: dict, poll: float = 0.05) -> dict:
    """Run a command to the end; its wall time and the peak RSS of it and its descendants."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peak = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            rss = watched.memory_info().rss
            for child in watched.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(poll)
    out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {process.returncode}:\n{out}\n{err}")
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "stdout": out, "stderr": err}


# ---- what the server recorded --------------------------------------------------------------


def latest_run_id(db: Path) -> str:
    return latest_run(db)["run_id"]


def latest_run(db: Path) -> dict:
    """The store's newest row of the runs table (its counters: orders_fetched, reconcile_missing, ...)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        cursor = con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchall()[0], strict=True))
    finally:
        con.close()


def copy_store(db: Path, to: Path) -> Path:
    """A copy of the DuckDB file (and its WAL, if one was left) as no command holds it: the store as it is now."""
    for suffix in ("", ".wal"):
        source = db.with_name(db.name + suffix)
        if source.exists():
            shutil.copyfile(source, to.with_name(to.name + suffix))
    return to


def step_times(api_url: str, flow_run_id: str, settle: float = 10.0) -> dict:
    """Seconds per step summed over the flow run's task runs, and the flow run's own duration.

    Plain REST calls (not Prefect's client, whose settings are fixed once imported)."""
    import httpx

    with httpx.Client(base_url=api_url.rstrip("/"), timeout=30) as client:
        deadline = time.monotonic() + settle
        previous = None
        while True:  # task-run states reach the server as events: wait until they stop changing
            response = client.post(
                "/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}
            )
            response.raise_for_status()
            runs = response.json()
            done = [r for r in runs if (r.get("state") or {}).get("type") in _FINAL and r.get("end_time")]
            snapshot = (len(runs), len(done))
            if (snapshot == previous and len(done) == len(runs)) or time.monotonic() > deadline:
                break
            previous = snapshot
            time.sleep(0.5)
        response = client.get(f"/flow_runs/{flow_run_id}")
        flow_s = response.json().get("total_run_time") if response.status_code == 200 else None
    steps = dict.fromkeys(STEPS, 0.0)
    calls = dict.fromkeys(STEPS, 0)
    for r in runs:
        step = STEP_OF_TASK.get(_task_name(r))
        if step is None:
            continue
        steps[step] += float(r.get("total_run_time") or 0.0)
        calls[step] += 1
    # The orders' sync is one task now (ingest_orders: fetch one chunk ahead in a thread, validate, load): its
    # duration is the ingest, overlapped time counted once. None when the flow had no such task.
    ingest_s = steps["ingest"] if calls["ingest"] else None
    return {"steps": steps, "task_calls": calls, "flow_s": flow_s, "ingest_s": ingest_s}


_FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _task_name(run: dict) -> str:
    for field in ("task_key", "name"):
        name = (run.get(field) or "").rsplit("-", 1)[0]
        if name in STEP_OF_TASK:
            return name
    return ""


# ---- the fetch floor and a peer ---------------------------------------------------------------


def fetch_floor(url: str, page_size: int = 1000, decode: str = "orjson") -> dict:
    """The same order pages from the same server with nothing but httpx and a decoder: one client, pages in a row
    (each needs the last one's next_after_id), each body decoded and dropped. What a sync cannot go below.

    `decode`: "orjson" (the floor's definition: dicts), "msgspec" (typed structs, the decoder Orderly's clean
    pages go through) or "none" (bytes only; the cursor read from the body's end: the HTTP floor)."""
    import httpx

    decoder = _floor_decoder(decode)
    orders = pages = 0
    after_id = 0
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            response = client.get("/orders", params={"after_id": after_id, "limit": page_size})
            response.raise_for_status()
            count, cursor = decoder(response.content)
            orders += count
            pages += 1
            if cursor is None:
                break
            after_id = cursor
    return {"fetch_floor_s": time.perf_counter() - started, "orders": orders, "pages": pages}


def _floor_decoder(decode: str):
    """body -> (orders on the page, next_after_id)."""
    if decode == "orjson":
        import orjson

        def with_orjson(content: bytes) -> tuple[int, int | None]:
            body = orjson.loads(content)
            return len(body["orders"]), body["next_after_id"]

        return with_orjson
    if decode == "msgspec":
        typed = msgspec.json.Decoder(_FloorPage)

        def with_msgspec(content: bytes) -> tuple[int, int | None]:
            body = typed.decode(content)
            return len(body.orders), body.next_after_id

        return with_msgspec

    def bytes_only(content: bytes) -> tuple[int, int | None]:
        tail = content[content.rfind(b'"next_after_id":') + 16 :].rstrip(b"} \n")
        return content.count(b'"id":'), None if tail == b"null" else int(tail)

    return bytes_only


# The contract's orders page as typed structs: the msgspec floor's decode, independent of Orderly's code. Built with
# defstruct: this module's annotations are strings, which msgspec resolves only in an importable module.
_FloorLine = msgspec.defstruct("FloorLine", [("inventory_id", int), ("quantity", int)], gc=False)
_FloorOrder = msgspec.defstruct(
    "FloorOrder", [("id", int), ("placed_at", str), ("customer_id", str), ("items", list[_FloorLine])], gc=False
)
_FloorPage = msgspec.defstruct("FloorPage", [("orders", list[_FloorOrder]), ("next_after_id", int | None)], gc=False)


def sandbox_pages_s(orders: int, items: int, seed: int, page_size: int = 1000) -> float:
    """The sandbox server's own work for the same pages, in this process: generating each page's bytes (what its
    handler does per request, without HTTP). The rest of the HTTP floor is the two ends' HTTP and the loopback."""
    from orderly.sandbox.generated import GeneratedDataSet

    data = GeneratedDataSet(orders, items, seed)
    data.orders_page_json(0, page_size)  # the first page builds the generator's tables: not per-page work
    started = time.perf_counter()
    after_id = 0
    while True:
        body = data.orders_page_json(after_id, page_size)
        tail = body[body.rfind(b'"next_after_id":') + 16 : -1]
        if tail == b"null":
            return time.perf_counter() - started
        after_id = int(tail)


def prefect_floor(env: dict, tries: int = 2) -> float:
    """The wall time of bench/prefect_floor.py (import Prefect, one flow calling one task, exit), the fastest of
    `tries`: what any flow command costs on this machine and server before it does any work."""
    return min(
        run_monitored([sys.executable, str(ROOT / "bench" / "prefect_floor.py")], env)["wall_s"] for _ in range(tries)
    )


PEERS = ROOT / ".venv-peers"  # `make bench-peers`: dlt in an environment of its own, never a dependency of Orderly


def dlt_peer(orders: int, items: int, seed: int, work: Path, log=print) -> dict | None:
    """dlt's rest_api source -> duckdb over the same sandbox (orders and stock), timed as one command; None when
    the side environment is absent."""
    python = PEERS / "bin" / "python"
    if not python.exists():
        log(f"  dlt: not measured ({PEERS.name} is absent; `make bench-peers` creates it)")
        return None
    sandbox, url = start_sandbox(orders, items, seed)
    try:
        log(f"  dlt rest_api -> duckdb: {orders:,} orders at the source ...")
        result = run_monitored(
            [str(python), str(ROOT / "bench" / "peer_dlt.py"), "--url", url, "--work", str(work / "dlt")],
            {**os.environ},
        )
    finally:
        stop(sandbox)
    loaded = json.loads(result["stdout"].strip().splitlines()[-1])
    log(f"    {result['wall_s']:.1f} s wall, peak RSS {result['peak_rss_mb']:.0f} MB; {loaded}")
    return {
        "dlt_s": round(result["wall_s"], 2),
        "dlt_peak_rss_mb": round(result["peak_rss_mb"], 1),
        "dlt_orders": orders,
        "dlt_loaded": loaded,
    }


# ---- the floor -----------------------------------------------------------------------------


def order_dicts(dataset, after_id: int = 0) -> list[tuple[int, dict[int, int]]]:
    """The orders with id > after_id as (id, {item: summed quantity}), ascending."""
    out = []
    while True:
        page = dataset.orders_page(after_id, 1000)
        out.extend(
            (rec["id"], reference.demand_of((line["inventory_id"], line["quantity"]) for line in rec["items"]))
            for rec in page["orders"]
        )
        if page["next_after_id"] is None:
            return out
        after_id = page["next_after_id"]


def stock_dict(dataset) -> dict[int, int]:
    return {int(i): int(q) for i, q in zip(dataset.inventory_ids.tolist(), dataset.quantities.tolist(), strict=True)}


def floor_model(n: int, extra: int, items: int, seed: int) -> dict:
    """Expected statuses after run 1 (N orders, stock(N)) and run 2 (+extra orders, stock(N+extra)).

    Also the floor time: the rule alone over the N orders of run 1, timed.
    """
    from orderly.sandbox import generate

    first = generate(n, items, seed)
    orders = order_dicts(first)
    available = stock_dict(first)
    started = time.perf_counter()
    decided = reference.decide(orders, available)
    floor_s = time.perf_counter() - started
    second = generate(n + extra, items, seed)
    new_orders = order_dicts(second, orders[-1][0] if orders else 0)  # only the orders run 2 adds
    # run 2's availability: the new on-hand minus what run 1's PROCESSED orders hold
    available2 = stock_dict(second)
    by_id = dict(orders)
    for order_id, reason, _ in decided:
        if reason is None:
            for item, qty in by_id[order_id].items():
                available2[item] -= qty
    decided2 = reference.decide(new_orders, available2)
    return {
        "run1": decided,
        "run2": decided2,
        "all": decided + decided2,
        "floor_s": floor_s,
        "orders1": len(orders),
        "orders2": len(new_orders),
    }


def check_statuses(db: Path, expected: list[tuple[int, str | None, dict | None]]) -> str | None:
    """None when the store's statuses, reasons and recorded explanations equal the floor model's, else a
    description of the first difference."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT order_id, status, reason FROM orders ORDER BY order_id").fetchall()
        details = dict(
            con.execute("SELECT order_id, details FROM status_changes WHERE to_status = 'FAILED'").fetchall()
        )
    finally:
        con.close()
    if len(rows) != len(expected):
        return f"{len(rows)} orders in the store, the model has {len(expected)}"
    for (oid, status, reason), (eid, ereason, explanation) in zip(rows, expected, strict=False):
        want = ("PROCESSED", None) if ereason is None else ("FAILED", ereason)
        if oid != eid or (status, reason) != want:
            return f"order {oid}: store says {status}/{reason}, model says order {eid} {want[0]}/{want[1]}"
        recorded = details.get(oid)
        if (None if recorded is None else json.loads(recorded)) != explanation:
            return f"order {oid}: recorded explanation {recorded}, model says {explanation}"
    return None


# ---- one size ------------------------------------------------------------------------------


def bench_size(
    n: int, items: int, seed: int, extra: int, api_url: str, prefect_home: Path, work: Path, verify: bool, log=print
) -> dict:
    db = work / f"orderly-{n}.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_DB=str(db), PREFECT_API_URL=api_url, PREFECT_HOME=str(prefect_home), PREFECT_LOGGING_LEVEL="WARNING"
    )
    runs = {}
    floor = None

    def measured(label: str, command: str, run_env: dict, orders: int) -> dict:
        """One `orderly <command>` to the end; its wall, peak RSS, the server's task times and the store's runs row."""
        log(f"  {label}: {orders:,} orders at the source ...")
        result = run_monitored([ORDERLY, command], run_env)
        store = Path(run_env["ORDERLY_DB"])
        row = latest_run(store)
        timing = step_times(api_url, row["run_id"])
        runs[label] = {
            "label": label,
            "orders_at_source": orders,
            **timing,
            "counters": row,
            "wall_s": result["wall_s"],
            "peak_rss_mb": result["peak_rss_mb"],
            "summary": result["stdout"].strip().splitlines()[-1] if result["stdout"].strip() else "",
        }
        log(f"    {result['wall_s']:.1f} s wall, peak RSS {result['peak_rss_mb']:.0f} MB; {runs[label]['summary']}")
        return runs[label]

    # The full run at N, the fetch floor on the same pages, and the reconcile at N on a copy of that store.
    sandbox, url = start_sandbox(n, items, seed)
    try:
        env.update(ORDERLY_ORDERS_URL=url, ORDERLY_WAREHOUSE_URL=url)
        measured("full", "run", env, n)
        floor = fetch_floor(url)  # the same pages from the same server, right after the run
        log(f"    fetch floor (httpx + orjson): {floor['orders']:,} orders in {floor['fetch_floor_s']:.2f} s")
        floors = {
            f"fetch_floor_{name}_s": round(fetch_floor(url, decode=name)["fetch_floor_s"], 2)
            for name in ("msgspec", "none")
        }
        floors["sandbox_pages_s"] = round(sandbox_pages_s(n, items, seed), 2)
        log(
            f"    beside it: httpx + msgspec {floors['fetch_floor_msgspec_s']:.2f} s, httpx alone (no decode) "
            f"{floors['fetch_floor_none_s']:.2f} s, the sandbox generating the pages {floors['sandbox_pages_s']:.2f} s"
        )
        reconciled = copy_store(db, work / f"orderly-{n}-reconcile.duckdb")
        measured("reconcile", "reconcile", {**env, "ORDERLY_DB": str(reconciled)}, n)
    finally:
        stop(sandbox)
    found = {
        k: int(runs["reconcile"]["counters"].get(f"reconcile_{k}") or 0)
        for k in ("remote", "stored", "missing", "added", "changed")
    }
    log(f"    reconcile found {found}")
    if (found["remote"], found["stored"], found["missing"]) != (n, n, 0):
        raise RuntimeError(
            f"the reconcile at N={n:,} recorded {found} in the store's runs table; expected "
            f"remote == stored == {n:,} and missing == 0: the full run lost orders, or the reconcile "
            "miscounts"
        )

    # The incremental run (default look-back), and the same one without the look-back on a copy taken before it.
    sandbox, url = start_sandbox(n + extra, items, seed)
    try:
        env.update(ORDERLY_ORDERS_URL=url, ORDERLY_WAREHOUSE_URL=url)
        before = copy_store(db, work / f"orderly-{n}-nolookback.duckdb")
        through_worker = copy_store(db, work / f"orderly-{n}-worker.duckdb")
        measured("incremental", "run", env, n + extra)
        measured(
            "incremental_nolookback",
            "run",
            {**env, "ORDERLY_DB": str(before), "ORDERLY_LOOKBACK_ORDERS": "0"},
            n + extra,
        )
        inc_worker = incremental_through_worker({**env, "ORDERLY_DB": str(through_worker)}, work, log)
    finally:
        stop(sandbox)
    floor_prefect = prefect_floor(env)
    log(f"  Prefect's floor (import, one flow with one task, exit): {floor_prefect:.2f} s")
    log("  floor model ...")
    model = floor_model(n, extra, items, seed)
    mismatch = None
    if verify:  # both incremental stores must hold the same decisions: the look-back changes what is read, not decided
        mismatch = check_statuses(db, model["all"])
        if mismatch is None:
            mismatch = check_statuses(before, model["all"])
            mismatch = mismatch and f"without the look-back: {mismatch}"
        if mismatch is None:
            mismatch = check_statuses(through_worker, model["all"])
            mismatch = mismatch and f"through the worker: {mismatch}"
        log("    statuses equal the floor model's" if mismatch is None else f"    MISMATCH: {mismatch}")
    full, inc, nolb, rec = runs["full"], runs["incremental"], runs["incremental_nolookback"], runs["reconcile"]
    inc_ingest = inc["ingest_s"] and round(inc["ingest_s"], 3)
    nolb_ingest = nolb["ingest_s"] and round(nolb["ingest_s"], 3)
    return {
        "orders": n,
        "items": items,
        "seed": seed,
        "extra": extra,
        "full_run_s": round(full["wall_s"], 2),
        "peak_rss_mb": round(max(full["peak_rss_mb"], inc["peak_rss_mb"]), 1),
        "process_s": round(full["steps"]["process"], 3),
        "floor_s": round(model["floor_s"], 3),
        "incremental_s": round(sum(inc["steps"].values()), 3),
        "incremental_wall_s": round(inc["wall_s"], 2),
        **inc_worker,  # issue 18: `orderly run` handed to a warm worker, and that worker's first command
        "ingest_s": full["ingest_s"] and round(full["ingest_s"], 2),
        "fetch_floor_s": round(floor["fetch_floor_s"], 2),
        **floors,
        "prefect_floor_s": round(floor_prefect, 2),
        # issue 17: the look-back's cost (the same incremental run with ORDERLY_LOOKBACK_ORDERS=0, same start store)
        "incremental_ingest_s": inc_ingest,
        "incremental_orders_fetched": int(inc["counters"].get("orders_fetched") or 0),
        "incremental_nolookback_wall_s": round(nolb["wall_s"], 2),
        "incremental_nolookback_ingest_s": nolb_ingest,
        "incremental_nolookback_orders_fetched": int(nolb["counters"].get("orders_fetched") or 0),
        "lookback_cost_s": None if inc_ingest is None or nolb_ingest is None else round(inc_ingest - nolb_ingest, 3),
        # issue 17: `orderly reconcile` at N, on a copy of the store the full run left
        "reconcile_wall_s": round(rec["wall_s"], 2),
        "reconcile_task_s": round(rec["steps"]["reconcile"], 2),
        "reconcile_peak_rss_mb": round(rec["peak_rss_mb"], 1),
        "reconcile_found": found,
        "steps": {label: {k: round(v, 3) for k, v in r["steps"].items()} for label, r in runs.items()},
        "task_calls": {label: r["task_calls"] for label, r in runs.items()},
        "flow_s": {label: r["flow_s"] and round(r["flow_s"], 2) for label, r in runs.items()},
        "wall_s": {label: round(r["wall_s"], 2) for label, r in runs.items()},
        "verified": None if not verify else mismatch is None,
        "mismatch": mismatch,
    }


ROW_LABELS = (
    ("full", "full"),
    ("incremental", "incremental"),
    ("incremental_nolookback", "inc. no LB"),
    ("reconcile", "reconcile"),
)


def table(results: list[dict]) -> str:
    lines = []
    head = (
        f"{'orders':>10} {'run':>12} {'stock':>7} {'ingest':>7} {'process':>8} {'report':>7} {'recon.':>7} "
        f"{'steps':>7} {'wall':>7} {'rows/s':>9} {'RSS MB':>7}"
    )
    lines.append(head)
    lines.append("-" * len(head))
    for r in results:
        for label, shown in ROW_LABELS:
            s = r["steps"][label]
            total = sum(s.values())
            wall = r["wall_s"][label]
            rows = r.get("extra", 1000) if label.startswith("incremental") else r["orders"]
            rss = {"full": r["peak_rss_mb"], "reconcile": r["reconcile_peak_rss_mb"]}.get(label, "")
            lines.append(
                f"{r['orders']:>10,} {shown:>12} {s['stock']:>7.2f} {s['ingest']:>7.2f} {s['process']:>8.2f} "
                f"{s['report']:>7.2f} {s['reconcile']:>7.2f} {total:>7.2f} {wall:>7.1f} {rows / wall:>9,.0f} {rss:>7}"
            )
    lines.append("")
    lines.append(
        f"{'orders':>10} {'process_s':>10} {'floor_s':>8} {'ratio':>6} {'ingest_s':>9} "
        f"{'fetch_floor_s':>14} {'ratio':>6} {'inc. wall':>9} {'prefect_floor_s':>15} "
        f"{'steps per 100k':>15} {'verified':>9}"
    )
    for r in results:
        ratio = r["process_s"] / r["floor_s"] if r["floor_s"] else float("nan")
        ingest = r.get("ingest_s") or float("nan")
        fetch_ratio = ingest / r["fetch_floor_s"] if r.get("fetch_floor_s") else float("nan")
        lines.append(
            f"{r['orders']:>10,} {r['process_s']:>10.2f} {r['floor_s']:>8.2f} {ratio:>6.2f} {ingest:>9.2f} "
            f"{r['fetch_floor_s']:>14.2f} {fetch_ratio:>6.2f} {r['incremental_wall_s']:>9.2f} "
            f"{r['prefect_floor_s']:>15.2f} "
            f"{sum(r['steps']['full'].values()) / r['orders'] * 1e5:>15.2f} {r['verified']!s:>9}"
        )
    lines.append("")
    lines.append(
        f"{'orders':>10} {'inc. ingest':>12} {'no LB ingest':>13} {'lookback_cost_s':>16} "
        f"{'fetched (LB / no LB)':>21} {'inc. wall / no LB':>18} {'reconcile wall':>15} {'task':>7} "
        f"{'RSS MB':>7} {'remote/stored/missing':>22}"
    )
    for r in results:
        nan = float("nan")
        found = r["reconcile_found"]
        lines.append(
            f"{r['orders']:>10,} {r['incremental_ingest_s'] or nan:>12.2f} "
            f"{r['incremental_nolookback_ingest_s'] or nan:>13.2f} "
            f"{r['lookback_cost_s'] if r['lookback_cost_s'] is not None else nan:>16.2f} "
            f"{str(r['incremental_orders_fetched']) + ' / ' + str(r['incremental_nolookback_orders_fetched']):>21} "
            f"{str(r['incremental_wall_s']) + ' / ' + str(r['incremental_nolookback_wall_s']):>18} "
            f"{r['reconcile_wall_s']:>15.2f} {r['reconcile_task_s']:>7.2f} {r['reconcile_peak_rss_mb']:>7.1f} "
            f"{'/'.join(str(found[k]) for k in ('remote', 'stored', 'missing')):>22}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the data set (default 1,000,000)")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated sizes, e.g. 100000,300000,1000000")
    parser.add_argument("--items", type=int, default=50_000, help="inventory items (default 50,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--extra", type=int, default=1000, help="orders added for the incremental run")
    parser.add_argument("--no-verify", action="store_true", help="skip checking statuses against the floor model")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, server log)")
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"where the JSON record goes (default {RESULTS}; bench/results keeps it in the checkout)",
    )
    parser.add_argument(
        "--presses",
        type=int,
        default=500,
        help="presses of the page's buttons through the worker, on the seed (default 500; 0 skips)",
    )
    parser.add_argument(
        "--feed-events",
        type=int,
        default=1_000_000,
        help="decision events delivered to a loopback webhook receiver (default 1,000,000; 0 skips)",
    )
    parser.add_argument(
        "--peer-orders",
        type=int,
        default=100_000,
        help="orders for the dlt peer (default 100,000; needs `make bench-peers`; 0 skips it)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.orders]

    work = Path(tempfile.mkdtemp(prefix="orderly-bench-"))
    home = work / "prefect-home"
    home.mkdir()
    print(f"bench: sizes {sizes}, {args.items:,} items, seed {args.seed}; work dir {work}", flush=True)
    started = time.perf_counter()
    server, api = start_prefect_server(home)
    print(f"prefect server up in {time.perf_counter() - started:.1f} s at {api}", flush=True)
    results = []
    peer = presses = fed = None
    try:
        for n in sizes:
            print(f"N = {n:,}", flush=True)
            results.append(
                bench_size(
                    n,
                    args.items,
                    args.seed,
                    args.extra,
                    api,
                    home,
                    work,
                    not args.no_verify,
                    log=lambda m: print(m, flush=True),
                )
            )
            for db in work.glob("orderly-*.duckdb*"):  # a million-order file is ~100 MB: keep the disk tidy
                shutil.rmtree(db) if db.is_dir() else db.unlink()  # a directory: a worker's exchange files
        if args.presses:
            print(f"presses through the worker, on the seed: {args.presses}", flush=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
            env.update(PREFECT_API_URL=api, PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING")
            presses = press_bench(env, work, args.presses, log=lambda m: print(m, flush=True))
        if args.feed_events:
            print(f"the decision feed: {args.feed_events:,} events to a loopback receiver", flush=True)
            fed = feed_bench(work, args.feed_events, log=lambda m: print(m, flush=True))
        if args.peer_orders:
            print(f"peer at {args.peer_orders:,} orders", flush=True)
            peer = dlt_peer(args.peer_orders, args.items, args.seed, work, log=lambda m: print(m, flush=True))
    finally:
        stop(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    headline = {
        k: results[-1][k]
        for k in (
            "orders",
            "full_run_s",
            "peak_rss_mb",
            "process_s",
            "floor_s",
            "incremental_s",
            "incremental_wall_s",
            "incremental_worker_wall_s",
            "ingest_s",
            "fetch_floor_s",
            "fetch_floor_msgspec_s",
            "fetch_floor_none_s",
            "sandbox_pages_s",
            "prefect_floor_s",
            "incremental_ingest_s",
            "incremental_nolookback_wall_s",
            "incremental_nolookback_ingest_s",
            "lookback_cost_s",
            "reconcile_wall_s",
            "reconcile_task_s",
            "reconcile_peak_rss_mb",
        )
    }
    # The issue 19 ratios, within one run: ingest against the fetch floor, process against the reference loop.
    headline["ingest_over_fetch_floor"] = round(headline["ingest_s"] / headline["fetch_floor_s"], 2)
    headline["process_over_floor"] = round(headline["process_s"] / headline["floor_s"], 2)
    if presses is not None:
        headline.update(
            {k: presses[k] for k in ("press_p50_s", "press_p95_s", "cli_process_s", "worker_rss_growth_mb")}
        )
    if fed is not None:
        headline.update(fed)
    if peer is not None:
        headline["dlt_s"] = peer["dlt_s"]
        print(
            f"dlt rest_api -> duckdb, {peer['dlt_orders']:,} orders and the stock: {peer['dlt_s']:.1f} s wall, "
            f"peak RSS {peer['dlt_peak_rss_mb']:.0f} MB"
        )
    record = {
        **headline,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "sizes": results,
        "peer": peer,
        "worker": presses,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = args.results / f"{stamp}.json"
    kept.write_text(json.dumps(record, indent=2) + "\n")
    print(f"the record: {kept}")
    print(json.dumps(headline))
    return 0 if all(r["verified"] is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
