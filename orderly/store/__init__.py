"""The DuckDB store: the only package that speaks SQL. `schema` its migrations, `connection` opening the file,
`writes` every change (`decided` the rows of a decision), `queries` every read."""

from orderly.store.connection import connect, open_store

__all__ = ["connect", "open_store"]
