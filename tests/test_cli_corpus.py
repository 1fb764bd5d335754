"""Issue 11, item 5: the bad-usage corpus. Every command with missing, negative, huge and malformed arguments and
with bad settings ends with exit 2 (usage; `orderly doctor`: 1, its documented code for "problems found"), exactly
one non-empty line on stderr, no traceback, no internal exception name, and without importing Prefect.

The cases run in one Python process (one import of the CLI, ~1 s, instead of ~1 s per case); a sample also runs
through the real `orderly` executable, so the installed entry point is covered too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from cli_store import build_store
from conftest import ORDERLY, free_port

DEAD_PREFECT = f"http://127.0.0.1:{free_port()}/api"  # nothing listens: a data-changing command must say so at once

BAD_IDS = ["", "abc", "-1", "0", str(2**63), str(10**30), "é", "1.5", "9" * 40, "999"]  # 999: not in the store
BAD_LIMITS = ["", "abc", "-1", "0", str(2**63), str(10**30), "é", "1.5"]
BAD_RUNS = ["", "xyz", "é", "ffff", "abc-", "12345678" * 6]
BAD_SINCE = ["", "abc", "é", "10" * 15 + "d", "99999999d", "2026-13-45", "-5d", "5 parsecs"]

COMMANDS = [
    "run",
    "sync",
    "reconcile",
    "process",
    "reset",
    "status",
    "stock",
    "history",
    "explain",
    "runs",
    "rejects",
    "events",
    "deliver",
    "doctor",
    "ui",
    "sandbox",
    "serve",
]
WITH_ARGS = {"history": ["2"], "explain": ["2"], "reset": ["--yes"]}  # valid arguments, for the bad-settings cases

BAD_SETTINGS = [
    {"ORDERLY_PAGE_SIZE": "0"},
    {"ORDERLY_PAGE_SIZE": "abc"},
    {"ORDERLY_PAGE_SIZE": str(2**63)},
    {"ORDERLY_DB": "{tmp}"},  # a directory
    {"ORDERLY_ORDERS_URL": "not a url"},
    {"ORDERLY_WAREHOUSE_URL": "ftp://warehouse"},
    {"ORDERLY_ORDERS_URL": "http://"},
    {"ORDERLY_API_TOKEN": "two words"},
    {"ORDERLY_MAX_STOCK_AGE": "nan"},
    {"ORDERLY_HTTP_TIMEOUT": "-1"},
    {"ORDERLY_LOCK_TIMEOUT": str(10**30)},
    {"ORDERLY_SANDBOX_SEED": "é"},
    {"ORDERLY_FETCH_CONCURRENCY": "1e3"},
    {"ORDERLY_WEBHOOK_URL": "http://127.0.0.1:9/hook"},  # without its secret
    {"ORDERLY_WEBHOOK_SECRET": "whsec_c2hvcnQ="},  # without its URL, and too short
    {"ORDERLY_WEBHOOK_BATCH": "10001"},
]


def _cases() -> list[tuple[str, list[str], dict[str, str], int]]:
    """(id, args, environment changes, expected exit status)."""
    cases: list[tuple[str, list[str], dict[str, str], int]] = []

    def add(args: list[str], env: dict[str, str] | None = None, code: int = 2) -> None:
        shown = " ".join(repr(a) if (not a or " " in a) else a for a in args)
        label = f"{shown} {' '.join(f'{k}={v}' for k, v in (env or {}).items())}".strip()
        cases.append((label, args, env or {}, code))

    for command in COMMANDS:
        add([command, "--bogus"])
    add(["bogus"])
    add(["history"])
    add(["explain"])
    add(["process", "--order"])
    add(["reset", "--order"])
    add(["rejects", "--run"])
    for value in BAD_IDS:
        add(["history", value])
        add(["explain", value])
        add(["process", "--order", value])
        add(["reset", "--order", value])
    add(["process", "--dry-run", "--order", "999"])
    add(["process", "--order", "2", "--order", "999"])  # one unknown among known ones: nothing starts
    for value in ("DONE", "", "é", "processed; drop table orders"):
        add(["reset", "--status", value])
        add(["status", "--status", value])
    for value in ("LATE", "", "é"):
        add(["reset", "--reason", value])
        add(["status", "--reason", value])
    for value in BAD_SINCE:
        add(["status", "--since", value])
    for value in BAD_LIMITS:
        for command in ("status", "runs", "rejects", "events"):
            add([command, "--limit", value])
        if value != "0":  # --after 0: from the first event
            add(["events", "--after", value])
    for value in BAD_RUNS:
        add(["runs", value])
        add(["rejects", "--run", value])
    for command in ("status", "stock", "runs", "rejects", "events"):
        add([command, "--json", "--csv"])
    add(["events", "--limit", "10001"])
    add(["deliver"])  # no ORDERLY_WEBHOOK_URL: nothing to deliver to
    add(["history", "2", "--json", "--csv"])
    for command in ("run", "sync", "reconcile", "stock", "status", "doctor", "serve", "deliver", "events"):
        add([command, "extra"])
    for value in ("-1", "65536", "abc", "", str(2**63)):
        add(["ui", "--port", value])
        add(["sandbox", "--port", value])
    add(["ui", "--host", "0.0.0.0"])  # beyond loopback without ORDERLY_UI_TOKEN
    for option, value in (
        ("--fault-rate", "2"),
        ("--fault-rate", "nan"),
        ("--latency-ms", "-1"),
        ("--orders", "-1"),
        ("--items", "0"),
        ("--seed", str(2**63)),
        ("--bad-rate", "abc"),
    ):
        add(["sandbox", option, value])
    add(["sandbox"], {"ORDERLY_SANDBOX_TOKEN": "has space"})
    # data-changing commands with good arguments but a Prefect server that is down
    # (`process --dry-run` is not here: on a store with no NEW orders it answers without Prefect, exit 0)
    for args in (
        ["run"],
        ["sync"],
        ["reconcile"],
        ["process"],
        ["reset", "--order", "2"],
        ["reset", "--yes"],
        ["reset", "--status", "FAILED"],
        ["serve"],
    ):
        add(args)
    webhook = {"ORDERLY_WEBHOOK_URL": "http://127.0.0.1:9/hook", "ORDERLY_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8}
    add(["deliver"], webhook)  # a receiver configured, but Prefect is down
    add(["serve"], {"PREFECT_API_URL": ""})  # serve needs a real server
    add(["run"], {"PREFECT_API_URL": "not a url"})
    add(["sync"], {"PREFECT_API_URL": "http://127.0.0.1:99999/api"})
    add(["serve"], {"PREFECT_API_URL": "http://[::1/api"})
    add(["process", "--order", "5"], {"ORDERLY_DB": "{tmp}/none.duckdb"})  # no database at all
    add(["explain", "5"], {"ORDERLY_DB": "{tmp}/none.duckdb"})
    for env in BAD_SETTINGS:
        for command in COMMANDS:
            add([command, *WITH_ARGS.get(command, [])], env, 1 if command == "doctor" else 2)
    return cases


CASES = _cases()

DRIVER = r"""
import contextlib, io, json, os, sys
cases = json.loads(sys.stdin.read())
base = dict(os.environ)
from orderly.cli import main as cli
results = []
for args, env in cases:
    os.environ.clear(); os.environ.update(base); os.environ.update(env)
    sys.argv = ["orderly", *args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else repr(done.code))
        except BaseException as error:  # reported, not hidden: the test fails on it
            code = "escaped: " + type(error).__name__
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                    "prefect": any(m == "prefect" or m.startswith("prefect.") for m in sys.modules)})
sys.stdout.write(json.dumps(results))
"""

INTERNAL_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Exit|Abort)\b")


def _env(tmp) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_API"))}
    env.update(ORDERLY_DB=str(tmp / "orderly.duckdb"), PREFECT_API_URL=DEAD_PREFECT, COLUMNS="80")
    return env


def _filled(env: dict[str, str], tmp) -> dict[str, str]:
    return {k: v.replace("{tmp}", str(tmp)) for k, v in env.items()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    build_store(tmp / "orderly.duckdb")  # the seed, decided: orders 2..16 exist, 999 does not
    payload = json.dumps([[args, _filled(env, tmp)] for _, args, env, _ in CASES])
    done = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=payload,
        env=_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp,
        stdin=None,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {"tmp": tmp, "results": dict(zip((label for label, *_ in CASES), json.loads(done.stdout), strict=True))}


def assert_one_clean_line(code, expected: int, out: str, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err + out
    assert not INTERNAL_NAME.search(lines[0]), lines[0]


@pytest.mark.parametrize("label, args, env, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_usage_is_one_line(corpus, label, args, env, expected):
    result = corpus["results"][label]
    assert_one_clean_line(result["code"], expected, result["out"], result["err"])
    assert not result["prefect"], "Prefect was imported before the command gave up"


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_the_corpus_covers_every_command():
    help_text = subprocess.run(
        [ORDERLY, "--help"], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}
    ).stdout
    listed = set(re.findall(r"^│ (\w+) ", help_text, flags=re.M))
    assert listed and listed == set(COMMANDS), listed ^ set(COMMANDS)


def test_the_lines_say_what_to_do(corpus):
    said = {label: r["err"].strip() for label, r in corpus["results"].items()}
    assert said["history 999"] == "error: no such order: 999"
    assert said["process --order 999"] == "error: no such order: 999; nothing was changed"
    assert said["process --order 2 --order 999"] == "error: no such order: 999; nothing was changed"
    assert said["run"].startswith(f"error: no Prefect server answers at PREFECT_API_URL={DEAD_PREFECT}")
    assert "`make server`" in said["run"] and "unset PREFECT_API_URL" in said["run"]
    assert said["status --limit 0"] == "error: --limit must be a whole number from 1 to 9223372036854775807"
    assert "ORDERLY_PAGE_SIZE" in said["status ORDERLY_PAGE_SIZE=0"]
    assert "is a directory" in said["run ORDERLY_DB={tmp}"]
    assert "two words" not in said["status ORDERLY_API_TOKEN=two words"]  # a secret is never echoed
    assert said["explain 5 ORDERLY_DB={tmp}/none.duckdb"].endswith("run `orderly sync` first)")


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_a_sample_through_the_real_executable(corpus):
    """The same promise through the installed `orderly` (its entry point, real streams), several at once."""
    tmp = corpus["tmp"]
    sample = [
        c
        for c in CASES
        if c[0]
        in {
            "history abc",
            "status --limit 0",
            "process --order 999",
            "run",
            "status ORDERLY_PAGE_SIZE=abc",
            "doctor ORDERLY_PAGE_SIZE=0",
            "runs xyz",
            "ui --port 65536",
        }
    ]
    assert len(sample) == 8
    running = [
        (
            case,
            subprocess.Popen(
                [ORDERLY, *case[1]],
                env={**_env(tmp), **_filled(case[2], tmp)},
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for case in sample
    ]
    for (label, _, _, expected), process in running:
        out, err = process.communicate(timeout=120)
        assert_one_clean_line(process.returncode, expected, out, err)
        assert err == corpus["results"][label]["err"], label  # the in-process run said exactly the same
