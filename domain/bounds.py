"""The integer domain of ids and quantities (CONTRACT.md section 2), stated once for schema, columns and sums."""

MAX_INT = 2**63 - 1  # every id, quantity and per-order sum fits a signed 64-bit column; beyond is quarantined
