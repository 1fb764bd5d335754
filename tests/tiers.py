"""The two tiers of the suite: `make test-fast` runs the tests not marked `slow`, `make test` runs every test.

A test's tier follows from what it uses, so a new test lands in the right one without anyone deciding:
- it is slow when it uses, directly or through the fixtures it depends on, a fixture that starts a Prefect server,
  an `orderly` subprocess or a browser (SLOW_FIXTURES);
- it is slow when it is a property test whose example count stays above FAST_EXAMPLES under the fast profile: one
  that sets `max_examples` itself instead of through `examples()`.
A module whose tests start such processes without such a fixture (through a helper function) says so itself with
`pytestmark = pytest.mark.slow`.

The fast profile (HYPOTHESIS_PROFILE=fast, set by `make test-fast`) keeps every property test in the fast tier at
FAST_EXAMPLES examples; the default profile runs each with its full count, as CI does.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

FAST_PROFILE = "fast"
FAST_EXAMPLES = 10

# Fixtures whose tests start processes that cost seconds: a `prefect server` (prefect_server, the in-process one of
# prefect_test_harness, and the temporary servers commands start under prefect_home), `orderly sandbox`
# (sandbox_server), Chromium (browser). A fixture built on one of them (cli_env, a module's seeded store) counts too.
SLOW_FIXTURES = frozenset(
    {
        "prefect_server",
        "prefect_harness",
        "prefect_home",
        "sandbox_server",
        "browser",
    }
)

settings.register_profile(FAST_PROFILE, max_examples=FAST_EXAMPLES)


def load_profile() -> None:
    """The profile HYPOTHESIS_PROFILE names (`fast`), or Hypothesis' default."""
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def fast() -> bool:
    return settings.get_current_profile_name() == FAST_PROFILE


def examples(full: int) -> int:
    """A property test's example count: `full`, as CI runs it, or at most FAST_EXAMPLES under the fast profile."""
    return min(full, FAST_EXAMPLES) if fast() else full


def slow_because(item: pytest.Item) -> str | None:
    """Why this test belongs to the slow tier, or None when it is fast."""
    used = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used:
        return f"uses {', '.join(sorted(used))}"
    count = _max_examples(item)
    if count is not None and count > FAST_EXAMPLES:
        return f"a property test of {count} examples"
    return None


def classify(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is None and slow_because(item) is not None:
            item.add_marker(pytest.mark.slow)


def _max_examples(item: pytest.Item) -> int | None:
    """The example count a Hypothesis test runs with (its own settings, else the loaded profile's), or None."""
    test = getattr(item, "obj", None)
    if not getattr(test, "is_hypothesis_test", False):
        return None
    chosen = getattr(test, "_hypothesis_internal_use_settings", None) or settings.default
    return chosen.max_examples
