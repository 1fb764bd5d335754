"""Deterministic fault injection for the sandbox's two APIs.

Whether a request fails, and how, is a hash of (seed, query, how many times that
query was asked before): the same sequence of requests always meets the same
faults. A query never fails more than MAX_STREAK times in a row, so a client that
retries enough always gets through.
"""

from __future__ import annotations

import hashlib

FAULT_KINDS = ("500", "503", "429", "truncated", "bad_envelope", "slow")
MAX_STREAK = 3
_MAX_TRACKED = 200_000  # distinct queries remembered; beyond that, start afresh (bounded memory)


class FaultInjector:
    """Decides, per request, whether to fail it and with which of FAULT_KINDS."""

    def __init__(self, seed: int, rate: float, *, max_streak: int = MAX_STREAK) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {rate}")
        self.seed = seed
        self.rate = rate
        self.max_streak = max_streak
        self._seen: dict[str, list[int]] = {}  # query -> [times asked, current run of faults]

    def decide(self, query: str) -> str | None:
        """The fault for this request of `query` (a normalised path + parameters), or None."""
        if self.rate <= 0.0:
            return None
        if len(self._seen) >= _MAX_TRACKED:
            self._seen.clear()
        state = self._seen.setdefault(query, [0, 0])
        attempt = state[0]
        state[0] += 1
        if state[1] >= self.max_streak:
            state[1] = 0  # this query has failed enough in a row: let it through
            return None
        digest = hashlib.blake2b(f"{self.seed}|{query}|{attempt}".encode(), digest_size=16).digest()
        if int.from_bytes(digest[:8], "big") / 2.0**64 >= self.rate:
            state[1] = 0
            return None
        state[1] += 1
        return FAULT_KINDS[int.from_bytes(digest[8:], "big") % len(FAULT_KINDS)]
