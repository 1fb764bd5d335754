"""The store's schema as numbered migrations; a file is brought to the newest version on first use."""

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE orders (
        order_id     BIGINT PRIMARY KEY,
        placed_at    TIMESTAMPTZ NOT NULL,
        customer_id  VARCHAR NOT NULL,
        items        INTEGER NOT NULL,      -- number of lines
        total_qty    BIGINT NOT NULL,       -- sum of line quantities
        fingerprint  UBIGINT NOT NULL,      -- hash of the record as first seen: detects changed re-sends
        status       VARCHAR NOT NULL DEFAULT 'NEW',
        reason       VARCHAR,
        loaded_run   VARCHAR,
        loaded_at    TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE order_lines (
        order_id     BIGINT NOT NULL,
        line_no      INTEGER NOT NULL,
        inventory_id BIGINT NOT NULL,
        quantity     BIGINT NOT NULL
    );
    CREATE TABLE stock_snapshots (
        snapshot_id  INTEGER PRIMARY KEY,
        run_id       VARCHAR,
        completed_at TIMESTAMPTZ NOT NULL,  -- local time the whole snapshot was loaded: its age counts from here
        received     INTEGER NOT NULL,
        loaded       INTEGER NOT NULL,
        rejected     INTEGER NOT NULL
    );
    CREATE TABLE stock_items (
        inventory_id BIGINT NOT NULL,       -- unique by load; no index, so a sync can replace keys in one transaction
        product_id   BIGINT NOT NULL,
        sku          VARCHAR NOT NULL,
        product_name VARCHAR NOT NULL,
        warehouse_id BIGINT NOT NULL,
        quantity     BIGINT NOT NULL,
        updated_at   TIMESTAMPTZ NOT NULL,
        snapshot_id  INTEGER NOT NULL       -- the snapshot that last wrote this value
    );
    CREATE TABLE status_changes (
        run_id       VARCHAR NOT NULL,
        order_id     BIGINT NOT NULL,
        changed_at   TIMESTAMPTZ NOT NULL,
        from_status  VARCHAR NOT NULL,
        to_status    VARCHAR NOT NULL,
        reason       VARCHAR
    );
    CREATE TABLE runs (
        run_id       VARCHAR PRIMARY KEY,   -- the Prefect flow run id
        flow         VARCHAR NOT NULL,
        pid          INTEGER,
        started_at   TIMESTAMPTZ NOT NULL,
        ended_at     TIMESTAMPTZ,
        state        VARCHAR NOT NULL,      -- RUNNING, COMPLETED, FAILED, CRASHED
        fetched      BIGINT DEFAULT 0,
        loaded       BIGINT DEFAULT 0,
        rejected     BIGINT DEFAULT 0,
        processed    BIGINT DEFAULT 0,
        failed       BIGINT DEFAULT 0,
        reset        BIGINT DEFAULT 0,
        message      VARCHAR
    );
    CREATE TABLE rejects (
        run_id       VARCHAR,
        source       VARCHAR NOT NULL,      -- 'order' or 'stock'
        record_key   VARCHAR,               -- the record's id when it has one
        raw          VARCHAR NOT NULL,      -- the record as received, JSON
        reasons      VARCHAR NOT NULL,
        rejected_at  TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE cursors (
        name         VARCHAR PRIMARY KEY,
        after_id     BIGINT NOT NULL
    );
    """,
]
