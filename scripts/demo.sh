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

cat <<MSG

The demo database is $DB ($N synthetic patients and Ana Rivera, MRN $MRN).
Try:
  export MEDREC_DB=$DB
  $BIN patient search --name mu --gender female --count 5
  $BIN patient show $MRN --json
  $BIN export > all.ndjson
  $BIN --help
MSG
