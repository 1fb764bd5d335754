"""How `make test` spreads the tests over its worker processes (pytest-xdist's `--dist loadgroup` with
`--no-loadscope-reorder`): a worker takes the next group of tests, in collection order, whenever it runs short.

- The tests of a module that use a module- or class-scoped fixture form one group, so that fixture starts once, and
  keep their order. Every other test is a group of its own, so a long module is shared out between the workers
  instead of being one long pole.
- Session-scoped fixtures (the Prefect server of tests/conftest.py) start once per worker that uses them.
- Groups go out longest first, as far as collection can tell: tests that allow themselves more than the suite's
  default timeout, then the slow tier (tests/tiers.py), then the rest. A long test started last would leave the
  other workers idle while it runs.
"""

from __future__ import annotations

import pytest
from _pytest.nodeid import NodeId

SHARED_SCOPES = ("module", "class")
DEFAULT_TIMEOUT = 600  # pyproject.toml's --timeout


def arrange(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put each test in its group and sort the items into the order the groups should go out in."""
    groups = {item: item.nodeid.split("::")[0] for item in items if _uses_a_shared_fixture(item)}
    group_rank: dict[str, int] = {}
    for item, group in groups.items():
        group_rank[group] = min(group_rank.get(group, 2), _rank(item))
    # a group's tests all go at its most urgent rank, so they keep their order; the sort is stable
    items.sort(key=lambda item: group_rank[groups[item]] if item in groups else _rank(item))
    for item, group in groups.items():
        _join(config, item, group)


def _join(config: pytest.Config, item: pytest.Item, group: str) -> None:
    """Put the test in `group`. pytest-xdist 3.8 reads the xdist_group mark and appends "@group" to the test's id
    by writing `item._nodeid`, which pytest 9 no longer reads (the id is `item._id`): the mark alone groups nothing,
    so on a worker of `--dist loadgroup` the id is written here, as xdist means to."""
    item.add_marker(pytest.mark.xdist_group(group))
    if getattr(config.option, "loadgroup", False) and not item.nodeid.endswith(f"@{group}"):  # set on the workers
        item._id = NodeId.parse(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]


def _uses_a_shared_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definitions and definitions[-1].scope in SHARED_SCOPES
        for definitions in (info.name2fixturedefs.get(name, ()) for name in info.names_closure)
    )


def _rank(item: pytest.Item) -> int:
    timeout = item.get_closest_marker("timeout")
    if timeout is not None and timeout.args and timeout.args[0] > DEFAULT_TIMEOUT:
        return 0
    return 1 if item.get_closest_marker("slow") is not None else 2
