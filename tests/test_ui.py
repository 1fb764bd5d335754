"""`orderly ui` on the seed, end to end over loopback HTTP: the JSON API, its refusals, the two buttons (Prefect
deployment runs when `orderly serve` serves them, the flow run by the page itself otherwise; one at a time),
and the page in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import ORDERLY, ROOT, pause_schedule, run_cli, stop
from uihelp import UiProcess, seed_rows

TOKEN = "ui-token-5d1f8e2b9c7a4e60"
DEPLOYMENTS = {"process": "process-all/process-all", "reset": "reset-state/reset-state"}


@pytest.fixture(scope="module")
def seeded(prefect_server, tmp_path_factory):
    """One `orderly run` on the seed sandbox into a fresh store, and `orderly ui` on it."""
    tmp = tmp_path_factory.mktemp("ui")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_DB=str(tmp / "orderly.duckdb"),
        PREFECT_API_URL=prefect_server["api_url"],
        PREFECT_HOME=prefect_server["home"],
    )
    run_cli(["run"], env)
    ui = UiProcess(env, tmp)
    try:
        yield {"env": env, "url": ui.url, "tmp": tmp, "api": prefect_server["api_url"], "ui": ui}
    finally:
        ui.stop()


@pytest.fixture(scope="module")
def served(seeded):
    """`orderly serve --no-worker` on the same store, so the buttons start its deployments (the worker's presses
    are test_worker's); ready once Prefect says so."""
    env = {**seeded["env"], "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    with open(seeded["tmp"] / "serve.log", "w") as log:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            [ORDERLY, "serve", "--no-worker"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not all(_deployment(seeded["api"], name).get("status") == "READY" for name in DEPLOYMENTS.values()):
            if process.poll() is not None:
                raise RuntimeError(f"orderly serve exited: {(seeded['tmp'] / 'serve.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("the deployments were not served within 90 s")
            time.sleep(0.5)
        # The pipeline's schedule is not under test here: a scheduled run between two presses would decide the
        # orders before Process All does. Pausing drops its scheduled runs; one already going is let finish.
        pipeline = _deployment(seeded["api"], "pipeline/pipeline")["id"]
        pause_schedule(seeded["api"], pipeline)
        try:
            yield seeded
        finally:
            httpx.post(f"{seeded['api']}/deployments/{pipeline}/resume_deployment", timeout=10)
    finally:
        stop(process)


def _deployment(api: str, name: str) -> dict:
    answer = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
    return answer.json() if answer.status_code == 200 else {}


def _flow_runs_of(api: str, deployment_id: str, states: list[str] | None = None) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200}
    if states:
        body["flow_runs"] = {"state": {"type": {"any_": states}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).raise_for_status().json()


def _wait_run_final(url: str, timeout: float = 120, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{url}/api/action", headers=headers, timeout=10).json()["run"]
        if run and run["final"]:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"the button run did not end within {timeout} s: {run}")
        time.sleep(0.3)


def _orders(url: str, **params) -> dict:
    answer = httpx.get(f"{url}/api/orders", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _press_all(url: str, buttons: list[str], origin: str | None) -> list[httpx.Response]:
    """Presses at the same moment, like an impatient operator with two tabs."""
    headers = {"Origin": origin} if origin else {}
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(len(buttons)) as pool:
        return list(pool.map(lambda b: client.post(f"{url}/api/{b}", headers=headers), buttons))


# ---- the read API ----------------------------------------------------------------------------------


def test_the_orders_api_is_the_seed_table_with_counts(seeded):
    page = _orders(seeded["url"])
    assert page["orders"] == seed_rows()
    assert page["counts"] == {"PROCESSED": 6, "FAILED": 9}
    assert (page["matching"], page["offset"], page["has_prev"], page["has_next"]) == (15, 0, False, False)
    assert page["store"]["exists"] and page["store"]["stale"] is False


def test_paging_and_filters_walk_the_table_by_order_id(seeded):
    url, seed = seeded["url"], seed_rows()
    failed = [r for r in seed if r["status"] == "FAILED"]
    walked, page = [], _orders(url, status="failed", limit=4)
    while True:
        walked += page["orders"]
        assert page["matching"] == 9 and page["offset"] == len(walked) - len(page["orders"])
        if not page["has_next"]:
            break
        page = _orders(url, status="FAILED", limit=4, after=page["orders"][-1]["order_id"])
    assert walked == failed
    last = _orders(url, status="FAILED", limit=4, last="true")
    assert last["orders"] == failed[-4:] and last["has_prev"] and not last["has_next"] and last["offset"] == 5
    back = _orders(url, status="FAILED", limit=4, before=last["orders"][0]["order_id"])
    assert back["orders"] == failed[1:5] and back["has_prev"] and back["has_next"]
    unknown = _orders(url, reason="UNKNOWN_INVENTORY")
    assert [r["order_id"] for r in unknown["orders"]] == [3, 7, 13]
    assert _orders(url, after=16)["orders"] == [] and _orders(url, status="NEW")["matching"] == 0


def test_one_order_has_its_explanation_and_history(seeded):
    url = seeded["url"]
    got = httpx.get(f"{url}/api/orders/15", timeout=10).json()
    order = got["order"]
    assert {k: order[k] for k in ("order_id", "status", "reason", "items", "total_qty")} == {
        "order_id": 15,
        "status": "FAILED",
        "reason": "INSUFFICIENT_STOCK",
        "items": 2,
        "total_qty": 4,
    }
    assert set(order) == {
        "order_id",
        "status",
        "reason",
        "items",
        "total_qty",
        "lines",
        "explanation",
        "decided_at",
        "decided_run",
        "decided_run_short",
        "why",
    }
    # order 15 asks 1 + 3 of item 640, which has 1 on hand, allocated to order 16
    assert [
        (line["line_no"], line["inventory_id"], line["quantity"], line["on_hand"], line["allocated"], line["available"])
        for line in order["lines"]
    ] == [(0, 640, 1, 1, 1, 0), (1, 640, 3, 1, 1, 0)]
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in got["history"]] == [
        ("NEW", "FAILED", "INSUFFICIENT_STOCK")
    ]
    assert order["decided_run"] == got["history"][-1]["run_id"]
    # worded as `orderly explain` and `orderly history` word it (one source), each short item by SKU and name
    assert order["why"] == "item 640 (PEN-SET, Pen set) short: needed 4, available 1 (when its turn came)"
    assert got["history"][-1]["why"] == "item 640 (PEN-SET, Pen set) short: needed 4, available 1"
    assert order["decided_run"].startswith(order["decided_run_short"]) and len(order["decided_run_short"]) >= 8
    unknown = httpx.get(f"{url}/api/orders/3", timeout=10).json()["order"]
    assert [(line["on_hand"], line["allocated"], line["available"]) for line in unknown["lines"]] == [
        (None, None, None)
    ]
    assert unknown["why"] == "item 999 is not in the stock snapshot"
    assert httpx.get(f"{url}/api/orders/6", timeout=10).json()["order"]["why"] is None  # PROCESSED
    missing = httpx.get(f"{url}/api/orders/999", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "no such order: 999"}


def test_stock_with_its_snapshot_age_and_the_last_runs(seeded):
    url = seeded["url"]
    stock = httpx.get(f"{url}/api/stock", timeout=10).json()
    assert stock["snapshot"]["loaded"] == 8 and 0 <= stock["snapshot"]["age_seconds"] < 3600
    items = {i["inventory_id"]: (i["on_hand"], i["allocated"], i["available"]) for i in stock["items"]}
    assert items == {
        101: (5, 2, 3),
        102: (0, 0, 0),
        205: (0, 0, 0),
        206: (2, 1, 1),
        310: (3, 2, 1),
        420: (1, 1, 0),
        530: (2, 1, 1),
        640: (1, 1, 0),
    }
    paged = httpx.get(f"{url}/api/stock", params={"limit": 3, "after": 205}, timeout=10).json()
    assert [i["inventory_id"] for i in paged["items"]] == [206, 310, 420] and paged["has_next"]
    runs = httpx.get(f"{url}/api/runs", timeout=10).json()
    pipeline = [r for r in runs["runs"] if r["flow"] == "pipeline"][-1]
    assert (pipeline["state"], pipeline["processed"], pipeline["failed"]) == ("COMPLETED", 6, 9)
    shorts = [r["run_short"] for r in runs["runs"]]  # as `orderly runs` shows them: long enough to differ
    assert len(set(shorts)) == len(shorts) and all(r["run_id"].startswith(r["run_short"]) for r in runs["runs"])
    assert runs["prefect_ui"] == seeded["api"].removesuffix("/api")


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/orders", {"limit": "0"}),
        ("/api/orders", {"limit": "501"}),
        ("/api/orders", {"limit": "ten"}),
        ("/api/orders", {"after": "-1"}),
        ("/api/orders", {"after": str(2**63)}),
        ("/api/orders", {"after": "1e3"}),
        ("/api/orders", {"before": "١٢"}),  # Arabic-Indic digits: isdigit() says yes, int() would take them
        ("/api/orders", {"status": "SHIPPED"}),
        ("/api/orders", {"reason": "'; DROP TABLE orders; --"}),
        ("/api/orders", {"last": "maybe"}),
        ("/api/orders", {"after": "2", "before": "9"}),
        ("/api/orders", {"page": "2"}),
        ("/api/orders", [("limit", "5"), ("limit", "6")]),
        ("/api/stock", {"limit": "99999"}),
        ("/api/runs", {"limit": "0"}),
        ("/api/orders/abc", {}),
        ("/api/orders/99999999999999999999", {}),
    ],
)
def test_bad_query_parameters_get_a_400_with_one_line(seeded, path, params):
    answer = httpx.get(f"{seeded['url']}{path}", params=params, timeout=10)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and 0 < len(body["error"]) < 200
    assert "Traceback" not in answer.text and "Error" not in body["error"]
    assert _orders(seeded["url"])["counts"] == {"PROCESSED": 6, "FAILED": 9}  # nothing was harmed


def test_unknown_paths_and_methods_answer_json(seeded):
    url = seeded["url"]
    assert httpx.get(f"{url}/api/nothing", timeout=10).json() == {"error": "no such page: /api/nothing"}
    wrong = httpx.get(f"{url}/api/process", timeout=10)
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_the_page_and_its_files_come_from_orderly_itself(seeded):
    url = seeded["url"]
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/orderly.js" in assets and "/static/orderly.css" in assets
    for asset in assets:
        assert asset.startswith(("/static/", "data:")), asset  # no CDN, nothing remote
        if asset.startswith("/static/"):
            assert httpx.get(f"{url}{asset}", timeout=10).status_code == 200
    for asset in ("/static/orderly.js", "/static/orderly.css"):
        text = httpx.get(f"{url}{asset}", timeout=10).text
        assert "http://" not in text and "https://" not in text and "@import" not in text
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )


