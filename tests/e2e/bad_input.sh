#!/usr/bin/env bash
# Bad input and bad databases: every case exits 1 (2 for bad usage), says
# on one stderr line which field is wrong and why, and changes nothing.
# shellcheck disable=SC2317 # helpers called through bad() look unreachable
. "$(dirname "$0")/lib.sh"

export TZ=UTC
DB=$T/bad.db

"$MEDREC" init --db "$DB" 2>/dev/null || { fail "init"; summary; }
"$MR_SYNTH" patients 40 --seed 3 >seed.ndjson
"$MEDREC" import --db "$DB" seed.ndjson >/dev/null 2>&1 ||
    fail "importing the seed patients"
MRN=$("$MEDREC" patient add --db "$DB" --family Bakker --given Zoë \
    --birth-date 1961-05-04 --gender female --phone +1-555-404-0404 2>/dev/null)

have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1

# What must not change: every current resource, and (when the sqlite3 CLI
# is there) the number of stored versions and the MRN sequence.
state()
{
    "$MEDREC" export --db "${1:-$DB}" 2>/dev/null | md5sum
    if [ "$have_sqlite" = 1 ]; then
        sqlite3 "${1:-$DB}" "SELECT count(*) FROM version;
                             SELECT * FROM seq ORDER BY name;" 2>&1
    fi
}

BEFORE=$(state)
check "the seed data is in place" test "$("$MEDREC" export --db "$DB" \
    2>/dev/null | wc -l)" = 41

unchanged()
{
    local now
    now=$(state)
    if [ "$now" = "$BEFORE" ]; then
        pass "nothing changed"
    else
        fail "the database changed"
        BEFORE=$now
    fi
}

# bad CODE WHAT CMD...: CMD must exit CODE with one stderr line that
# mentions WHAT (case-insensitive), print nothing on stdout, change nothing.
bad()
{
    local code=$1 what=$2
    shift 2
    expect_exit "$code" "$@"
    expect_one_line_error
    expect_stderr_contains "$what"
    expect_stdout_empty
    unchanged
}

add_file()
{
    "$MEDREC" patient add --db "$DB" --file "$1"
}

add_json()
{
    printf '%s\n' "$1" >in.json
    "$MEDREC" patient add --db "$DB" --file in.json
}

add_flags()
{
    "$MEDREC" patient add --db "$DB" --family Testcase --given Ann "$@"
}

# A valid patient, to derive the wrong ones from.
good='"name":[{"family":"Valid","given":["Val"]}],"birthDate":"1980-01-01","gender":"female"'

# --- malformed and wrong resources ------------------------------------------------
printf '{bad' >bad.json
bad 1 "malformed JSON" add_file bad.json
bad 1 "malformed JSON" add_json "{\"resourceType\":\"Patient\",$good} x"
bad 1 "malformed JSON" "$MEDREC" patient add --db "$DB" --file - </dev/null
bad 1 "object" add_json '[1,2]'
bad 1 "Observation" add_json \
    '{"resourceType":"Observation","status":"final","code":{"text":"x"}}'
bad 1 "resourceType" add_json "{$good}"
bad 1 "foo" add_json "{\"resourceType\":\"Patient\",\"foo\":1,$good}"
bad 1 "nosuchfile.json" "$MEDREC" patient add --db "$DB" --file nosuchfile.json

# --- dates -------------------------------------------------------------------------
tomorrow=$(date -d tomorrow +%F)
for d in 1984-13-09 1983-02-29 1900-02-29 1984-04-31 1984-00-10 84-01-01 \
         1984-1-9 2099-01-01 "$tomorrow"; do
    bad 1 "birthDate" add_flags --birth-date "$d" --gender female
    expect_stderr_contains "$d"
done
bad 1 "future" add_flags --birth-date "$tomorrow" --gender female
bad 1 "future" add_json "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"F\"}],\"birthDate\":\"$tomorrow\"}"
bad 1 "birthDate" add_json '{"resourceType":"Patient","name":[{"family":"F"}],"birthDate":"1984-13-09"}'
bad 1 "birthDate" add_json '{"resourceType":"Patient","name":[{"family":"F"}],"birthDate":"1983-02-29"}'
bad 1 "birthDate" add_json '{"resourceType":"Patient","name":[{"family":"F"}],"birthDate":19830101}'
# A real leap day is fine (and is the control for the cases above).
expect_exit 0 add_flags --birth-date 1984-02-29 --gender female
expect_stdout_matches '^[0-9]{8,}$'
BEFORE=$(state)

