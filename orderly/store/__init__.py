"""The DuckDB store: the only package that speaks SQL. `writes` changes data, `queries` reads it."""

from orderly.store.connection import connect, open_store

__all__ = ["connect", "open_store"]
