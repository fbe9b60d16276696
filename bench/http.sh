#!/bin/sh
# FHIR server benchmarks, all in one run so the figures compare: the bare
# libmicrohttpd ceiling, audited Patient reads, Observation search,
# durable creates, Synthea transaction import, and server memory.
# Needs wrk and the shared Synthea bundles (../shared/data/fhir/synthea).
# Prints figures; never fails on time.
set -eu
cd "$(dirname "$0")/.."
B=build-release
OUT=${MEDREC_BENCH_DIR:-bench/out}
SYN=${MEDREC_SHARED_DATA:-../shared/data}/fhir/synthea
COPIES=${MEDREC_BENCH_SYNTHEA_COPIES:-10}
DUR=${MEDREC_BENCH_SECONDS:-10}
mkdir -p "$OUT"
TOKEN=none # the bare server ignores it; medrec's is made below
command -v wrk >/dev/null || { echo "http.sh: wrk is not installed" >&2; exit 1; }
[ -d "$SYN" ] || { echo "http.sh: no Synthea bundles at $SYN" >&2; exit 1; }

w() { wrk -t2 -c64 -d"${DUR}s" --latency -H "Authorization: Bearer $TOKEN" "$@" |
      awk '/Requests\/sec/{r=$2} / 50%/{p50=$2} / 99%/{p99=$2}
           /Non-2xx/{e=$NF} END{printf "%s req/s, p50 %s, p99 %s%s\n", r, p50, p99, e ? ", non-2xx " e : ""}'; }

echo "== ceiling: bare libmicrohttpd, fixed body, keep-alive =="
$B/bench/bench_bare_mhd 18090 4 >/dev/null & BARE=$!
sleep 0.5
w http://127.0.0.1:18090/fhir/Patient/bench
kill $BARE

db="$OUT/http.db"
rm -f "$db" "$db-wal" "$db-shm"
$B/medrec init --db "$db" 2>/dev/null
TOKEN=$($B/medrec token create bench --role records-technician --db "$db")
$B/medrec serve --db "$db" --http 127.0.0.1:18080 --access-log "" \
    >/dev/null 2>"$OUT/serve.log" & SRV=$!
sleep 0.5
U=http://127.0.0.1:18080/fhir

echo
echo "== Synthea transaction import over HTTP ($COPIES x 30 bundles) =="
# Copies get fresh urn:uuid fullUrls and identifiers so each is a new chart.
i=0; n=0
t0=$(date +%s.%N)
while [ $i -lt "$COPIES" ]; do
    for f in "$SYN"/*.json; do
        sed -e "s/urn:uuid:\([0-9a-f-]*\)/urn:uuid:\1-$i/g" \
            -e "s/\"value\": \"\([0-9a-f-]\{36\}\)\"/\"value\": \"\1-$i\"/g" \
            -e "s/\"family\": \"\([^\"]*\)\"/\"family\": \"\1$i\"/g" \
            "$f" > "$OUT/b.json"
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
            -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/fhir+json' \
            --data-binary @"$OUT/b.json" "$U")
        [ "$code" = 200 ] || echo "bundle $f copy $i: HTTP $code" >&2
        n=$((n + $(grep -c '"request"' "$OUT/b.json")))
    done
    i=$((i + 1))
done
t1=$(date +%s.%N)
echo "$n resources in $(echo "$t1 - $t0" | bc) s = $(echo "$n / ($t1 - $t0)" | bc) resources/s (one client, sequential)"
echo "server RSS after import: $(ps -o rss= -p $SRV) KiB (SQLite page cache up to 64 MiB per connection)"

P=$(sqlite3 "$db" "SELECT id FROM resource WHERE type='Patient' LIMIT 1")
echo
echo "== GET /fhir/Patient/{id}, every read audited durably =="
w "$U/Patient/$P"
echo
echo "== GET /fhir/Observation?patient=X&code=Y =="
w "$U/Observation?patient=$P&code=http://loinc.org|8302-2"
echo
echo "== POST /fhir/Patient (durable, group commit), 64 connections =="
cat > "$OUT/post.lua" <<'LUA'
-- Every body a different synthetic person, so none is a possible duplicate.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
request = function()
  counter = counter + 1
  local body = '{"resourceType":"Patient","name":[{"family":"Load' ..
    tid .. 'x' .. counter ..
    '","given":["Bench"]}],"gender":"female","birthDate":"1980-01-01"}'
  -- Headers given here replace wrk's -H ones, so the token comes along.
  return wrk.format("POST", "/fhir/Patient",
    {["Content-Type"] = "application/fhir+json",
     ["Authorization"] = "Bearer " .. os.getenv("MEDREC_BENCH_TOKEN")}, body)
end
LUA
MEDREC_BENCH_TOKEN=$TOKEN wrk -t2 -c64 -d"${DUR}s" --latency \
    -s "$OUT/post.lua" "$U" |
    awk '/Requests\/sec/{r=$2} / 50%/{p50=$2} / 99%/{p99=$2} /Non-2xx/{e=$NF}
         END{printf "%s creates/s, p50 %s, p99 %s%s\n", r, p50, p99, e ? ", non-2xx " e : ""}'
echo "server RSS at the end: $(ps -o rss= -p $SRV) KiB"
kill $SRV
wait $SRV 2>/dev/null || true
