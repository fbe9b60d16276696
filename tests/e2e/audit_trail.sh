#!/usr/bin/env bash
# The tamper-evident audit trail, end to end: the signing key beside the
# database, `medrec audit search` (who looked at this chart), disclosures
# and their accounting, `medrec audit verify` on an intact trail and on
# copies a tamperer edited with the sqlite3 CLI (triggers dropped first),
# what truncation it can and cannot see, and a lost signing key.
. "$(dirname "$0")/lib.sh"
need_cmd sqlite3 jq

export TZ=UTC
DB=$T/a.db
KEY=$DB.audit-key

mr()
{
    "$MEDREC" "$@" --db "$DB"
}

# jq -e as a quiet test.
jqt()
{
    jq -e "$@" >/dev/null
}

# A copy of the database (and its key) to tamper with.
copy()
{
    cp "$DB" "$T/$1.db"
    cp "$KEY" "$T/$1.db.audit-key"
}

# --- the key --------------------------------------------------------------
expect_exit 0 "$MEDREC" init --db "$DB"
check "init made the signing key beside the database" test -s "$KEY"
expect_eq "the signing key is private (0600)" 600 "$(stat -c %a "$KEY")"
check "its public key is registered in the database" \
    test "$(sqlite3 "$DB" 'SELECT count(*) FROM audit_key')" = 1

# --- some activity ------------------------------------------------------------
expect_exit 0 mr patient add --family Auditwatch --given Ann \
    --birth-date 1970-05-06 --gender female
MRN=$OUT
expect_exit 0 mr patient add --family Otherchart --given Olaf \
    --birth-date 1971-06-07 --gender male
MRN2=$OUT
expect_exit 0 mr patient show "$MRN" --as alice
expect_exit 0 mr patient show "$MRN" --json --as bob
PID=$(jq -r .id <"$T/.out")
expect_exit 0 mr patient show "$MRN2" --as bob

# --- audit search -----------------------------------------------------------
expect_exit 0 mr audit search --patient "$MRN" --as carol
cp "$T/.out" search1.txt
time_re='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
expect_stdout_matches "^$time_re alice [^ ]+ read ok Patient/$PID cli$"
expect_stdout_matches "^$time_re bob [^ ]+ read ok Patient/$PID cli$"
expect_stdout_matches "^$time_re [^ ]+ [^ ]+ create ok Patient/$PID cli"
check "search --patient leaves out the other chart" \
    test "$(grep -c "Olaf\|$MRN2" search1.txt)" = 0
check "every line starts with an ISO 8601 UTC time" \
    test "$(grep -cvE "^$time_re " search1.txt)" = 0
expect_exit 0 mr audit search --patient "Patient/$PID" --user bob
expect_eq "--user bob on the chart: one entry" 1 "$(wc -l <"$T/.out")"
expect_exit 0 mr audit search --user bob
expect_eq "--user bob everywhere: two reads" 2 \
    "$(grep -c ' read ok ' "$T/.out")"
expect_exit 0 mr audit search --action create
expect_eq "--action create: two registrations" 2 "$(wc -l <"$T/.out")"
# Searching the trail is itself on the trail, with what was asked.
expect_exit 0 mr audit search --action audit-search --json
expect_stdout_contains '"actor":"carol"'
expect_stdout_contains "\"query\":\"patient=Patient/$PID\""
check "--json: one valid JSON object per line" \
    jqt -s 'length > 0 and all(.[]; .seq > 0 and .time != null)' "$T/.out"
today=$(date -u +%F)
expect_exit 0 mr audit search --since "$today" --user alice
expect_eq "--since today finds today's read" 1 "$(wc -l <"$T/.out")"
expect_exit 0 mr audit search --until "$(date -u -d '-2 days' +%F)"
expect_stdout_empty
expect_exit 0 mr audit search --emergency
expect_stdout_empty
expect_exit 2 mr audit search --since 2026-13-01
expect_stderr_contains "--since"
expect_exit 2 mr audit search --since 2026-02-01 --until 2026-01-01
expect_exit 1 mr audit search --patient 12345678
expect_exit 2 mr audit frobnicate
expect_exit 0 "$MEDREC" audit --help
expect_stdout_contains "usage: medrec audit"
expect_exit 0 "$MEDREC" audit verify --help
expect_stdout_contains "usage: medrec audit"
expect_exit 0 "$MEDREC" disclose --help
expect_stdout_contains "usage: medrec disclose"
expect_exit 0 "$MEDREC" disclosures --help
expect_stdout_contains "usage: medrec disclosures"

