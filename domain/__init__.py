"""The rules of Orderly in pure Python (numpy for columns; no I/O, no Prefect, no DuckDB).

- domain.rule: the rule itself (decide, reset, when processing must refuse)
- domain.decisions: what it decides (`Decisions`, the status changes as columns, with explanations)
- domain.model: the vocabulary (Status, Reason)
"""

from domain.decisions import TRANSITIONS, Decisions
from domain.model import RESET, Reason, Status, parse_reason, parse_status
from domain.rule import decide, reset, stock_refusal

__all__ = [
    "RESET",
    "TRANSITIONS",
    "Decisions",
    "Reason",
    "Status",
    "decide",
    "parse_reason",
    "parse_status",
    "reset",
    "stock_refusal",
]
