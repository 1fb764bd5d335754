"""`orderly ui`: the seed's page (the orders table with Process All and Reset State) served by Orderly itself.

Plain HTML, CSS and JavaScript from orderly/ui/static (no build step, nothing from a CDN), a small JSON API
under /api/ (orderly.ui.app), reads from a private copy of the store (orderly.ui.snapshot), and button runs
that are Prefect flow runs (orderly.ui.actions).
"""

from __future__ import annotations

import socket
import sys

from orderly.errors import UiRefused
from orderly.settings import Settings
from orderly.ui.security import is_loopback

UI_TOKEN_MIN_LENGTH = 16  # a token a page on the network asks for: too long to guess


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(address[:2] if family == socket.AF_INET else address, family=family)
    except OSError as problem:
        raise UiRefused(f"cannot listen on {host}:{port}: {problem.strerror or problem}") from None


def check(settings: Settings, host: str) -> bool:
    """Refuse an unsafe start (before anything listens); returns whether only loopback Host names are served.
    The token's characters were checked with the other settings (orderly.settings); its length is checked here."""
    if settings.ui_token is not None and len(settings.ui_token) < UI_TOKEN_MIN_LENGTH:
        raise UiRefused(f"ORDERLY_UI_TOKEN must be at least {UI_TOKEN_MIN_LENGTH} characters (a long random string)")
    loopback = is_loopback(host)
    if not loopback and settings.ui_token is None:
        raise UiRefused(
            f"--host {host} is not a loopback address, so the page needs ORDERLY_UI_TOKEN "
            "(a long random string the page then asks for); or leave --host at 127.0.0.1"
        )
    return loopback


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from orderly.ui.app import create_app

    loopback = check(settings, host)
    sock = _listen(host, port)
    bound_port = sock.getsockname()[1]
    app = create_app(settings.db_path, token=settings.ui_token, loopback_hosts_only=loopback, settings=settings)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"orderly ui: http://{shown}:{bound_port}/ (store {settings.db_path}; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    server.run(sockets=[sock])
