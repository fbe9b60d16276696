#!/bin/sh
# Benchmarks for the foundation (issue: bulk import, durable registrations,
# patient search latency, database size). Prints figures; never fails on
# time. Sizes: MEDREC_BENCH_SIZES (default "100000 1000000").
set -eu
cd "$(dirname "$0")/.."
B=build-release
OUT=${MEDREC_BENCH_DIR:-bench/out}
SIZES=${MEDREC_BENCH_SIZES:-"100000 1000000"}
mkdir -p "$OUT"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "sqlite: $(sqlite3 --version | cut -d' ' -f1)"

echo
echo "== durable single registrations =="
$B/bench/bench_register "$OUT" 2000

for n in $SIZES; do
    db="$OUT/bench_$n.db"
    echo
    echo "== $n synthetic patients =="
    rm -f "$db" "$db-wal" "$db-shm"
    $B/mr-synth patients "$n" --seed 7 > "$OUT/patients_$n.ndjson"
    $B/medrec init --db "$db" 2>/dev/null
    t0=$(date +%s.%N)
    $B/medrec import --db "$db" --batch 20000 "$OUT/patients_$n.ndjson" \
        | tail -1
    t1=$(date +%s.%N)
    echo "bulk import: $n patients in $(echo "$t1 - $t0" | bc) s =" \
        "$(echo "$n / ($t1 - $t0)" | bc) patients/s"
    sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
    size=$(stat -c %s "$db")
    echo "database size: $size bytes = $((size / n)) bytes per patient"
    $B/bench/bench_search "$db" 2000
    rm -f "$OUT/patients_$n.ndjson"
done

echo
if command -v wrk >/dev/null && [ -d "${MEDREC_SHARED_DATA:-../shared/data}/fhir/synthea" ]; then
    ./bench/http.sh
else
    echo "(FHIR server benchmarks skipped: need wrk and ../shared/data)"
fi

echo
BUILD=$B ./bench/hl7.sh