def test_reads_never_import_prefect(seeded):
    code = (
        "import sys, threading, time, httpx, uvicorn\n"
        "from orderly.runtime.tempserver import free_port\n"
        "from orderly.ui.app import create_app\n"
        f"app = create_app({seeded['env']['ORDERLY_DB']!r})\n"
        "port = free_port()\n"
        "server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning'))\n"
        "threading.Thread(target=server.run, daemon=True).start()\n"
        "while not server.started: time.sleep(0.05)\n"
        "for path in ('/', '/api/config', '/api/orders', '/api/orders?status=FAILED&last=1', '/api/orders/15',\n"
        "             '/api/stock', '/api/runs', '/api/action'):\n"
        "    answer = httpx.get(f'http://127.0.0.1:{port}{path}')\n"
        "    assert answer.status_code == 200, (path, answer.text)\n"
        "server.should_exit = True\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "assert not loaded, loaded[:5]\n"
        "print('NO-PREFECT')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=seeded["env"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("NO-PREFECT"), result.stderr[-2000:]


# ---- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port is another origin
        {"Origin": "https://127.0.0.1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_site_post_cannot_press_a_button(seeded, headers):
    url = seeded["url"]
    before = httpx.get(f"{url}/api/action", timeout=10).json()["run"]
    for button in ("process", "reset"):
        answer = httpx.post(f"{url}/api/{button}", headers=headers, timeout=10)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"].startswith("refused:")
    assert httpx.get(f"{url}/api/action", timeout=10).json()["run"] == before  # no run was started


def test_another_host_name_is_refused_against_dns_rebinding(seeded):
    url = seeded["url"]
    for path in ("/api/orders", "/"):
        answer = httpx.get(f"{url}{path}", headers={"Host": f"evil.example:{seeded['ui'].port}"}, timeout=10)
        assert answer.status_code == 403 and "loopback" in answer.json()["error"]
    assert (
        httpx.get(f"{url}/api/orders", headers={"Host": f"localhost:{seeded['ui'].port}"}, timeout=10).status_code
        == 200
    )


def _ui_exit(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORDERLY, "ui", *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def _one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and all(f in lines[0] for f in fragments), lines[0]


def test_binding_beyond_loopback_needs_a_good_token(seeded):
    env = seeded["env"]
    _one_line(_ui_exit(env, "--host", "0.0.0.0", "--port", "0"), "ORDERLY_UI_TOKEN", "0.0.0.0")
    short = _ui_exit({**env, "ORDERLY_UI_TOKEN": "secret"}, "--host", "0.0.0.0", "--port", "0")
    _one_line(short, "ORDERLY_UI_TOKEN", "16")
    assert "secret" not in short.stderr
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        _one_line(_ui_exit(env, "--port", str(taken.getsockname()[1])), "cannot listen")
    finally:
        taken.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_with_a_token_every_api_call_needs_it(seeded, tmp_path, host):
    ui = UiProcess({**seeded["env"], "ORDERLY_UI_TOKEN": TOKEN}, tmp_path, host=host)
    try:
        url = ui.url
        assert httpx.get(f"{url}/api/config", timeout=10).json() == {"auth_required": True}
        assert httpx.get(f"{url}/", timeout=10).status_code == 200  # the page itself holds no data: it asks
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0000000000"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            for method, path in (
                ("GET", "/api/orders"),
                ("GET", "/api/orders/15"),
                ("GET", "/api/stock"),
                ("POST", "/api/process"),
                ("POST", "/api/reset"),
            ):
                answer = httpx.request(method, f"{url}{path}", headers=headers, timeout=10)
                assert answer.status_code == 401, (method, path, headers, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer" and TOKEN not in answer.text
        good = {"Authorization": f"Bearer {TOKEN}"}
        page = httpx.get(f"{url}/api/orders", headers=good, timeout=10)
        assert page.status_code == 200 and page.json()["orders"] == seed_rows()
        cross = httpx.post(f"{url}/api/process", headers={**good, "Origin": "http://evil.example"}, timeout=10)
        assert cross.status_code == 403  # the token does not make a cross-site press acceptable
        if host == "0.0.0.0":  # any Host name is served there: the token is what guards it
            assert (
                httpx.get(f"{url}/api/orders", headers={**good, "Host": "orders.example"}, timeout=10).status_code
                == 200
            )
    finally:
        log = ui.stop()
    assert TOKEN not in log


# ---- the buttons -----------------------------------------------------------------------------------


def test_concurrent_presses_start_one_deployment_run(served):
    url, api = served["url"], served["api"]
    ids = {button: _deployment(api, name)["id"] for button, name in DEPLOYMENTS.items()}
    before = {button: len(_flow_runs_of(api, ident)) for button, ident in ids.items()}
    answers = _press_all(url, ["reset", "process"] * 4, origin=url)
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 7, [a.text for a in answers]
    (started,) = [a.json()["run"] for a in answers if a.status_code == 202]
    for refused in (a.json() for a in answers if a.status_code == 409):
        assert refused["run"]["started_at"] == started["started_at"] and "still going" in refused["error"]
    run = _wait_run_final(url)
    assert (run["button"], run["state"], run["mode"]) == (started["button"], "COMPLETED", "deployment"), run
    assert run["run_url"] == f"{api.removesuffix('/api')}/runs/flow-run/{run['run_id']}"
    after = {button: len(_flow_runs_of(api, ident)) for button, ident in ids.items()}
    assert sum(after.values()) - sum(before.values()) == 1
    flow_run = httpx.get(f"{api}/flow_runs/{run['run_id']}", timeout=10).json()
    assert flow_run["deployment_id"] == ids[run["button"]] and flow_run["state"]["type"] == "COMPLETED"
    if run["button"] == "reset":
        assert run["counts"] == {"reset": 15}
        assert _press_all(url, ["process"], origin=url)[0].status_code == 202
        run = _wait_run_final(url)
        assert run["state"] == "COMPLETED" and run["counts"] == {"processed": 6, "failed": 9, "waiting": 0}
    assert _orders(url)["orders"] == seed_rows()


def test_without_a_prefect_server_the_page_runs_the_flow_and_shows_why_it_failed(seeded, tmp_path):
    env = {k: v for k, v in seeded["env"].items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",  # a busy machine needs more than 20 s
        ORDERLY_MAX_STOCK_AGE="0",
    )  # every snapshot is too old: Process All must refuse, with its reason
    ui = UiProcess(env, tmp_path)
    try:
        answers = _press_all(ui.url, ["process"] * 6, origin=None)
        assert sorted(a.status_code for a in answers) == [202] + [409] * 5, [a.text for a in answers]
        run = _wait_run_final(ui.url, timeout=240)
    finally:
        ui.stop()
    assert (run["state"], run["mode"], run["run_url"]) == ("FAILED", "local", None), run
    assert "ORDERLY_MAX_STOCK_AGE" in run["message"] and "\n" not in run["message"]
    recorded = httpx.get(f"{seeded['url']}/api/runs", timeout=10).json()["runs"]
    mine = [r for r in recorded if r["run_id"] == run["run_id"]]
    assert mine and (mine[0]["flow"], mine[0]["state"], mine[0]["message"]) == ("process-all", "FAILED", run["message"])
    assert _orders(seeded["url"])["orders"] == seed_rows()  # nothing was decided


# ---- the page in a real browser --------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"


@pytest.fixture
def browser(tmp_path):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = (
            f"the browser test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing): {INSTALL}"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))  # never downloads one
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


TABLE_JS = """
return Array.from(document.querySelectorAll('#orders tbody tr[data-order-id]')).map(tr => {
  const cells = tr.querySelectorAll('td');
  return [cells[0].innerText, cells[1].innerText, cells[2].innerText, cells[3].innerText, cells[4].innerText];
});
"""


RUNS_JS = """
return Array.from(document.querySelectorAll('#runs tbody tr')).map(tr => {
  const cells = tr.querySelectorAll('td');
  return {id: cells[0].innerText, title: cells[0].firstChild.title, flow: cells[1].innerText,
          stock: cells[5].innerText, orders: cells[6].innerText};
});
"""

# ELEMENT and the page itself are no wider than what shows of them: nothing to scroll sideways.
FITS_JS = """
const element = ELEMENT, page = document.documentElement;
return element.scrollWidth <= element.clientWidth && page.scrollWidth <= page.clientWidth
  && element.getBoundingClientRect().right <= window.innerWidth;
"""


def _seed_as_shown() -> list[list[str]]:
    return [
        [str(r["order_id"]), r["status"], str(r["items"]), str(r["total_qty"]), r["reason"] or ""] for r in seed_rows()
    ]


def test_in_a_browser_reset_state_then_process_all_gives_the_seed_table_again(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    url, api = served["url"], served["api"]
    wait = WebDriverWait(browser, 120, poll_frequency=0.2)
    browser.get(f"{url}/")
    wait.until(lambda d: len(d.execute_script(TABLE_JS)) == 15)
    assert browser.execute_script(TABLE_JS) == _seed_as_shown()
    counts = browser.find_element(By.ID, "counts").text
    assert "PROCESSED 6" in counts and "FAILED 9" in counts and "All 15" in counts

    def pressed(button_id: str, button: str) -> dict:
        shown_before = browser.find_element(By.ID, "run-status").get_attribute("data-started")
        browser.find_element(By.ID, button_id).click()
        if button == "reset":  # the page asks first, as `orderly reset` does on a terminal
            wait.until(expected_conditions.alert_is_present()).accept()

        def ended(d) -> bool:
            status = d.find_element(By.ID, "run-status")
            return (
                status.get_attribute("data-started") not in {None, shown_before}
                and status.get_attribute("data-button") == button
                and status.get_attribute("data-state") in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
            )

        wait.until(ended)
        status = browser.find_element(By.ID, "run-status")
        assert status.get_attribute("data-state") == "COMPLETED", status.text
        link = browser.find_element(By.ID, "run-link").get_attribute("href")
        match = re.fullmatch(re.escape(api.removesuffix("/api")) + r"/runs/flow-run/([0-9a-f-]{36})", link)
        assert match, link
        flow_run = httpx.get(f"{api}/flow_runs/{match.group(1)}", timeout=10).json()
        assert flow_run["deployment_id"] == _deployment(api, DEPLOYMENTS[button])["id"]  # a Prefect deployment run
        return flow_run

    pressed("reset-state", "reset")
    wait.until(lambda d: [row[1] for row in d.execute_script(TABLE_JS)] == ["NEW"] * 15)
    assert browser.execute_script(TABLE_JS) == [
        [oid, "NEW", items, qty, ""] for oid, _, items, qty, _ in _seed_as_shown()
    ]
    assert "reset 15" in browser.find_element(By.ID, "run-status").text

    pressed("process-all", "process")
    wait.until(lambda d: d.execute_script(TABLE_JS) == _seed_as_shown())
    assert "processed 6, failed 9" in browser.find_element(By.ID, "run-status").text

    # the last runs: each id long enough to tell it apart (Reset State and Process All a few seconds apart share
    # their first 8 digits), stock and orders counted apart, and the table within a 1280 px window
    wait.until(lambda d: len(d.execute_script(RUNS_JS)) >= 3)
    runs = browser.execute_script(RUNS_JS)
    shown = [run["id"] for run in runs]
    assert len(set(shown)) == len(shown) and all(run["title"].startswith(run["id"]) for run in runs), runs
    assert len({len(run_id) for run_id in shown}) == 1 and len(shown[0]) >= 8, shown
    pipeline = [run for run in runs if run["flow"] == "pipeline"][-1]  # the seeded `orderly run`
    assert (pipeline["stock"], pipeline["orders"]) == ("8 fetched, 8 loaded", "15 fetched, 15 loaded"), pipeline
    assert next(run for run in runs if run["flow"] == "process-all")["stock"] == ""  # nothing fetched there
    assert browser.execute_script(FITS_JS.replace("ELEMENT", "document.getElementById('runs')"))

    # one order's explanation and history
    browser.find_element(By.CSS_SELECTOR, '#orders tr[data-order-id="15"] button.order-link').click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#order-history tbody tr"))
    history = [tr.text for tr in browser.find_elements(By.CSS_SELECTOR, "#order-history tbody tr")]
    recorded = httpx.get(f"{url}/api/orders/15", timeout=10).json()["history"]
    assert len(history) == len(recorded) >= 3, history
    assert "INSUFFICIENT_STOCK" in history[-1] and history[-2].split()[2:4] == ["FAILED", "NEW"], history
    lines = [tr.text for tr in browser.find_elements(By.CSS_SELECTOR, "#order-lines tbody tr")]
    assert len(lines) == 2 and all("640" in line for line in lines), lines
    assert [line.split()[0] for line in lines] == ["1", "2"], lines  # numbered from 1, as `orderly explain` does
    # the CLI's words, with the item's SKU and name, never the recorded JSON; no sideways scrolling at 1280 px
    why = browser.find_element(By.ID, "order-why").text
    assert why == "Why: item 640 (PEN-SET, Pen set) short: needed 4, available 1 (when its turn came)", why
    assert "item 640 (PEN-SET, Pen set) short: needed 4, available 1" in history[-1]
    assert all("{" not in row and "inventory_id" not in row for row in history), history
    assert browser.execute_script(FITS_JS.replace("ELEMENT", "document.getElementById('order-dialog')"))
    browser.find_element(By.ID, "order-close").click()
    # a run that goes is spoken of in the present tense, one that ended in the past
    said = browser.execute_script(
        "const saved = state.prefectUi; state.prefectUi = null;"
        "const say = (run) => { renderRun(run); return document.getElementById('run-status').innerText; };"
        "const said = [say({button: 'process', state: 'RUNNING', mode: 'local', final: false}),"
        "              say({button: 'process', state: 'COMPLETED', mode: 'local', final: true})];"
        "state.prefectUi = saved; renderRun(state.run); return said;"
    )
    assert "the run uses a temporary one" in said[0] and "the run used a temporary one" in said[1], said
    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert not errors, errors


def test_in_a_browser_the_page_asks_for_its_token(seeded, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ui = UiProcess({**seeded["env"], "ORDERLY_UI_TOKEN": TOKEN}, tmp_path, host="0.0.0.0")
    try:
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        browser.get(f"{ui.url}/")
        wait.until(lambda d: d.find_element(By.ID, "auth").is_displayed())
        assert not browser.find_element(By.ID, "main").is_displayed()
        browser.find_element(By.ID, "token").send_keys("not-the-token-123456")
        browser.find_element(By.CSS_SELECTOR, "#auth-form button[type=submit]").click()
        wait.until(lambda d: "not accepted" in d.find_element(By.ID, "auth-error").text)
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#auth-form button[type=submit]").click()
        wait.until(lambda d: len(d.execute_script(TABLE_JS)) == 15)
        assert browser.execute_script(TABLE_JS) == _seed_as_shown()
    finally:
        log = ui.stop()
    assert TOKEN not in log
