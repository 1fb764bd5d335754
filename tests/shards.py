"""A long property test's examples cut into shards, each a test of its own so the suite's workers share them, and
the check over all the shards together that the examples exercised what the property is about (a shard of 50 may
well draw no example of a rare kind; 200 do)."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest


def counts(total: int, size: int) -> list[int]:
    """`total` examples as shards of about `size` each (one at least)."""
    shards = max(1, round(total / size))
    return [total // shards + (i < total % shards) for i in range(shards)]


def ids(shards: list[int]) -> list[str]:
    return [f"shard{i}" for i in range(len(shards))]


def pooled(tmp_path_factory: pytest.TempPathFactory, test: str, shard: int, shards: int, stats: Counter) -> Counter:
    """Record this shard's stats for this run of the suite; all shards' stats added up once every shard has recorded
    them (so in the shard that ends last, on whichever worker), else an empty Counter."""
    base = tmp_path_factory.getbasetemp()
    run = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' base dirs share a parent
    directory = run / "shards" / test
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f"{shard}.json.part"
    part.write_text(json.dumps(stats))
    part.replace(directory / f"{shard}.json")  # whole or not there, for a shard reading it at the same moment
    recorded = sorted(directory.glob("*.json"))
    if len(recorded) < shards:
        return Counter()
    return sum((Counter(json.loads(path.read_text())) for path in recorded), Counter())
