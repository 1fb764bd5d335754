"""One error model (orderly/errors.py) and one source per fact, held by reading the code itself: a new error class
outside errors.py, a second `one_line`, a raw PREFECT_API_URL read or a status spelled out again fails here. The
mapping of errors to lines and exit statuses is checked through the command line, `serve`, its deployment set-up
and the page. No Prefect server is needed: this file runs in seconds."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_store import build_store
from conftest import ROOT
from test_cli_queries import invoke

from orderly import errors

CODE = [path for folder in ("orderly", "flows", "tasks", "domain") for path in sorted((ROOT / folder).rglob("*.py"))]

# Exceptions that never reach an operator: each is caught where it is raised and turned into an OrderlyError (or,
# in the sandbox, into its HTTP answer). Written down so that a new one is a decision, not an accident.
INTERNAL_SIGNALS = {
    ("orderly/boundary/pages.py", "Retryable"),  # a page to try again: RemoteError once retries are spent
    ("orderly/boundary/paging.py", "PageRuleBroken"),  # a broken paging rule: ProtocolViolation
    ("orderly/boundary/wire.py", "NotJson"),  # a body that is not JSON: retried, then RemoteError
    ("orderly/boundary/body.py", "BodyTooLarge"),  # past ORDERLY_MAX_BODY_BYTES: retried, then RemoteError
    ("orderly/boundary/body.py", "BadEncoding"),  # bad gzip/deflate or charset: retried, then RemoteError
    ("orderly/sandbox/app.py", "_BadParam"),  # the sandbox's own 400
    ("orderly/runtime/tempserver.py", "_Terminated"),  # SIGTERM unwinding the temporary server's block
    ("orderly/feed/signing.py", "BadSignature"),  # a webhook signature that does not check out: the sandbox's 401
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---- item 3: one error model -------------------------------------------------------------------------------


def test_every_error_class_is_an_orderly_error_in_errors_py():
    import importlib

    elsewhere = []
    for path in CODE:
        module = importlib.import_module(
            _relative(path).removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        )
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and (_relative(path), name) not in INTERNAL_SIGNALS
                and module is not errors
            ):
                elsewhere.append(f"{_relative(path)}: {name}")
    assert not elsewhere, elsewhere
    ours = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == "orderly.errors"
    ]
    assert len(ours) > 15 and all(issubclass(value, errors.OrderlyError) for value in ours)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.SettingsError("ORDERLY_X bad"), 2),
        (errors.UnknownOrders([9]), 2),
        (errors.StoreUnusable("x"), 2),
        (errors.PrefectUnreachable("x"), 2),
        (errors.UiRefused("x"), 2),
        (errors.StoreBusy("x"), 3),
        (errors.StaleStock("x"), 4),
        (errors.ProtocolViolation("x"), 5),
        (errors.RunIncomplete("x"), 5),
        (errors.PrefectGone("x"), 6),
        (errors.RunFailed("x", 4, None), 4),
        (errors.Declined("x"), 1),
        (errors.ProblemsFound("x"), 1),
        (errors.TemporaryServerFailed("x"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_each_error_carries_the_contracts_exit_status(error, status):
    assert errors.explain(error).exit_code == status


def test_every_error_survives_pickling_whole():
    import pickle

    for error in (
        errors.RunFailed("x", 4, "id"),
        errors.UnknownOrders([3, 1]),
        errors.SettingsError("x", "ORDERLY_DB"),
        errors.StaleStock("x"),
    ):  # Prefect may pickle a failed run's exception
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), str(again), vars(again)) == (type(error), str(error), vars(error))


def test_an_unexpected_error_is_one_masked_line_without_its_class_name():
    explained = errors.explain(RuntimeError("boom at http://user:secret@host/api?token=1\n  File x.py, line 3"))
    assert explained.exit_code == 1 and not explained.expected
    assert explained.line.startswith("unexpected failure: boom at http://***@host/api?***")
    assert "secret" not in explained.line and "RuntimeError" not in explained.line and "\n" not in explained.line
    assert explained.on_terminal().startswith("error: unexpected failure: boom")
    assert explained.on_terminal().endswith("(ORDERLY_DEBUG=1 shows the traceback)")  # the page shows `line` alone
    assert errors.explain(errors.SettingsError("a\nb")).line == "a"  # ours: the first line, as it is


def test_the_page_and_the_command_line_do_not_import_each_other():
    check = (
        "import sys, orderly.ui, orderly.ui.app, orderly.ui.actions\n"
        "print(sorted(m for m in sys.modules if m == 'orderly.cli' or m.startswith('orderly.cli.')))"
    )
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, check=True)
    assert found.stdout.strip() == "[]", found.stdout
    imported = {
        ast.unparse(node)
        for path in (ROOT / "orderly" / "ui").rglob("*.py")
        for node in ast.walk(_tree(path))
        if isinstance(node, (ast.Import, ast.ImportFrom)) and re.search(r"\borderly(\.| import )cli", ast.unparse(node))
    }
    assert not imported, imported  # the page runs a command as a subprocess: a string, never an import
    found = subprocess.run(
        [sys.executable, "-c", "import sys, orderly.cli.main; print('orderly.ui' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert found.stdout.strip() == "False"  # `orderly ui` imports the page when it runs, not before


def test_declining_the_reset_question_is_not_an_error(tmp_path, monkeypatch, capsys):
    import typer

    build_store(tmp_path / "orderly.duckdb")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(typer, "confirm", lambda *args, **kwargs: False)
    code, out, err = invoke(["reset"], {"ORDERLY_DB": str(tmp_path / "orderly.duckdb")}, monkeypatch, capsys)
    assert (code, out, err.strip()) == (1, "", "nothing was reset")


def test_serve_and_its_deployment_set_up_say_a_missing_server_as_the_command_line_does(tmp_path, monkeypatch, capsys):
    env = {"ORDERLY_DB": str(tmp_path / "orderly.duckdb")}
    code, _, err = invoke(["serve"], env, monkeypatch, capsys)
    assert code == 2 and err.startswith("error: orderly serve needs a Prefect server") and err.count("\n") == 1
    from flows import deployments

    assert deployments.main() == 2
    assert capsys.readouterr().err.startswith("error: python -m flows.deployments sets up deployments")


def test_a_press_that_cannot_reach_prefect_shows_the_command_lines_line(tmp_path, monkeypatch):
    from orderly.settings import Settings
    from orderly.ui.actions import ButtonRun, Buttons
    from orderly.ui.snapshot import StoreReader

    settings = Settings.from_env(
        {"ORDERLY_DB": str(tmp_path / "o.duckdb"), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    )
    buttons = Buttons(StoreReader(settings.db_path), settings)
    run = ButtonRun("process", "process-all")
    buttons._drive(run)
    assert run.state == "FAILED"
    assert run.message.startswith("no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api"), run.message


def test_an_unknown_order_is_said_one_way_everywhere(tmp_path, monkeypatch, capsys):
    build_store(tmp_path / "orderly.duckdb")
    env = {"ORDERLY_DB": str(tmp_path / "orderly.duckdb")}
    for args, line in (
        (["explain", "999"], "error: no such order: 999"),
        (["history", "999"], "error: no such order: 999"),
        (["process", "--order", "999", "--order", "2"], "error: no such order: 999; nothing was changed"),
        (["reset", "--order", "998", "--order", "999"], "error: no such order: 998, 999; nothing was changed"),
    ):
        code, _, err = invoke(args, env, monkeypatch, capsys)
        assert (code, err.strip()) == (2, line), args
    spelled = [_relative(path) for path in CODE if "no such order" in path.read_text()]
    assert spelled == ["orderly/errors.py"], spelled


# ---- item 4: one source per fact ---------------------------------------------------------------------------


def _constants(path: Path) -> list[str]:
    return [
        node.value for node in ast.walk(_tree(path)) if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_statuses_and_reasons_are_spelled_only_by_the_domain():
    # FAILED is also a run's state (COMPLETED, FAILED, CRASHED); the store speaks SQL and imports nothing of the
    # domain (docs/DESIGN.md), so its statements hold the words as stored values.
    words = {"NEW", "PROCESSED", "UNKNOWN_INVENTORY", "INSUFFICIENT_STOCK"}
    found = {_relative(path) for path in CODE if words & set(_constants(path))}
    assert found == {"domain/model.py"}, found


def test_help_lists_the_domains_words(monkeypatch, capsys, tmp_path):
    from domain.model import DECIDED, Reason, Status

    env = {"ORDERLY_DB": str(tmp_path / "o.duckdb")}
    _, out, _ = invoke(["status", "--help"], env, monkeypatch, capsys, width=200)
    assert all(str(word) in out for word in [*Status, *Reason])
    _, out, _ = invoke(["reset", "--help"], env, monkeypatch, capsys, width=200)
    assert f"Only orders with this status: {DECIDED[0]} or {DECIDED[1]}." in re.sub(r"[\s│]+", " ", out)


def test_the_integer_bound_is_written_once():
    spelled = []
    for path in CODE:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Constant) and node.value == 2**63 - 1:
                spelled.append(_relative(path))
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Sub)
                and ast.unparse(node.left) == "2 ** 63"
                and ast.unparse(node.right) == "1"
            ):
                spelled.append(_relative(path))
    assert spelled == ["domain/bounds.py"], spelled


def test_one_line_is_defined_once():
    defined = [
        _relative(path)
        for path in CODE
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef) and node.name == "one_line"
    ]
    assert defined == ["orderly/errors.py"], defined


# Environment reads outside orderly/settings.py, each for a reason: the terminal's width, read once at import by the
# output module as rich reads it; the TLS trust store, read by the remote client as httpx does.
OTHER_READS = {
    ("orderly/cli/output.py", "COLUMNS"),
    ("orderly/boundary/remote.py", "SSL_CERT_FILE"),
    ("orderly/boundary/remote.py", "SSL_CERT_DIR"),
}


def test_the_environment_is_read_only_by_the_settings():
    reads = set()
    for path in CODE:
        if _relative(path) == "orderly/settings.py":
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
                reads.add((_relative(path), ast.unparse(node.args[0]).strip("'\"")))
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and ast.unparse(node.value) == "os.environ"
            ):
                reads.add((_relative(path), ast.unparse(node.slice).strip("'\"")))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and node.args
                and ast.unparse(node.args[0]) == "'PREFECT_API_URL'"
            ):
                reads.add((_relative(path), "PREFECT_API_URL"))  # from any mapping: env.get("PREFECT_API_URL")
    assert reads <= OTHER_READS, reads - OTHER_READS


def test_a_command_reads_its_settings_once(tmp_path, monkeypatch, capsys):
    from orderly.settings import Settings

    build_store(tmp_path / "orderly.duckdb")
    calls = []
    real = Settings.from_env.__func__

    def counted(cls, env=None):
        calls.append(1)
        return real(cls, env)

    monkeypatch.setattr(Settings, "from_env", classmethod(counted))
    for n, args in enumerate(
        (["status"], ["runs"], ["explain", "2"], ["rejects", "--run", "0"], ["process", "--order", "999"])
    ):
        calls.clear()
        # a new environment each time (as a new command has): read, and checked, once
        invoke(
            args,
            {"ORDERLY_DB": str(tmp_path / "orderly.duckdb"), "ORDERLY_LOCK_TIMEOUT": str(n + 1)},
            monkeypatch,
            capsys,
        )
        assert len(calls) == 1, args
