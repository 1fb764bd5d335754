"""The store's schema as numbered migrations; a file is brought to the newest version on first use.

Migrations are only ever appended: a file written by any earlier version upgrades step by step, each step
in its own transaction, and nothing it holds is lost.
"""

ORDERS_CURSOR = "orders"  # the row of `cursors` that holds the highest order id read in sequence

# The run counters: one name each, used alike by the `runs` table, `orderly runs`, the run summary artifact
# and a flow's return value. Each is counted once, in the transaction that does what it counts.
RUN_COUNTERS = (
    "stock_fetched",
    "stock_loaded",
    "stock_rejected",
    "stock_repeated",
    "orders_fetched",
    "orders_loaded",
    "orders_rejected",
    "orders_repeated",
    "processed",
    "failed",
    "waiting",
    "reset",
    # A reconciliation (orderly reconcile): order ids at the remote, those already stored, missing, added now,
    # and changed copies (conflicts). A missing order means the incremental path lost one.
    "reconcile_remote",
    "reconcile_stored",
    "reconcile_missing",
    "reconcile_added",
    "reconcile_changed",
    # A delivery of the decision feed: events answered 2xx by the webhook receiver.
    "delivered",
)

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
    # 2: explanations kept with each status change; one counter per measure in `runs`; "available" defined once.
    """
    ALTER TABLE status_changes ADD COLUMN details VARCHAR;  -- JSON: why a FAILED decision failed; NULL: not recorded

    -- Version 1 added stock items and orders into one fetched/loaded/rejected. The stock's share of each is in
    -- the run's stock snapshot, so the split is exact; repeats were not counted, but every order received was
    -- loaded, rejected or an unchanged repeat, so they are what is left.
    ALTER TABLE runs ADD COLUMN stock_fetched BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN stock_loaded BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN stock_rejected BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN orders_fetched BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN orders_loaded BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN orders_rejected BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN orders_repeated BIGINT DEFAULT 0;
    UPDATE runs SET stock_fetched = s.received, stock_loaded = s.loaded, stock_rejected = s.rejected
    FROM (SELECT run_id, sum(received) AS received, sum(loaded) AS loaded, sum(rejected) AS rejected
          FROM stock_snapshots GROUP BY run_id) s
    WHERE runs.run_id = s.run_id;
    UPDATE runs SET orders_fetched = coalesce(fetched, 0) - stock_fetched,
                    orders_loaded = coalesce(loaded, 0) - stock_loaded,
                    orders_rejected = coalesce(rejected, 0) - stock_rejected,
                    orders_repeated = greatest(coalesce(fetched, 0) - stock_fetched
                                               - (coalesce(loaded, 0) - stock_loaded)
                                               - (coalesce(rejected, 0) - stock_rejected), 0);
    ALTER TABLE runs DROP COLUMN fetched;
    ALTER TABLE runs DROP COLUMN loaded;
    ALTER TABLE runs DROP COLUMN rejected;

    -- available(item) = on-hand in the latest snapshot - the quantities of that item in orders PROCESSED now.
    -- A sum of many quantities can pass 2**63-1: allocated and available are HUGEINT, never float.
    CREATE VIEW stock_available AS
    SELECT s.inventory_id, s.quantity AS on_hand,
           coalesce(a.allocated, 0)::HUGEINT AS allocated,
           s.quantity - coalesce(a.allocated, 0)::HUGEINT AS available
    FROM stock_items s LEFT JOIN (
        SELECT l.inventory_id, sum(l.quantity) AS allocated
        FROM order_lines l JOIN orders o USING (order_id)
        WHERE o.status = 'PROCESSED' GROUP BY l.inventory_id
    ) a USING (inventory_id);
    """,
    # 3: identical copies of a stock item in one snapshot are one item; the copies after the first are counted.
    """
    ALTER TABLE runs ADD COLUMN stock_repeated BIGINT DEFAULT 0;
    """,
    # 4: the digest of a stock snapshot whose every record was valid: the same records again (an incremental run
    # re-reads the whole snapshot) are recorded as a new snapshot without being validated and compared again.
    """
    CREATE TABLE stock_snapshot_digests (
        snapshot_id INTEGER PRIMARY KEY,
        digest      VARCHAR NOT NULL  -- blake2b of the snapshot's records as received, in page order
    );
    """,
    # 5: when each stock item's value was last confirmed by a snapshot (the per-item bound of ORDERLY_MAX_STOCK_AGE:
    # an item whose newer records were quarantined is never allocated from once this is too old), and the run
    # counter of orders left NEW because they need such an item.
    # An existing item was confirmed at least when the snapshot that wrote its value completed; and, when the latest
    # snapshot had every record valid and loaded as many items as are stored, by that snapshot (a valid snapshot
    # drops the items it does not name, so it named every one). Where neither is known the older time stands: an
    # item that is really fresh reads stale only until the next sync confirms it, never the other way round.
    """
    ALTER TABLE runs ADD COLUMN waiting BIGINT DEFAULT 0;
    ALTER TABLE stock_items ADD COLUMN confirmed_at TIMESTAMPTZ;
    UPDATE stock_items SET confirmed_at = greatest(
        (SELECT s.completed_at FROM stock_snapshots s WHERE s.snapshot_id = stock_items.snapshot_id),
        (SELECT s.completed_at FROM stock_snapshots s
         WHERE s.snapshot_id = (SELECT max(snapshot_id) FROM stock_snapshots)
           AND s.rejected = 0 AND s.loaded = (SELECT count(*) FROM stock_items)));
    """,
    # 6: what a reconciliation found (RUN_COUNTERS' reconcile_*).
    """
    ALTER TABLE runs ADD COLUMN reconcile_remote BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN reconcile_stored BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN reconcile_missing BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN reconcile_added BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN reconcile_changed BIGINT DEFAULT 0;
    """,
    # 7: the decision feed, an outbox. Every status change is also an event: `event_id` ascends in the order the
    # changes were written (writes.record_decisions gives it in the same statement as the change). Changes written
    # before this version get theirs here, in the order they were made: a receiver configured later receives the
    # whole history, as a new one would. `feed` is the delivery's one row (orderly/feed/deliver.py).
    """
    ALTER TABLE status_changes ADD COLUMN event_id BIGINT;
    UPDATE status_changes SET event_id = n.event_id
    FROM (SELECT rowid AS rid, row_number() OVER (ORDER BY changed_at, rowid) AS event_id FROM status_changes) n
    WHERE status_changes.rowid = n.rid;
    CREATE TABLE feed (
        store_id      VARCHAR NOT NULL,   -- names this store in every webhook-id: two stores' ids never collide
        delivered_to  BIGINT NOT NULL,    -- every event up to this id was answered 2xx by the receiver
        plan_to       BIGINT NOT NULL,    -- the events after delivered_to up to this one go out in batches of
        plan_batch    INTEGER NOT NULL,   --   plan_batch, cut from delivered_to: a batch sent again is the same
                                          --   batch, with the same webhook-id, whatever was decided since
        last_ok_at    TIMESTAMPTZ,        -- the last 2xx
        last_error    VARCHAR,            -- the last failure, one line; NULL once a batch is delivered again
        last_error_at TIMESTAMPTZ
    );
    INSERT INTO feed VALUES (uuid()::VARCHAR, 0, 0, 1, NULL, NULL, NULL);
    ALTER TABLE runs ADD COLUMN delivered BIGINT DEFAULT 0;
    """,
]
