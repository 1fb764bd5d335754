"""The web page's guards as pure functions: which hosts are loopback, which requests are cross-site, the token."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from orderly.errors import SettingsError, UiRefused
from orderly.settings import Settings
from orderly.ui import check
from orderly.ui.security import cross_site, is_loopback, token_matches

TOKEN = "t0ken-abcdefghijklmnop"


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def _headers(**values: str) -> Headers:
    return Headers({name.replace("_", "-"): value for name, value in values.items()})


@pytest.mark.parametrize(
    "headers, refused",
    [
        (_headers(host="127.0.0.1:8000", origin="http://127.0.0.1:8000"), False),
        (_headers(host="localhost:8000", origin="http://LOCALHOST:8000"), False),
        (_headers(host="[::1]:8000", origin="http://[::1]:8000"), False),
        (_headers(host="127.0.0.1", origin="http://127.0.0.1:80"), False),  # the default port, spelled out
        (_headers(host="127.0.0.1:8000", sec_fetch_site="same-origin"), False),
        (_headers(host="127.0.0.1:8000", sec_fetch_site="none"), False),  # typed in the address bar
        (_headers(host="127.0.0.1:8000"), False),  # not a browser (curl)
        (_headers(host="127.0.0.1:8000", origin="http://127.0.0.1:8001"), True),
        (_headers(host="127.0.0.1:8000", origin="https://127.0.0.1:8000"), True),
        (_headers(host="127.0.0.1:8000", origin="http://localhost:8000"), True),  # another origin, same machine
        (_headers(host="127.0.0.1:8000", origin="null"), True),
        (_headers(host="127.0.0.1:8000", origin="garbage"), True),
        (_headers(host="127.0.0.1:8000", origin="http://127.0.0.1:8000", sec_fetch_site="cross-site"), False),
        (_headers(host="127.0.0.1:8000", sec_fetch_site="cross-site"), True),
        (_headers(host="127.0.0.1:8000", sec_fetch_site="same-site"), True),
    ],
)
def test_cross_site_requests(headers, refused):
    assert (cross_site(headers, "http") is not None) is refused


@pytest.mark.parametrize(
    "header, ok",
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer  {TOKEN} ", True),
        (None, False),
        ("", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN}0", False),
        ("Bearer tökén", False),
    ],
)
def test_token_matching(header, ok):
    assert token_matches(header, TOKEN) is ok


@pytest.mark.parametrize("value", ["sixteen chars ok", "é" * 20, "tab\tinside-the-token"])
def test_a_ui_token_unfit_for_a_header_is_a_settings_error_that_never_repeats_it(value):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"ORDERLY_UI_TOKEN": value})
    assert "ORDERLY_UI_TOKEN" in str(raised.value) and value not in str(raised.value)


def test_a_short_ui_token_is_refused_without_repeating_it():
    with pytest.raises(UiRefused) as raised:
        check(Settings.from_env({"ORDERLY_UI_TOKEN": "short-secret"}), "127.0.0.1")
    assert "16" in str(raised.value) and "short-secret" not in str(raised.value)


def test_beyond_loopback_only_with_a_token():
    with pytest.raises(UiRefused, match="ORDERLY_UI_TOKEN"):
        check(Settings.from_env({}), "0.0.0.0")
    assert check(Settings.from_env({}), "127.0.0.1") is True
    assert check(Settings.from_env({"ORDERLY_UI_TOKEN": TOKEN}), "0.0.0.0") is False
    assert "abcdefghijklmnop" not in repr(Settings.from_env({"ORDERLY_UI_TOKEN": TOKEN}))