# --- other fields ---------------------------------------------------------------
bad 1 "gender" add_flags --birth-date 1980-01-01 --gender x
bad 1 "gender" add_json '{"resourceType":"Patient","name":[{"family":"G"}],"gender":"M"}'
bad 1 "phone" add_flags --birth-date 1980-01-01 --gender male --phone abc
bad 1 "name" add_json '{"resourceType":"Patient","name":[{}],"gender":"male"}'
bad 1 "name" add_json '{"resourceType":"Patient","name":[],"gender":"male"}'
bad 1 "family" add_flags --family "" --birth-date 1980-01-01 --gender male
bad 1 "name" add_json '{"resourceType":"Patient","gender":"male"}'
bad 1 "phone" "$MEDREC" patient update "$MRN" --db "$DB" --phone abc \
    --reason "typo test"
bad 1 "birthDate" "$MEDREC" patient update "$MRN" --db "$DB" \
    --birth-date 1983-02-29 --reason "typo test"
bad 2 "reason" "$MEDREC" patient update "$MRN" --db "$DB" --phone \
    +1-555-404-0000
bad 2 "bogus" "$MEDREC" patient add --db "$DB" --bogus
# `patient add --help` shows --birth-date and --gender as required (no
# brackets, unlike --phone): a registration without them is bad usage.
bad 2 "birth-date" add_flags --gender male
bad 2 "gender" add_flags --birth-date 1980-01-01

# --- oversized input ----------------------------------------------------------
# 5 MiB in one valid-looking Patient: the text narrative carries the bulk.
{
    printf '{"resourceType":"Patient",%s,"text":{"status":"generated","div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\">' "$good"
    head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'x'
    printf '</div>"}}\n'
} >big.json
bad 1 "limit" add_file big.json
expect_stderr_contains "4194304"
bad 1 "limit" "$MEDREC" patient add --db "$DB" --file - <big.json
bad 1 "limit" "$MEDREC" import --db "$DB" big.json
cp big.json big.ndjson
bad 1 "limit" "$MEDREC" import --db "$DB" big.ndjson
expect_stderr_contains "line 1"

# --- import: the first bad line stops; earlier batches stay ---------------------
"$MR_SYNTH" patients 5 --seed 9 --start 500 >imp.ndjson
sed -i '3s/"gender":"[a-z]*"/"gender":"x"/' imp.ndjson
expect_exit 1 "$MEDREC" import --db "$DB" imp.ndjson
expect_stderr_contains "line 3"
expect_stderr_contains "gender"
expect_one_line_error
unchanged
expect_exit 1 "$MEDREC" import --db "$DB" --batch 1 imp.ndjson
expect_stderr_contains "line 3"
expect_stderr_contains "gender"
expect_one_line_error
expect_eq "--batch 1: lines 1 and 2 were committed" \
    "$(printf 'committed 1\ncommitted 2')" "$OUT"
ids=$("$MEDREC" export --db "$DB" 2>/dev/null | grep -o '"id":"p0000050[0-9]"' |
      sort | tr '\n' ' ')
expect_eq "--batch 1: exactly p00000500 and p00000501 are stored" \
    '"id":"p00000500" "id":"p00000501" ' "$ids"
BEFORE=$(state)
# A bad first line commits nothing at all.
sed -n 3p imp.ndjson >imp1.ndjson
bad 1 "line 1" "$MEDREC" import --db "$DB" --batch 1 imp1.ndjson

# --- databases ---------------------------------------------------------------
bad 1 "no such database" "$MEDREC" patient show "$MRN" --db nope.db
expect_stderr_contains "medrec init"
check "nope.db was not created" test ! -e nope.db
bad 1 "no such database" "$MEDREC" patient add --db nope.db --family N \
    --given N --birth-date 1980-01-01 --gender male
check "nope.db was not created by add" test ! -e nope.db
bad 1 "no such database" "$MEDREC" import --db nope.db seed.ndjson
check "nope.db was not created by import" test ! -e nope.db
(
    cd "$T" && mkdir -p nodefault && cd nodefault || exit 1
    run "$MEDREC" patient search --name a
    echo "$RC" >rc
    cp "$T/.err" err
)
expect_eq "no ./medrec.db: exit 1" 1 "$(cat nodefault/rc)"
check "no ./medrec.db: says 'no such database'" \
    grep -qi "no such database" nodefault/err

echo "this is a text file, not a database" >text.db
cp text.db text.orig
for cmd in "check" "patient search --name a" "export" "init"; do
    # shellcheck disable=SC2086
    bad 1 "not a medrec database" "$MEDREC" $cmd --db text.db
done
check "the text file is untouched" cmp -s text.db text.orig

