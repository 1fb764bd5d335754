"""Settings refuse what they cannot mean (issue 17, classes 7 and 8; CONTRACT.md section 3), through the real
`orderly` command: one line naming the variable, exit 2, before any flow (no Prefect server is started here:
every refusal comes first), never a hang, never a traceback; and a URL's secrets are never shown."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ORDERLY, ROOT, free_port, run_cli

pytestmark = pytest.mark.slow  # each test runs the `orderly` executable (tests/tiers.py)

PASSWORD, KEY = "pw-Zq81xK", "key-Vb55tQ"


def orderly(args: list[str], **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_API_URL"))}
    env.update(settings)
    return subprocess.run(
        [ORDERLY, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["status", "run"])
def test_an_unknown_orderly_variable_is_refused_with_a_did_you_mean(command, tmp_path):
    line = refused(
        orderly([command], ORDERLY_DB=str(tmp_path / "o.duckdb"), ORDERLY_WAREHOUSE_URLL="http://x"),
        "ORDERLY_WAREHOUSE_URLL",
        "did you mean ORDERLY_WAREHOUSE_URL?",
    )
    assert "http://x" not in line  # the value of an unknown variable is not repeated


def test_every_known_setting_is_accepted_and_the_list_is_the_settings_one():
    from orderly.settings import SETTING_NAMES, Settings

    for name in (
        "ORDERLY_SANDBOX_SEED",
        "ORDERLY_LOCK_TIMEOUT",
        "ORDERLY_SCHEDULE_SECONDS",
        "ORDERLY_UI_TOKEN",
        "ORDERLY_MAX_ORDER_PAGES",
        "ORDERLY_LOOKBACK_ORDERS",
        "ORDERLY_MAX_BODY_BYTES",
        "ORDERLY_DEBUG",
        "ORDERLY_WEBHOOK_URL",
        "ORDERLY_WEBHOOK_SECRET",
        "ORDERLY_WEBHOOK_BATCH",
        "ORDERLY_WEBHOOK_MAX_LAG",
    ):
        assert name in SETTING_NAMES
    Settings.from_env(dict.fromkeys(SETTING_NAMES, ""))  # every known name, unset: the defaults


@pytest.mark.parametrize("given", ["ORDERLY_ORDERS_URL", "ORDERLY_WAREHOUSE_URL"])
@pytest.mark.parametrize("command", ["status", "sync"])
def test_one_remote_url_without_the_other_is_refused(given, command, tmp_path):
    other = ({"ORDERLY_ORDERS_URL", "ORDERLY_WAREHOUSE_URL"} - {given}).pop()
    refused(orderly([command], ORDERLY_DB=str(tmp_path / "o.duckdb"), **{given: "http://127.0.0.1:9"}), given, other)
    assert not (tmp_path / "o.duckdb").exists()


def test_a_tilde_in_orderly_db_is_the_home_directory_for_every_command(tmp_path):
    from tests.cli_store import build_store

    build_store(tmp_path / "store.duckdb")
    result = orderly(["status", "--json"], ORDERLY_DB="~/store.duckdb", HOME=str(tmp_path))
    assert result.returncode == 0 and '"status"' in result.stdout, result.stderr


def _unusable_stores(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.duckdb"
    text.write_text("these are my notes, not a store\n")
    binary = tmp_path / "random.duckdb"
    binary.write_bytes(os.urandom(8192))
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    real = tmp_path / "real.duckdb"
    duckdb.connect(str(real)).close()
    broken = bytearray(real.read_bytes())
    broken[12:20] = struct.pack("<Q", 9999)  # a DuckDB file of a storage version (and checksum) we cannot read
    other = tmp_path / "other-version.duckdb"
    other.write_bytes(bytes(broken))
    newer = tmp_path / "newer.duckdb"
    con = duckdb.connect(str(newer))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
    con.execute("INSERT INTO schema_version VALUES (999, now())")
    con.close()
    fifo = tmp_path / "fifo.duckdb"
    os.mkfifo(fifo)  # opening it to read would block for ever: refused by its type, never opened
    return {
        "directory": tmp_path,
        "text": text,
        "binary": binary,
        "empty": empty,
        "other-version": other,
        "newer-orderly": newer,
        "fifo": fifo,
        "no-such-directory": tmp_path / "missing" / "o.duckdb",
        "cannot-create": Path("/proc/orderly-settings17.duckdb"),
    }


KINDS = [
    "directory",
    "text",
    "binary",
    "empty",
    "other-version",
    "newer-orderly",
    "fifo",
    "no-such-directory",
    "cannot-create",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["status", "stock", "run", "process"])
def test_an_unusable_orderly_db_is_one_line_exit_2_before_any_flow(kind, command, tmp_path):
    path = _unusable_stores(tmp_path)[kind]
    if kind == "cannot-create" and command in ("status", "stock"):
        # a query never creates the store: it notes there is none (as root, /proc passes the permission bits)
        result = orderly([command], ORDERLY_DB=str(path))
        assert result.returncode in (0, 2) and "Traceback" not in result.stderr
        return
    before = sorted(p.name for p in tmp_path.iterdir())
    # PREFECT_API_URL points at nothing: were a flow to start, the line would be about Prefect, not ORDERLY_DB
    result = orderly([command], ORDERLY_DB=str(path), PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    refused(result, "ORDERLY_DB")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created: no directory, no file
    assert not (tmp_path / "missing").exists()


def test_a_directory_without_write_permission_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write in any directory; the /proc case above covers a place that refuses a file")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    refused(orderly(["status"], ORDERLY_DB=str(locked / "o.duckdb")), "ORDERLY_DB", "permission")


# ---- one masking function: a URL's password and query string are never shown ----------------------------


def test_mask_url_hides_userinfo_and_query_even_when_the_url_does_not_parse():
    from orderly.settings import mask_url

    cases = {
        f"http://ops:{PASSWORD}@127.0.0.1:8080/v1?api_key={KEY}": "http://***@127.0.0.1:8080/v1?***",
        f"http://ops:{PASSWORD}@[::1/x?api_key={KEY}": "http://***@[::1/x?***",  # does not parse
        f"https://host/p#{KEY}": "https://host/p?***",
        f"http://u:{PASSWORD}?x@host/": "http://***?***",  # a '?' in the password: nothing after the scheme shown
        f"ops:{PASSWORD}@host": "***@host",
        "http://plain.example:9/base": "http://plain.example:9/base",
    }
    for raw, shown in cases.items():
        assert mask_url(raw) == shown, raw
        assert PASSWORD not in mask_url(raw) and KEY not in mask_url(raw)


SECRET_URLS = {
    "parses": f"http://ops:{PASSWORD}@127.0.0.1:{{port}}/?api_key={KEY}",
    "does-not-parse": f"http://ops:{PASSWORD}@[::1:{{port}}/?api_key={KEY}",
}


@pytest.mark.parametrize("kind", SECRET_URLS)
def test_doctor_and_a_refused_url_never_show_the_secret(kind, tmp_path):
    url = SECRET_URLS[kind].format(port=free_port())
    env = {"ORDERLY_DB": str(tmp_path / "o.duckdb"), "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    doctor = orderly(["doctor"], **env)
    status = orderly(["status"], **env)
    for result in (doctor, status):
        assert PASSWORD not in result.stdout + result.stderr and KEY not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert doctor.returncode == 1 and "***" in doctor.stdout
    if kind == "does-not-parse":
        refused(status, "ORDERLY_ORDERS_URL", "***")


def test_a_run_against_a_dead_remote_never_stores_or_prints_the_secret(cli_env):
    url = SECRET_URLS["parses"].format(port=free_port())
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url, "ORDERLY_HTTP_RETRIES": "0"}
    result = run_cli(["run"], env, check=False)
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "127.0.0.1" in result.stderr and "***" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr and KEY not in result.stdout + result.stderr
    con = duckdb.connect(env["ORDERLY_DB"], read_only=True)
    try:
        stored = [str(row) for table in ("runs", "rejects") for row in con.execute(f"SELECT * FROM {table}").fetchall()]
    finally:
        con.close()
    assert stored and "***" in " ".join(stored)  # the run was recorded, with the URL masked
    assert not any(PASSWORD in row or KEY in row for row in stored)
    raw = Path(env["ORDERLY_DB"]).read_bytes()
    assert PASSWORD.encode() not in raw and KEY.encode() not in raw


def test_doctor_names_an_unusable_store_and_a_typo_and_goes_on(tmp_path):
    notes = tmp_path / "notes.duckdb"
    notes.write_text("not a store")
    result = orderly(["doctor"], ORDERLY_DB=str(notes), ORDERLY_PAGESIZE="10")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert problems[0].startswith("PROBLEM  database: ORDERLY_DB=") and "not a DuckDB store" in problems[0]
    assert any("ORDERLY_PAGESIZE" in line and "did you mean ORDERLY_PAGE_SIZE?" in line for line in problems)
    assert "refused" in result.stdout  # the settings table says ORDERLY_DB was refused, not used
