#!/bin/sh
# What the audit trail costs: audited Patient reads (the shipped build)
# against the same reads unaudited (a benchmark-only build,
# -DMEDREC_BENCH_NO_READ_AUDIT=ON, never shipped), same database, same
# token, one run; and audit appends per second through the store (hash
# chain and signed checkpoints included). Prints figures; never fails on
# time.
set -eu
cd "$(dirname "$0")/.."
OUT=${MEDREC_BENCH_DIR:-bench/out}
DUR=${MEDREC_BENCH_SECONDS:-10}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "audit.sh: wrk is not installed" >&2; exit 1; }
cmake --preset release >/dev/null
cmake --build build-release -j2 >/dev/null
cmake -S . -B build-bench-noaudit -DCMAKE_BUILD_TYPE=Release \
    -DMEDREC_BENCH_NO_READ_AUDIT=ON >/dev/null
cmake --build build-bench-noaudit -j2 --target medrec >/dev/null

echo "== audit appends through the store =="
build-release/bench/bench_audit "$OUT" 100000

db="$OUT/audit-bench.db"
rm -f "$db" "$db-wal" "$db-shm" "$db.audit-key"
build-release/medrec init --db "$db" >/dev/null 2>&1
build-release/mr-synth patients 1000 --seed 7 >"$OUT/audit-bench.ndjson"
build-release/medrec import --db "$db" "$OUT/audit-bench.ndjson" >/dev/null 2>&1
TOKEN=$(build-release/medrec token create bench --role records-technician --db "$db")
P=$(sqlite3 "$db" "SELECT id FROM resource WHERE type='Patient' LIMIT 1 OFFSET 500")

measure() # BINARY LABEL
{
    "$1" serve --db "$db" --http 127.0.0.1:18082 --access-log "" \
        >/dev/null 2>"$OUT/audit-serve.log" &
    srv=$!
    sleep 0.5
    wrk -t2 -c64 -d"${DUR}s" --latency -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:18082/fhir/Patient/$P" |
        awk -v l="$2" '/Requests\/sec/{r=$2} / 99%/{p99=$2}
            END{printf "%-28s %s req/s, p99 %s\n", l, r, p99; print r > "/dev/stderr"}' \
        2>"$OUT/audit-rate-$3"
    kill $srv
    wait $srv 2>/dev/null || true
}
echo
echo "== GET /fhir/Patient/{id}, 64 connections =="
measure build-release/medrec "audited (shipped):" on
measure build-bench-noaudit/medrec "not audited (bench build):" off
echo "ratio audited / not audited: $(echo "scale=2; $(cat "$OUT/audit-rate-on") / $(cat "$OUT/audit-rate-off")" | bc)"