# --- disclosures --------------------------------------------------------------
d2=$(date -u -d '-2 years' +%F)
d7=$(date -u -d '-7 years' +%F)
expect_exit 0 mr disclose "$MRN" --to "Springfield Insurance Co." \
    --purpose "claim review" --what "discharge summary 2024" --date "$d2" \
    --as dora
expect_exit 0 mr disclose "$MRN" --to "County Health Department" \
    --purpose "public health reporting" --as dora
expect_exit 0 mr disclose "$MRN" --to "Old Clinic" --purpose "transfer" \
    --date "$d7" --as dora
expect_exit 1 mr disclose "$MRN" --to X --purpose Y \
    --date "$(date -u -d '+3 days' +%F)"
expect_stderr_contains "in the future"
expect_exit 1 mr disclose "$MRN" --to X --purpose Y --date 2024-02-30
expect_stderr_contains "disclosure.date"
expect_exit 1 mr disclose "$MRN" --to "$(printf 'a\tb')" --purpose Y
expect_stderr_contains "disclosure.recipient"
expect_exit 2 mr disclose "$MRN" --purpose "no recipient"
expect_stderr_contains "--to"
expect_exit 1 mr disclose 12345678 --to X --purpose Y
expect_exit 0 mr disclosures "$MRN"
cp "$T/.out" disc.txt
expect_eq "the accounting: a header and the two recent disclosures" 3 \
    "$(wc -l <disc.txt)"
check "oldest first" grep -q "^$d2	Springfield Insurance Co.	claim review	discharge summary 2024	dora (" \
    <(sed -n 2p disc.txt)
check "then today's" grep -q "^$today	County Health Department	public health reporting	-	dora (" \
    <(sed -n 3p disc.txt)
check "older than six years: not listed" test "$(grep -c 'Old Clinic' disc.txt)" = 0
expect_exit 0 mr disclosures "$MRN" --json
check "disclosures --json" jqt -s \
    'length == 2 and .[0].recipient == "Springfield Insurance Co." and
     .[1].what == null and .[0].recorded_by == "dora"' "$T/.out"
expect_exit 0 mr disclosures "$MRN2"
expect_stdout_contains "no disclosures"
expect_exit 0 mr audit search --patient "$MRN" --action disclose --json
check "a disclosure is an audit entry with the details as JSON" jqt -s \
    'length == 3 and (.[0].detail | fromjson | .recipient) ==
     "Springfield Insurance Co."' "$T/.out"

# --- verify: intact -----------------------------------------------------------
expect_exit 0 mr audit verify
expect_stdout_matches '^audit trail intact: [0-9]+ entries, [0-9]+ checkpoints$'
expect_stdout_matches '^anchor: [0-9]+:[0-9a-f]{64}$'
ANCHOR=$(sed -n 's/^anchor: //p' "$T/.out")
ASEQ=${ANCHOR%%:*}
expect_exit 0 mr audit verify --json
check "verify --json: intact, every entry signed" jqt \
    '.intact and .uncovered == 0 and .signed.seq == .last_entry and
     .signing_key == "present"' "$T/.out"
N=$(jq .last_entry "$T/.out")
expect_exit 2 mr audit verify --anchor 12:abc
# A few more entries, so there is a tail after the anchor.
for u in erin erin frank; do
    mr patient show "$MRN" --as "$u" >/dev/null 2>&1
done
expect_exit 0 mr audit verify --anchor "$ANCHOR"
expect_exit 0 mr check
expect_stdout_matches "^ok$"

# --- verify: a tamperer with the sqlite3 CLI ---------------------------------------
# 1. One field of one entry changed.
copy changed
sqlite3 "$T/changed.db" "DROP TRIGGER audit_append_only_u;
    UPDATE audit SET actor = 'mallory' WHERE seq = 5"
