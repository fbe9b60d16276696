#!/bin/sh
# HL7 v2 feed benchmarks: ER7 parsing speed over the shared sample corpus,
# then `medrec serve --mllp` under load: synthetic ADT^A04 registrations
# and ORU^R01 results, each message acknowledged only once committed
# (durable ACK), over 16 connections and over 1; and for comparison the
# store's rate for one durable commit per transaction (bench_audit).
# Builds nothing: uses ${BUILD:-build}/medrec and ${BUILD:-build}/bench/*.
# Sizes: MEDREC_BENCH_HL7_LOAD16 (messages per connection with 16
# connections, default 1000), MEDREC_BENCH_HL7_LOAD1 (with one, default
# 1000); parse time MEDREC_BENCH_SECONDS (default 3); ports
# MEDREC_BENCH_HTTP_PORT and MEDREC_BENCH_MLLP_PORT (default 0: the server
# picks free ones and says which). MEDREC_BENCH_KEEP=1 keeps the database
# and the server's logs. Prints figures; never fails on time. Exits 1 if
# an ACK was not AA, or the interface log and the database do not hold
# every message as applied.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
OUT=${MEDREC_BENCH_DIR:-bench/out}
N16=${MEDREC_BENCH_HL7_LOAD16:-1000}
N1=${MEDREC_BENCH_HL7_LOAD1:-1000}
HP=${MEDREC_BENCH_HTTP_PORT:-0}
MP=${MEDREC_BENCH_MLLP_PORT:-0}
for f in medrec bench/bench_hl7_parse bench/bench_mllp_load bench/bench_audit; do
    [ -x "$B/$f" ] || { echo "hl7.sh: no $B/$f (build first, or set BUILD)" >&2; exit 1; }
done
mkdir -p "$OUT"
# In the bench directory, not /tmp, which may be a tmpfs where fsync is free.
T=$(mktemp -d "$OUT/hl7.XXXXXX")
SRV=
cleanup()
{
    [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    if [ "${MEDREC_BENCH_KEEP:-0}" = 1 ]; then
        echo "(kept $T)"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
db="$T/hl7.db"
status=0

echo "machine: $(nproc) cores, $(uname -r); database in $OUT ($(df -T "$OUT" | awk 'NR==2{print $2}'))"
echo
echo "== ER7 parsing (shared sample corpus) =="
"$B/bench/bench_hl7_parse"

"$B/medrec" init --db "$db" >/dev/null 2>"$T/setup.log" &&
"$B/medrec" hl7 sender add --db "$db" --app REG --facility HOSP \
    --role registration-system >/dev/null 2>>"$T/setup.log" &&
"$B/medrec" hl7 sender add --db "$db" --app LAB --facility HOSP \
    --role lab-technician >/dev/null 2>>"$T/setup.log" ||
    { cat "$T/setup.log" >&2; exit 1; }

"$B/medrec" serve --db "$db" --http "127.0.0.1:$HP" --mllp "127.0.0.1:$MP" \
    >"$T/serve.out" 2>"$T/serve.log" & SRV=$!
i=0
until grep -q "mllp listening on" "$T/serve.out" 2>/dev/null; do
    if ! kill -0 "$SRV" 2>/dev/null || [ $i -ge 100 ]; then
        echo "hl7.sh: medrec serve --mllp did not start listening:" >&2
        cat "$T/serve.out" "$T/serve.log" >&2
        exit 1
    fi
    sleep 0.1
    i=$((i + 1))
done
MP=$(sed -n 's/.*mllp listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/serve.out" | head -n 1)

# fsync speed varies on shared machines: measured before and after the load.
commits()
{
    "$B/bench/bench_audit" "$T" 3000 |
        sed -n 's/.*1 per transaction: \([0-9]*\) entries.*/\1/p'
}
c0=$(commits)

echo
echo "== MLLP, ADT^A04 + ORU^R01 alternating, each ACK after commit =="
# Connections 0-15, then 16: distinct patients and control ids, one database.
"$B/bench/bench_mllp_load" "127.0.0.1:$MP" 16 "$N16" 0 || status=1
"$B/bench/bench_mllp_load" "127.0.0.1:$MP" 1 "$N1" 16 || status=1
echo "server RSS after the load: $(ps -o rss= -p "$SRV" | tr -d ' ') KiB"
kill "$SRV"
wait "$SRV" 2>/dev/null || true
SRV=

# What was acknowledged must be in the database: one Patient per ADT,
# every message logged once and applied.
sent=$((16 * N16 + N1))
"$B/medrec" hl7 messages --db "$db" --json --limit $((sent + 100)) \
    >"$T/log.ndjson" 2>"$T/messages.log" || cat "$T/messages.log" >&2
applied=$(grep -c '"status":"applied"' "$T/log.ndjson" || true)
other=$(grep -vc '"status":"applied"' "$T/log.ndjson" || true)
repeats=$(grep -o '"repeats":[1-9][0-9]*' "$T/log.ndjson" | wc -l)
echo "interface log: $applied applied, $other other, $repeats with repeats (sent $sent)"
[ "$applied" -eq "$sent" ] || { echo "hl7.sh: $sent messages sent, $applied applied" >&2; status=1; }
if command -v sqlite3 >/dev/null; then
    count() { sqlite3 "$db" "SELECT count(*) FROM resource WHERE type='$1'"; }
    np=$(count Patient) no=$(count Observation) nr=$(count DiagnosticReport)
    ep=$((16 * ((N16 + 1) / 2) + (N1 + 1) / 2)) eo=$((16 * (N16 / 2) + N1 / 2))
    echo "database: $np Patient, $no Observation, $nr DiagnosticReport" \
        "(expected $ep, $((3 * eo)), $eo)"
    [ "$np" -eq "$ep" ] && [ "$no" -eq $((3 * eo)) ] && [ "$nr" -eq "$eo" ] ||
        { echo "hl7.sh: the database does not hold what was acknowledged" >&2; status=1; }
fi

echo
echo "== for comparison: one durable commit per transaction, same disk =="
echo "audit appends through the store, 1 per transaction (bench_audit):" \
    "$c0 /s before the load, $(commits) /s after"
exit $status
