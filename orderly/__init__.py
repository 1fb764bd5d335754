"""Orderly's shell: command line, settings, the DuckDB store and the sandbox remotes."""
