#!/usr/bin/env bash
# Issue 2 benchmark: authenticated GET /api/organization against `traxo api` on PostgreSQL, beside
# the same process's constant endpoint (/healthz), with wrk at 32 connections.
# Usage: bench/api_auth.sh [duration=20s]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20s}
DB=traxo_bench_api
PORT=${PORT:-18000}
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export TRAXO_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB"
# The budget is scaled so wrk measures the limiter's cost without being stopped by it.
export TRAXO_RATE_LIMIT_MULTIPLIER=100000 TRAXO_LOG_LEVEL=warning
KEY=$(.venv/bin/traxo users create --email bench@example.com --name Bench | tail -1)
.venv/bin/traxo api --host 127.0.0.1 --port "$PORT" --no-migrate &
API=$!
trap 'kill $API 2>/dev/null; wait $API 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
curl -sf -X POST "http://127.0.0.1:$PORT/api/organization" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d '{"name":"Bench","slug":"bench"}' >/dev/null
curl -sf "http://127.0.0.1:$PORT/api/organization" -H "Authorization: Bearer $KEY" >/dev/null

for target in healthz api/organization; do
  wrk -t2 -c32 -d5s --latency -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/$target" >/dev/null  # warm-up
  echo "== GET /$target"
  wrk -t2 -c32 -d"$DURATION" --latency -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/$target" \
    | grep -E "Requests/sec|99%|Non-2xx|Socket errors"
done
