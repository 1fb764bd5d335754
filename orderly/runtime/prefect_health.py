"""Whether a Prefect API answers, asked as Prefect's own client first asks (GET /health), without importing Prefect.

One probe for every place that must say so in one line before Prefect's imports and tracebacks: the data-changing
commands, `orderly serve`, `orderly doctor` and the web page's buttons."""

from __future__ import annotations


def why_not_answering(api: str, timeout: float) -> str | None:
    """None when GET <api>/health answers 200; otherwise why not, in words a person can act on (never a class name)."""
    import httpx

    url = f"{api.strip().rstrip('/')}/health"
    try:
        # Certificates only for https: loading the CA bundle for a plain-http URL cost 0.14 s per command.
        answer = httpx.get(url, timeout=timeout, verify=url.lower().startswith("https:"))
    except (httpx.HTTPError, ValueError) as error:  # ValueError: not a URL httpx can ask
        return failure_in_words(error, timeout)
    if answer.status_code != 200:
        return f"it answers {answer.status_code} to /health: is it a Prefect API (the URL ends in /api)?"
    return None


def failure_in_words(error: Exception, timeout: float) -> str:
    """Why an HTTP request got no answer, without the library's class names: what a person can act on."""
    import httpx

    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if "refused" in str(error).lower() else "cannot connect"
    return "the request failed"