expect_exit 1 "$MEDREC" audit verify --db "$T/changed.db"
expect_stderr_contains "audit entry 5: hash does not match"
expect_one_line_error
# ...and the hash recomputed by hand still breaks the next entry's link.
sqlite3 "$T/changed.db" "UPDATE audit SET hash = randomblob(32) WHERE seq = 5"
expect_exit 1 "$MEDREC" audit verify --db "$T/changed.db"
expect_stderr_contains "audit entry 5"
expect_exit 1 "$MEDREC" audit verify --db "$T/changed.db" --json
check "verify --json names the bad entry" jqt \
    '.intact == false and .bad_entry == 5 and (.problem | length > 0)' \
    "$T/.out"

# 2. One entry removed from the middle.
copy removed
sqlite3 "$T/removed.db" "DROP TRIGGER audit_append_only_d;
    DELETE FROM audit WHERE seq = 4"
expect_exit 1 "$MEDREC" audit verify --db "$T/removed.db"
expect_stderr_contains "audit entry"
expect_stderr_contains "missing"

# 3. The tail cut off, the checkpoints that cover it left in place.
copy cut
sqlite3 "$T/cut.db" "DROP TRIGGER audit_append_only_d;
    DELETE FROM audit WHERE seq > $((N - 3))"
expect_exit 1 "$MEDREC" audit verify --db "$T/cut.db"
expect_stderr_contains "truncated"

# 4. The tail cut off after the last checkpoint that is left (the
#    checkpoints of the removed entries deleted too): the trail that
#    remains is consistent, so verify alone cannot tell (docs/audit.md);
#    an anchor kept outside the database can.
copy cutall
sqlite3 "$T/cutall.db" "DROP TRIGGER audit_append_only_d;
    DROP TRIGGER audit_checkpoint_append_only_d;
    DELETE FROM audit WHERE seq > $((ASEQ - 2));
    DELETE FROM audit_checkpoint WHERE seq > $((ASEQ - 2))"
expect_exit 0 "$MEDREC" audit verify --db "$T/cutall.db"
expect_exit 1 "$MEDREC" audit verify --db "$T/cutall.db" --anchor "$ANCHOR"
expect_stderr_contains "anchor entry $ASEQ is missing"

# 5. A checkpoint altered: its signature no longer verifies.
copy forged
sqlite3 "$T/forged.db" "DROP TRIGGER audit_checkpoint_append_only_u;
    UPDATE audit_checkpoint SET ts = ts + 1
    WHERE seq = (SELECT min(seq) FROM audit_checkpoint)"
expect_exit 1 "$MEDREC" audit verify --db "$T/forged.db"
expect_stderr_contains "signature does not verify"

# 6. The registered public key swapped for another.
copy rekeyed
sqlite3 "$T/rekeyed.db" "DROP TRIGGER audit_key_append_only_u;
    UPDATE audit_key SET public_key = randomblob(32)"
expect_exit 1 "$MEDREC" audit verify --db "$T/rekeyed.db"
expect_stderr_contains "does not match its id"

# --- a lost signing key ---------------------------------------------------------
copy lost
rm "$T/lost.db.audit-key"
expect_exit 0 "$MEDREC" patient show "$MRN" --db "$T/lost.db" --as gina
check "a lost key is not silently replaced" test ! -e "$T/lost.db.audit-key"
expect_exit 0 "$MEDREC" audit verify --db "$T/lost.db"
expect_stdout_contains "audit trail intact"
expect_stdout_matches "^not yet covered by a signed checkpoint: [0-9]+ entries"
expect_stderr_contains "signing key $T/lost.db.audit-key is missing"
expect_exit 0 "$MEDREC" audit new-key --db "$T/lost.db"
expect_stdout_matches '^[0-9a-f]{16}$'
NEWKEY=$OUT
expect_eq "the new key is private" 600 "$(stat -c %a "$T/lost.db.audit-key")"
expect_exit 1 "$MEDREC" audit new-key --db "$T/lost.db"
expect_stderr_contains "already exists"
expect_exit 0 "$MEDREC" patient show "$MRN" --db "$T/lost.db" --as gina
expect_exit 0 "$MEDREC" audit verify --db "$T/lost.db" --json
check "signing resumes with the new key" jqt \
    ".intact and .keys == 2 and .signed.key == \"$NEWKEY\"" "$T/.out"

# A key readable by others is refused, as ssh refuses such a key.
chmod 644 "$KEY"
expect_exit 1 mr audit verify
expect_stderr_contains "chmod 600"
chmod 600 "$KEY"
expect_exit 0 mr audit verify

summary
