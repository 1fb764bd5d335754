"""Which data set the sandbox serves: the fixed seed set, or a generated one.

`dataset_for(settings)` is what the app uses; it caches per data-relevant settings
so building several apps or transports over one data set costs nothing extra.
"""

from __future__ import annotations

from functools import lru_cache

from orderly.settings import SandboxSettings

from .base import MAX_PAGE, DataSet
from .generated import ORDER_FLAWS, STOCK_FLAWS, GeneratedDataSet, default_items
from .seed import SeedDataSet

__all__ = [
    "MAX_PAGE",
    "ORDER_FLAWS",
    "STOCK_FLAWS",
    "DataSet",
    "GeneratedDataSet",
    "SeedDataSet",
    "dataset_for",
    "default_items",
    "generate",
    "seed_dataset",
]


def seed_dataset() -> SeedDataSet:
    """The original shop's demo: orders 2..16 over 8 inventory items."""
    return SeedDataSet()


def generate(orders: int, items: int | None = None, seed: int = 0, bad_rate: float = 0.0) -> GeneratedDataSet:
    """A deterministic, prefix-stable data set of `orders` orders over `items` inventory items."""
    return GeneratedDataSet(orders=orders, items=items, seed=seed, bad_rate=bad_rate)


@lru_cache(maxsize=8)
def _cached(orders: int | None, items: int | None, seed: int, bad_rate: float) -> DataSet:
    if orders is None:
        return seed_dataset()
    return generate(orders, items, seed, bad_rate)


def dataset_for(settings: SandboxSettings) -> DataSet:
    """The data set `settings` describe (seed set when `settings.orders` is None), cached."""
    # Keyed on data fields only: faults, latency and token do not change the records.
    return _cached(settings.orders, settings.items, settings.seed, settings.bad_rate)
