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

# The HL7 v2 feed: two sending systems, an admission and a lab result.
run $BIN hl7 sender add --app REG --facility DEMO --role registration-system
run $BIN hl7 sender add --app LAB --facility DEMO --role lab-technician
run $BIN hl7 import scripts/demo-hl7/adt-a01.hl7 scripts/demo-hl7/oru-r01.hl7
run $BIN hl7 messages

# Sign-in: one user per role the workspace has screens for, all with the
# same fresh random password, and an API token for curl. (Synthetic
# accounts; the demo database is not for real use.)
PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20)
DEMO_USERS="tech:records-technician doctor:clinician clerk:admission-clerk
auditor:auditor admin:admin"
say "$BIN user add tech --role records-technician --password-stdin   # and doctor, clerk, auditor, admin"
for u in $DEMO_USERS; do
    echo "$PW" | $BIN user add "${u%%:*}" --role "${u#*:}" --password-stdin
done
run $BIN user list
say "$BIN token create demo-curl --role records-technician --expires 1d"
TOKEN=$($BIN token create demo-curl --role records-technician --expires 1d)
echo "$TOKEN"
echo "$PW" > "$DEMO_DIR/login.txt"
chmod 600 "$DEMO_DIR/login.txt"

PORT=${MEDREC_DEMO_PORT:-8080}
MLLP=${MEDREC_DEMO_MLLP_PORT:-2575}
URL="http://127.0.0.1:$PORT/"
cat <<MSG

Open the records workspace: $URL

The demo database is $DB ($N synthetic patients, Ana Rivera with MRN $MRN,
and the Synthea charts when ../shared/data is present).
Try, in another terminal:
  export MEDREC_DB=$DB
  $BIN patient search --name mu --gender female --count 5
  $BIN patient show $MRN --json
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/fhir/Patient?name=rivera
  curl -s http://127.0.0.1:$PORT/fhir/metadata | head -c 300
  curl -s -X POST -d '{"username":"tech","password":"$PW"}' http://127.0.0.1:$PORT/auth/login
  $BIN hl7 send --to 127.0.0.1:$MLLP scripts/demo-hl7/oru-r01.hl7   # a repeat: AA, applied once
  $BIN hl7 messages

Sign in at $URL with password "$PW" (also in $DEMO_DIR/login.txt) as:
  tech      records technician: find, register, chart, correct, who looked
  doctor    clinician: chart, add problems/allergies/prescriptions/results,
            break the glass on restricted charts
  clerk     admission clerk: find, register, encounters (no results or notes)
  auditor   auditor: who looked (the access log)
  admin     administrator: users, lock/unlock, MFA off
Every access is audited.
MSG
[ -n "${MEDREC_DEMO_NO_SERVE:-}" ] && exit 0
echo
echo "Web workspace: $URL  (users tech, doctor, clerk, auditor, admin; password $PW)"
echo "Starting the server (FHIR API at ${URL}fhir, HL7 v2 over MLLP at 127.0.0.1:$MLLP; Ctrl-C stops it):"
exec $BIN serve --db "$DB" --http "127.0.0.1:$PORT" --mllp "127.0.0.1:$MLLP" \
    --access-log "$DEMO_DIR/access.log"
