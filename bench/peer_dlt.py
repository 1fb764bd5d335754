"""A peer on the same sandbox: dlt's rest_api source -> duckdb, orders and stock (run by bench/run.py with the
side environment's Python, .venv-peers; dlt is not a dependency of Orderly).

    .venv-peers/bin/python bench/peer_dlt.py --url http://127.0.0.1:PORT --work /tmp/dlt

Prints one JSON line: the rows dlt loaded per table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DLT_DATA_DIR", str(work / "dlt-data"))
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {"base_url": args.url},
            "resources": [
                {
                    "name": "orders",
                    "endpoint": {
                        "path": "orders",
                        "params": {"limit": 1000},
                        "data_selector": "orders",
                        # the contract's cursor: the next page asks for after_id = the body's next_after_id
                        "paginator": {"type": "cursor", "cursor_path": "next_after_id", "cursor_param": "after_id"},
                    },
                    "primary_key": "id",
                    "write_disposition": "append",
                },
                {
                    "name": "stock",
                    "endpoint": {
                        "path": "stock",
                        "params": {"per_page": 1000},
                        "data_selector": "items",
                        "paginator": {
                            "type": "page_number",
                            "base_page": 1,
                            "page_param": "page",
                            "total_path": "total_pages",
                        },
                    },
                    "primary_key": "inventory_id",
                    "write_disposition": "replace",
                },
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="orderly_peer",
        destination=dlt.destinations.duckdb(str(work / "dlt_peer.duckdb")),
        dataset_name="sandbox",
        pipelines_dir=str(work / "pipelines"),
    )
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    print(json.dumps({name: n for name, n in sorted(counts.items()) if not name.startswith("_dlt")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
