#!/usr/bin/env bash
# Regenerate docs/prefect-ui.png: a throw-away Prefect server (UI on), `orderly serve` against it, one
# `orderly sync` and one Process All run, then headless Chromium photographs the orders-status artifact page.
# Needs Chromium (`apt-get install -y chromium`). Everything else lives in a temporary directory, removed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.venv/bin"
OUT="${1:-$ROOT/docs/prefect-ui.png}"
CHROMIUM="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$CHROMIUM" ] || { echo "error: Chromium is not installed (apt-get install -y chromium)" >&2; exit 2; }

WORK="$(mktemp -d)"
PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PREFECT_HOME="$WORK/prefect" PREFECT_API_URL="http://127.0.0.1:$PORT/api" PREFECT_SERVER_ANALYTICS_ENABLED=false
export ORDERLY_DB="$WORK/orderly.duckdb" PREFECT_RUNNER_POLL_FREQUENCY=1
for name in $(compgen -e | grep '^ORDERLY_' | grep -v '^ORDERLY_DB$'); do unset "$name"; done  # the seed sandbox

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

env -u PREFECT_API_URL PREFECT_SERVER_UI_API_URL="$PREFECT_API_URL" "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do curl -sf "$PREFECT_API_URL/health" >/dev/null && break; sleep 1; done
curl -sf "$PREFECT_API_URL/health" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

(cd "$ROOT" && "$BIN/orderly" sync)
(cd "$ROOT" && exec "$BIN/orderly" serve) >"$WORK/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do "$BIN/prefect" deployment inspect 'process-all/process-all' >/dev/null 2>&1 && break; sleep 1; done
"$BIN/prefect" deployment run 'process-all/process-all' --watch --watch-timeout 120 >/dev/null

# The newest orders-status artifact (the Process All run's): its page shows the table itself.
ARTIFACT="$("$BIN/python" -c '
import os, httpx
api = os.environ["PREFECT_API_URL"]
body = {"artifacts": {"key": {"any_": ["orders-status"]}}, "sort": "CREATED_DESC", "limit": 1}
print(httpx.post(f"{api}/artifacts/filter", json=body).raise_for_status().json()[0]["id"])')"

"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$WORK/chromium" --hide-scrollbars \
  --window-size=1400,900 --virtual-time-budget=15000 --screenshot="$OUT" \
  "http://127.0.0.1:$PORT/artifacts/artifact/$ARTIFACT" 2>"$WORK/chromium.log" || { cat "$WORK/chromium.log" >&2; exit 1; }
echo "wrote $OUT"
