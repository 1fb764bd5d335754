"""The rules of Orderly in pure Python (numpy for columns; no I/O, no Prefect, no DuckDB).

- domain.rule: the rule itself (decide, reset, when processing must refuse)
- domain.decisions: what it decides (`Decisions`, the status changes as columns, with explanations)
- domain.model: the vocabulary (Status, Reason): the one place the words are spelled
- domain.bounds: the integer bound of ids and quantities

The names below load on first use: the command line's queries and the settings read domain.model and
domain.bounds, and must not pay for numpy, which the rule needs.
"""

from importlib import import_module

_HOME = {
    "TRANSITIONS": "domain.decisions",
    "Decisions": "domain.decisions",
    "RESET": "domain.model",
    "Reason": "domain.model",
    "Status": "domain.model",
    "parse_reason": "domain.model",
    "parse_status": "domain.model",
    "decide": "domain.rule",
    "reset": "domain.rule",
    "stock_refusal": "domain.rule",
}

__all__ = list(_HOME)


def __getattr__(name: str) -> object:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    if name in ("rule", "decisions", "model", "bounds"):
        return import_module(f"domain.{name}")
    raise AttributeError(f"module 'domain' has no attribute {name!r}")
