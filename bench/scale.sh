#!/bin/sh
# Search at scale: N Synthea-sized patients (default 10,000), made by
# varying the 30 shared bundles (fresh urn:uuid fullUrls, identifiers and
# family names per copy), imported with `medrec import` (the same records
# service path as the API), then Patient reads and Observation searches
# measured with wrk against `medrec serve`. Prints figures; never fails on
# time. The database is kept in $OUT/scale.db and reused when it is
# already the requested size (MEDREC_BENCH_REBUILD=1 forces a rebuild).
set -eu
cd "$(dirname "$0")/.."
B=build-release
OUT=${MEDREC_BENCH_DIR:-bench/out}
SYN=${MEDREC_SHARED_DATA:-../shared/data}/fhir/synthea
PATIENTS=${MEDREC_BENCH_PATIENTS:-10000}
DUR=${MEDREC_BENCH_SECONDS:-10}
command -v wrk >/dev/null || { echo "scale.sh: wrk is not installed" >&2; exit 1; }
[ -d "$SYN" ] || { echo "scale.sh: no Synthea bundles at $SYN" >&2; exit 1; }
mkdir -p "$OUT/scale-tmp"
db="$OUT/scale.db"
nb=$(ls "$SYN"/*.json | wc -l)
copies=$(( (PATIENTS + nb - 1) / nb ))

have=0
[ -f "$db" ] && have=$(sqlite3 "$db" "SELECT count(*) FROM resource WHERE type='Patient'" 2>/dev/null || echo 0)
if [ "${MEDREC_BENCH_REBUILD:-0}" = 1 ] || [ "$have" -lt $((copies * nb)) ]; then
    rm -f "$db" "$db-wal" "$db-shm"
    $B/medrec init --db "$db" >/dev/null 2>&1
    echo "== importing $copies x $nb Synthea bundles =="
    t0=$(date +%s.%N)
    i=0
    while [ $i -lt $copies ]; do
        for f in "$SYN"/*.json; do
            sed -e "s/urn:uuid:\([0-9a-f-]*\)/urn:uuid:\1-$i/g" \
                -e "s/\"value\": \"\([0-9a-f-]\{36\}\)\"/\"value\": \"\1-$i\"/g" \
                -e "s/\"family\": \"\([^\"]*\)\"/\"family\": \"\1$i\"/g" \
                "$f" > "$OUT/scale-tmp/$(basename "$f")"
        done
        $B/medrec import --db "$db" "$OUT"/scale-tmp/*.json >/dev/null
        i=$((i + 1))
        [ $((i % 50)) -eq 0 ] && echo "  $i copies" >&2
    done
    t1=$(date +%s.%N)
    n=$(sqlite3 "$db" "SELECT count(*) FROM resource")
    echo "$n resources in $(echo "$t1 - $t0" | bc) s = $(echo "$n / ($t1 - $t0)" | bc) resources/s (includes generating the copies)"
fi
rm -rf "$OUT/scale-tmp"
echo "patients: $(sqlite3 "$db" "SELECT count(*) FROM resource WHERE type='Patient'"), resources: $(sqlite3 "$db" "SELECT count(*) FROM resource"), database: $(du -m "$db" | cut -f1) MiB"

w() { wrk -t2 -c64 -d"${DUR}s" --latency -H "Authorization: Bearer $TOKEN" "$@" |
      awk '/Requests\/sec/{r=$2} / 50%/{p50=$2} / 99%/{p99=$2}
           /Non-2xx/{e=$NF} END{printf "%s req/s, p50 %s, p99 %s%s\n", r, p50, p99, e ? ", non-2xx " e : ""}'; }

TOKEN=$($B/medrec token create "bench-$$" --role records-technician --db "$db")
$B/medrec serve --db "$db" --http 127.0.0.1:18081 --access-log "" \
    >/dev/null 2>"$OUT/scale-serve.log" & SRV=$!
trap 'kill $SRV 2>/dev/null' EXIT
sleep 1
U=http://127.0.0.1:18081/fhir
# A patient from the middle of the load.
P=$(sqlite3 "$db" "SELECT id FROM resource WHERE type='Patient'
    LIMIT 1 OFFSET (SELECT count(*) / 2 FROM resource WHERE type='Patient')")
echo
echo "== GET /fhir/Patient/{id}, audited =="
w "$U/Patient/$P"
echo
echo "== GET /fhir/Observation?patient=X&code=Y ($(curl -s -H "Authorization: Bearer $TOKEN" "$U/Observation?patient=$P&code=http://loinc.org|8302-2&_summary=count" | jq .total) matches) =="
w "$U/Observation?patient=$P&code=http://loinc.org|8302-2"
echo
echo "== GET /fhir/Observation?code=Y&_count=20 (one code across all patients) =="
w "$U/Observation?code=http://loinc.org|8302-2&_count=20"
echo "server RSS: $(ps -o rss= -p $SRV) KiB"
