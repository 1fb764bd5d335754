"""Validate tasks: pandera schemas split each batch into good rows and quarantined records with reasons."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from orderly import progress
from orderly.validation import ValidOrders, ValidStock, validate_orders, validate_stock


@task(cache_policy=NO_CACHE)
def validate_stock_records(records: list[Any]) -> ValidStock:
    valid = validate_stock(records)
    progress.advance("validate stock", records=valid.received)
    _log(valid.received, len(valid.items), valid.rejects)
    return valid


@task(cache_policy=NO_CACHE)
def validate_order_records(records: list[Any]) -> ValidOrders:
    valid = validate_orders(records)
    progress.advance("validate orders", records=valid.received)
    _log(valid.received, len(valid.orders), valid.rejects)
    return valid


def _log(received: int, good: int, rejects) -> None:
    logger = get_run_logger()
    if len(rejects):
        logger.warning("%d of %d records quarantined, e.g. %s", len(rejects), received, rejects["reasons"].iloc[0])
    else:
        logger.info("all %d records valid", good)
