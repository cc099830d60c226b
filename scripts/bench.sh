#!/usr/bin/env bash
# make bench: Go benchmarks of the hot paths, then the end-to-end bench
# commands at moderate sizes, then a summary. Everything runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/reelfeed}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"

echo "== Go benchmarks (hot paths)"
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" \
	./feed ./filter ./rank/... ./recall ./profile ./feature ./catalog ./ingest 2>&1 | tee "$OUT/go-bench.txt" |
	grep -E '^(Benchmark|ok|FAIL|pkg)' || true

echo "== reelfeed bench ingest"
"$BIN" bench ingest --events "${INGEST_EVENTS:-100000}" --json 2>/dev/null | tee "$OUT/ingest.json"

echo "== reelfeed bench feed"
"$BIN" bench feed --videos "${FEED_VIDEOS:-20000}" --users "${FEED_USERS:-10000}" --rps "${FEED_RPS:-300}" --duration "${FEED_DURATION:-20s}" --json 2>/dev/null | tee "$OUT/feed.json"

echo
echo "== summary"
python3 - "$OUT" <<'PY' 2>/dev/null || cat "$OUT/ingest.json" "$OUT/feed.json"
import json, sys
out = sys.argv[1]
ing = json.load(open(f"{out}/ingest.json"))
fd = json.load(open(f"{out}/feed.json"))
print(f"ingest: {ing['events_per_s']:.0f} events/s end to end, visible p50 {ing['p50_visible_ms']:.0f} ms, p99 {ing['p99_visible_ms']:.0f} ms")
print(f"feed:   {fd['rps']:.0f} req/s, p50 {fd['p50_ms']:.1f} ms, p99 {fd['p99_ms']:.1f} ms, errors {fd['errors']}")
PY
echo "(raw results in $OUT/)"
