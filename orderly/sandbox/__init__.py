"""The built-in sandbox: a stand-in for the remote orders and warehouse services (CONTRACT.md section 1).

from orderly.sandbox import in_process_transport, create_app, serve, dataset_for, generate
"""

from .app import create_app, in_process_transport, serve
from .base import DataSet
from .data import GeneratedDataSet, SeedDataSet, dataset_for, default_items, generate, seed_dataset
from .faults import FAULT_KINDS, FaultInjector

__all__ = [
    "FAULT_KINDS",
    "DataSet",
    "FaultInjector",
    "GeneratedDataSet",
    "SeedDataSet",
    "create_app",
    "dataset_for",
    "default_items",
    "generate",
    "in_process_transport",
    "seed_dataset",
    "serve",
]
