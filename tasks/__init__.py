"""Prefect tasks, one module per step: ingest, process, report. Thin: orderly.ingest, orderly.service, domain/ and
the store do the work."""

from prefect import task
from prefect.cache_policies import NO_CACHE

# Every step: never cached (each run must do its work), and its result kept in memory only (inside the worker's
# background task Prefect would otherwise write each step's result to storage, where nothing reads it).
step = task(cache_policy=NO_CACHE, persist_result=False)
