"""How a command lives under Prefect: a temporary server when none is configured, watching the server, SIGTERM,
ending a run cleanly, progress on a terminal, and the garbage collector's policy during a big run."""