if [ "$have_sqlite" = 1 ]; then
    # Locked: another process holds the write lock.
    cp "$DB" lock.db
    LBEFORE=$(state lock.db)
    # sqlite3 reads its statements from a FIFO that this shell keeps open,
    # so the lock is held exactly until the ROLLBACK below. Opening the
    # FIFO read-write first keeps either open() from blocking.
    mkfifo lockfifo
    exec 7<>lockfifo
    sqlite3 lock.db <lockfifo >/dev/null 2>&1 7>&- &
    _BG_PIDS+=($!)
    echo "BEGIN IMMEDIATE;" >&7
    locked=0
    for _ in $(seq 50); do
        if ! sqlite3 -cmd ".timeout 0" lock.db "BEGIN IMMEDIATE; ROLLBACK;" \
            >/dev/null 2>&1; then
            locked=1
            break
        fi
        sleep 0.1
    done
    check "the sqlite3 CLI holds the write lock" test "$locked" = 1
    start=$(date +%s%N)
    MEDREC_BUSY_TIMEOUT_MS=200 bad 1 "locked" "$MEDREC" patient add \
        --db lock.db --family Lock --given Lou --birth-date 1980-01-01 \
        --gender male
    ms=$((($(date +%s%N) - start) / 1000000))
    # The check is loose: it only tells 200 ms from the 5 s default.
    check "MEDREC_BUSY_TIMEOUT_MS=200 gave up early (${ms} ms)" \
        test "$ms" -lt 4000
    MEDREC_BUSY_TIMEOUT_MS=200 bad 1 "locked" "$MEDREC" import \
        --db lock.db seed.ndjson
    MEDREC_BUSY_TIMEOUT_MS=200 bad 1 "locked" "$MEDREC" patient update \
        "$MRN" --db lock.db --phone +1-555-404-1111 --reason "lock test"
    # A read is audited, so it may be refused too, but clearly and quickly.
    MEDREC_BUSY_TIMEOUT_MS=200 run "$MEDREC" patient show "$MRN" --db lock.db
    if [ "$RC" = 0 ] || { [ "$RC" = 1 ] && grep -qi locked "$T/.err"; }; then
        pass "show while locked: exit $RC $(_err1)"
    else
        fail "show while locked: want 0, or 1 and 'locked'; got $RC: $(_err1)"
    fi
    echo "ROLLBACK;" >&7
    exec 7>&-
    wait
    expect_eq "the locked database did not change" "$LBEFORE" \
        "$(state lock.db)"
    expect_exit 0 "$MEDREC" patient add --db lock.db --family Lock \
        --given Lou --birth-date 1980-01-01 --gender male
    expect_stdout_matches '^[0-9]{8,}$'

    # Newer schema.
    cp "$DB" newer.db
    sqlite3 newer.db 'PRAGMA user_version=99'
    NBEFORE=$(md5sum <newer.db)
    for cmd in "check" "patient search --name a" "export" "init" \
               "patient show $MRN"; do
        # shellcheck disable=SC2086
        bad 1 "newer" "$MEDREC" $cmd --db newer.db
    done
    bad 1 "newer" "$MEDREC" patient add --db newer.db --family New \
        --given Ned --birth-date 1980-01-01 --gender male
    expect_eq "the newer database is untouched" "$NBEFORE" \
        "$(md5sum <newer.db)"
else
    echo "skip locked and newer-schema cases: no sqlite3 CLI"
fi

# Corrupt: overwrite 32 KiB in the middle of a populated database.
"$MEDREC" init --db corrupt.db 2>/dev/null
"$MR_SYNTH" patients 3000 --seed 5 |
    "$MEDREC" import --db corrupt.db - >/dev/null 2>&1
check "no WAL left beside the closed database" test ! -s corrupt.db-wal
size=$(stat -c %s corrupt.db)
check "the database to corrupt has some size (${size} bytes)" \
    test "$size" -gt 1000000
yes CORRUPTED | head -c 32768 |
    dd of=corrupt.db bs=4096 seek=$((size / 4096 / 2)) conv=notrunc \
        2>/dev/null
expect_exit 1 "$MEDREC" check --db corrupt.db
if grep -qiE "corrupt|integrity" "$T/.err" "$T/.out"; then
    pass "check reports the corruption: $(_err1)"
else
    fail "check should say 'corrupt' or 'integrity': $(_err1)"
fi
# Other commands fail clearly when they meet a damaged page; which pages
# the damage hits varies, so a command that never reads them may succeed.
for cmd in export "patient search --name s"; do
    # shellcheck disable=SC2086
    run "$MEDREC" $cmd --db corrupt.db
    if [ "$RC" = 0 ]; then
        pass "$cmd on the corrupt database: exit 0 (damage not on its pages)"
    elif [ "$RC" = 1 ] && grep -qi corrupt "$T/.err"; then
        pass "$cmd on the corrupt database: exit 1, $(_err1)"
    else
        fail "$cmd on the corrupt database: want exit 1 and 'corrupt'," \
             "got $RC: $(_err1)"
    fi
done

summary
