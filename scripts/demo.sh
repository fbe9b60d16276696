#!/bin/sh
# make demo: a demo database with synthetic patients, then a short tour of
# the medrec command. Everything here is synthetic; no real patient data.
set -eu
cd "$(dirname "$0")/.."
BIN=build/medrec
SYNTH=build/mr-synth
DEMO_DIR=${MEDREC_DEMO_DIR:-demo}
DB="$DEMO_DIR/clinic.db"
N=${MEDREC_DEMO_PATIENTS:-5000}

mkdir -p "$DEMO_DIR"
rm -f "$DB" "$DB-wal" "$DB-shm"
export MEDREC_DB="$DB"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run $BIN init --db "$DB"
say "$SYNTH patients $N > $DEMO_DIR/synthetic.ndjson && $BIN import $DEMO_DIR/synthetic.ndjson"
$SYNTH patients "$N" --seed 42 > "$DEMO_DIR/synthetic.ndjson"
$BIN import --batch 5000 "$DEMO_DIR/synthetic.ndjson" | tail -1

say "$BIN patient add --family Rivera --given Ana --birth-date 1984-03-09 --gender female --phone +1-555-0100 --address \"12 Oak St, Springfield, IL 62701\""
MRN=$($BIN patient add --family Rivera --given Ana --birth-date 1984-03-09 \
    --gender female --phone +1-555-0100 \
    --address "12 Oak St, Springfield, IL 62701" --as demo-clerk)
echo "$MRN"
run $BIN patient show "$MRN"
run $BIN patient search --name riv --birth-date 1984-03-09
say "$BIN patient add --family Rivera --given Ana --birth-date 1984-03-09 --gender female   # again"
$BIN patient add --family Rivera --given Ana --birth-date 1984-03-09 \
    --gender female || true
run $BIN patient update "$MRN" --phone +1-555-0199 --reason "patient called" --as demo-clerk
ID=$($BIN patient show "$MRN" --json | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
run $BIN history "Patient/$ID"
run $BIN check

SYN=${MEDREC_SHARED_DATA:-../shared/data}/fhir/synthea
if [ -d "$SYN" ]; then
    say "$BIN import $SYN/*.json    # Synthea transaction Bundles: whole charts"
    $BIN import "$SYN"/*.json | tail -1
fi

PORT=${MEDREC_DEMO_PORT:-8080}
cat <<MSG

The demo database is $DB ($N synthetic patients, Ana Rivera with MRN $MRN,
and the Synthea charts when ../shared/data is present).
Try, in another terminal:
  export MEDREC_DB=$DB
  $BIN patient search --name mu --gender female --count 5
  $BIN patient show $MRN --json
  curl -s http://127.0.0.1:$PORT/fhir/Patient?name=rivera
  curl -s http://127.0.0.1:$PORT/fhir/metadata | head -c 300
Sign-in arrives with the security work; until then the server answers on
loopback only, as the local service user, and audits every access.
MSG
[ -n "${MEDREC_DEMO_NO_SERVE:-}" ] && exit 0
echo
echo "Starting the FHIR server (Ctrl-C stops it):"
exec $BIN serve --db "$DB" --http "127.0.0.1:$PORT" --access-log "$DEMO_DIR/access.log"
