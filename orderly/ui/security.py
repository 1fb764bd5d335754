"""What keeps the page safe: loopback Host names only (against DNS rebinding) unless a token guards it, the
bearer token (compared in constant time, never logged), no cross-site POST, and headers that keep the page
out of other sites' frames."""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderly.ui.jsonresp import JSONResponse

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC_API = {"/api/config"}  # tells the page whether to ask for the token; nothing else is public
DEFAULT_PORTS = {"http": 80, "https": 443}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (what binding to needs no token)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_and_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    try:
        number = int(port) if port else DEFAULT_PORTS.get(scheme)
    except ValueError:
        number = -1
    return host, number


def cross_site(headers: Headers, scheme: str) -> str | None:
    """Why a state-changing request looks cross-site, or None. Browsers send Origin on every cross-origin POST
    (and Sec-Fetch-Site); a client that sends neither is not a browser, so no other site is driving it."""
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or not parts.netloc:
            return "a request from an opaque origin"
        if (parts.scheme, _host_and_port(parts.netloc, parts.scheme)) != (scheme, _host_and_port(host, scheme)):
            return "a request from another origin"
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        return f"a {site} request"
    return None


def token_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())


class Guard:
    """ASGI middleware in front of every request."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_hosts_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_hosts_only = loopback_hosts_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if scope["path"].startswith("/api/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            status, message, extra = refusal
            return await JSONResponse({"error": message}, status_code=status, headers=extra)(
                scope, receive, send_with_headers
            )
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> tuple[int, str, dict] | None:
        headers = Headers(scope=scope)
        if self.loopback_hosts_only:
            host, _ = _host_and_port(headers.get("host", ""), scope.get("scheme", "http"))
            if not is_loopback(host):
                return 403, "refused: this page answers only to localhost or a loopback address", {}
        path = scope["path"]
        if (
            self.token
            and path.startswith("/api/")
            and path not in PUBLIC_API
            and not token_matches(headers.get("authorization"), self.token)
        ):
            return 401, "this page needs its access token (ORDERLY_UI_TOKEN)", {"WWW-Authenticate": "Bearer"}
        if scope["method"] not in SAFE_METHODS:
            why = cross_site(headers, scope.get("scheme", "http"))
            if why is not None:
                return 403, f"refused: {why} cannot press this page's buttons", {}
        return None
