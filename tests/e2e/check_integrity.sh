#!/usr/bin/env bash
# medrec check finds what the storage layer alone cannot: a medical record
# number shared by two patients, current versions that went missing, and
# a resource stored without the search entries its JSON calls for.
. "$(dirname "$0")/lib.sh"
need_cmd sqlite3

DB="$T/c.db"
expect_exit 0 "$MEDREC" init --db "$DB"
expect_exit 0 "$MEDREC" patient add --db "$DB" --family Checkone --given A \
    --birth-date 1980-01-01 --gender male
expect_exit 0 "$MEDREC" patient add --db "$DB" --family Checktwo --given B \
    --birth-date 1981-02-02 --gender female
expect_exit 0 "$MEDREC" check --db "$DB"
expect_stdout_contains "ok"

# Two patients with one MRN (only possible by editing the file).
cp "$DB" "$T/dup.db"
sqlite3 "$T/dup.db" "UPDATE ix_token SET code = (SELECT min(code) FROM
    ix_token WHERE system = 'urn:medrec:mrn') WHERE system = 'urn:medrec:mrn'"
expect_exit 1 "$MEDREC" check --db "$T/dup.db"
expect_stdout_contains "medical record numbers shared by more than one"
expect_stderr_contains "integrity check failed"

# A resource whose current version row is gone (triggers bypassed).
cp "$DB" "$T/gone.db"
sqlite3 "$T/gone.db" "PRAGMA foreign_keys=OFF; UPDATE resource SET version = 7
    WHERE rowid = (SELECT min(rowid) FROM resource)"
expect_exit 1 "$MEDREC" check --db "$T/gone.db"
expect_stdout_contains "without their current version"

# A patient whose token entries are gone (what a group commit once did):
# stored, but no identifier search would find it.
cp "$DB" "$T/noix.db"
sqlite3 "$T/noix.db" "DELETE FROM ix_token WHERE rid = (SELECT rid FROM
    resource WHERE type = 'Patient' ORDER BY rid LIMIT 1)"
expect_exit 1 "$MEDREC" check --db "$T/noix.db"
expect_stdout_matches "^index: Patient/[A-Za-z0-9.-]+ has no token search entries"
expect_stdout_contains "1 resources miss search entries"

summary
