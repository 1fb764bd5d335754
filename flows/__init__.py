"""Prefect flows composed from tasks (pipeline, sync, process_all, reset_state) and their deployments."""
