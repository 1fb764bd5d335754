"""The smaller findings of a new user's walk through the command line (issue 20, item 9), each held by a test that
fails without its fix: help and argument errors in the project's words, one-line answers where a run or a table
would say nothing, tables that read at any width. The store is built in-process (tests/cli_store.py): no Prefect."""

from __future__ import annotations

import re

import pytest

from cli_store import build_store
from test_cli_queries import invoke


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("walk") / "orderly.duckdb"
    build_store(path)
    return {"ORDERLY_DB": str(path)}


# ---- help and errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "metavars"), [
    (["process", "--help"], ["--order ID"]), (["reset", "--help"], ["--order ID", "--status S", "--reason R"]),
    (["status", "--help"], ["--since TIME", "--limit N"]), (["runs", "--help"], ["RUN", "--limit N"]),
    (["explain", "--help"], ["ORDER_ID"]), (["history", "--help"], ["ORDER_ID"]),
])
def test_help_shows_plain_metavars(seeded, monkeypatch, capsys, args, metavars):
    code, out, _ = invoke(args, seeded, monkeypatch, capsys)
    text = re.sub(r"[\s│*]+", " ", out)
    assert code == 0 and all(re.search(rf"{re.escape(m)}\b", text) for m in metavars), text
    assert not re.search(r"<[a-z\[\]]+>|<=x<=|9223372036854775807|\{ORDER_ID\}", out), out  # no Python types


@pytest.mark.parametrize(("args", "line"), [
    (["explain", "0"], "error: ORDER_ID must be a whole number from 1 to 9223372036854775807"),
    (["history", "x"], "error: ORDER_ID must be a whole number from 1 to 9223372036854775807"),
    (["status", "--limit", "0"], "error: --limit must be a whole number from 1 to 9223372036854775807"),
    (["process", "--order", "-3"], "error: --order must be a whole number from 1 to 9223372036854775807"),
    (["runs", "--limit", "2000000"], "error: --limit must be a whole number from 1 to 1000000"),
    (["sandbox", "--fault-rate", "2"], "error: --fault-rate must be a number from 0.0 to 1.0"),
])
def test_argument_errors_use_the_projects_words(seeded, monkeypatch, capsys, args, line):
    code, out, err = invoke(args, seeded, monkeypatch, capsys)
    assert (code, out, err.strip()) == (2, "", line)
    assert "Input should" not in err and "order_id" not in err
