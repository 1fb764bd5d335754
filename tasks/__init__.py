"""Prefect tasks, one module per step: fetch, validate, load, process, report. Thin: orderly.service, domain/ and the store do the work."""
