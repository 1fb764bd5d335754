"""The tier rule (tests/tiers.py): a test is slow because of the fixtures it uses or its example count, and the rule
holds for tests nobody classified by hand; and how the tests are spread over workers (tests/spread.py) and shards
(tests/shards.py). The rules are tried on small made-up modules, collected with pytester."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import shards
import spread
import tiers

HERE = Path(__file__).resolve().parent

MODULE = """
import pytest
from hypothesis import given, settings, strategies as st

from tiers import examples


@pytest.fixture(scope="session")
def prefect_server():
    yield {"api_url": "http://127.0.0.1:1/api"}


@pytest.fixture
def cli_env(tmp_path, prefect_server):
    return {"PREFECT_API_URL": prefect_server["api_url"]}


@pytest.fixture(scope="module")
def seeded(cli_env):
    return cli_env


@pytest.fixture
def sandbox_server():
    return lambda: "http://127.0.0.1:1"


def test_plain(tmp_path):
    pass


def test_server(prefect_server):
    pass


def test_through_two_fixtures(seeded):
    pass


def test_sandbox(sandbox_server):
    pass


@settings(max_examples=300)
@given(st.integers())
def test_full_size_property(n):
    pass


@settings(max_examples=examples(300))
@given(st.integers())
def test_scaled_property(n):
    pass


@settings(max_examples=5)
@given(st.integers())
def test_small_property(n):
    pass
"""


@contextmanager
def profile(name: str) -> Iterator[None]:
    """Hypothesis' profile as HYPOTHESIS_PROFILE=name loads it; the run's own one again afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYPOTHESIS_PROFILE", name)
        tiers.load_profile()
        try:
            yield
        finally:
            patch.undo()
            tiers.load_profile()


@pytest.fixture
def items(pytester, monkeypatch):
    """The made-up module's tests, collected and classified as the suite's own are, under the fast profile."""
    monkeypatch.syspath_prepend(str(HERE))  # the made-up module imports tiers, as the suite's do
    pytester.makeini("[pytest]\nmarkers = slow: as in pyproject.toml")
    with profile(tiers.FAST_PROFILE):
        collected = pytester.getitems(MODULE)
        tiers.classify(collected)
    return {item.name: item for item in collected}


def slow(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None


def test_a_test_using_the_prefect_server_is_slow(items):
    assert slow(items["test_server"])
    assert tiers.slow_because(items["test_server"]) == "uses prefect_server"


def test_a_fixture_that_needs_the_server_makes_its_tests_slow_too(items):
    assert slow(items["test_through_two_fixtures"])  # seeded -> cli_env -> prefect_server


def test_a_test_using_the_sandbox_subprocess_is_slow(items):
    assert slow(items["test_sandbox"])


def test_a_plain_test_is_fast(items):
    assert not slow(items["test_plain"])
    assert tiers.slow_because(items["test_plain"]) is None


def test_a_property_test_is_fast_only_at_reduced_examples(items):
    assert slow(items["test_full_size_property"])
    assert tiers.slow_because(items["test_full_size_property"]) == "a property test of 300 examples"
    assert not slow(items["test_scaled_property"])  # examples(300) is FAST_EXAMPLES under the fast profile
    assert not slow(items["test_small_property"])


def test_examples_are_full_size_outside_the_fast_profile():
    with profile("default"):  # the profile `make test` (and CI) runs
        assert not tiers.fast() and tiers.examples(300) == 300
    with profile(tiers.FAST_PROFILE):
        assert tiers.examples(300) == tiers.FAST_EXAMPLES and tiers.examples(5) == 5


def test_every_slow_fixture_exists():
    """A renamed fixture would silently move its tests to the fast tier: each name must still be a fixture."""
    defined = set()
    for path in HERE.glob("*.py"):
        defined |= set(re.findall(r"@pytest\.fixture[^\n]*\n(?:@[^\n]*\n)*def (\w+)\(", path.read_text()))
    assert defined >= tiers.SLOW_FIXTURES, tiers.SLOW_FIXTURES - defined


def test_shards_share_out_every_example():
    assert shards.counts(200, 50) == [50, 50, 50, 50]
    assert shards.counts(20, 50) == [20]  # the fast profile's: one shard
    assert shards.counts(7, 3) == [4, 3] and sum(shards.counts(201, 50)) == 201


def test_the_shards_stats_add_up_in_the_shard_that_ends_last(tmp_path_factory, request):
    test = request.node.name  # a directory of this test's own in the run's temporary directory
    assert shards.pooled(tmp_path_factory, test, 1, 3, Counter(examples=50, overlap=1)) == Counter()
    assert shards.pooled(tmp_path_factory, test, 0, 3, Counter(examples=50)) == Counter()
    assert shards.pooled(tmp_path_factory, test, 2, 3, Counter(examples=40, faults=2)) == Counter(
        examples=140, overlap=1, faults=2
    )


SPREAD = """
import pytest


@pytest.fixture(scope="module")
def shared():
    return 1


def test_a(shared):
    pass


def test_b():
    pass


@pytest.mark.slow
def test_c():
    pass


@pytest.mark.timeout(1800)
def test_d():
    pass


def test_e(shared):
    pass
"""


def test_tests_sharing_a_module_fixture_go_together_and_long_ones_go_first(pytester):
    pytester.makeini("[pytest]\nmarkers =\n    slow: as in pyproject.toml\n    timeout: pytest-timeout's")
    items = pytester.getitems(SPREAD)
    items[0].config.option.loadgroup = True  # as on a worker of `--dist loadgroup`
    spread.arrange(items[0].config, items)
    assert [item.name for item in items] == ["test_d", "test_c", "test_a", "test_b", "test_e"]
    module = items[0].nodeid.split("::")[0]
    grouped = {item.name: item.nodeid.endswith(f"@{module}") for item in items}
    assert grouped == {"test_a": True, "test_e": True, "test_b": False, "test_c": False, "test_d": False}
