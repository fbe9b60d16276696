#!/usr/bin/env bash
# Every command of the command-line interface, end to end, on a fresh
# database: init, patient add/show/search/update, history, export, import,
# check, --help, database selection, duplicates and MRN check digits.
. "$(dirname "$0")/lib.sh"

export TZ=UTC
DB=$T/cli.db

mr()
{
    "$MEDREC" "$@" --db "$DB" 2>/dev/null
}

# JSON validity: jq, else python3; neither installed means the check skips.
json_valid()
{
    if command -v jq >/dev/null 2>&1; then
        jq -e . "$1" >/dev/null 2>&1
    elif command -v python3 >/dev/null 2>&1; then
        python3 -m json.tool "$1" >/dev/null 2>&1
    else
        return 2
    fi
}

check_json()
{
    json_valid "$2"
    case $? in
    0) pass "$1: valid JSON" ;;
    2) echo "skip $1: no jq or python3 to validate JSON" ;;
    *) fail "$1: invalid JSON: $(head -c 200 "$2")" ;;
    esac
}

# Age in whole years on date $2 (YYYY-MM-DD) of someone born on $1.
age_on()
{
    local by=$((10#${1:0:4})) bmd=$((10#${1:5:2}${1:8:2}))
    local ty=$((10#${2:0:4})) tmd=$((10#${2:5:2}${2:8:2}))
    local a=$((ty - by))
    [ "$tmd" -lt "$bmd" ] && a=$((a - 1))
    echo "$a"
}

# --- help and usage --------------------------------------------------------
expect_exit 0 "$MEDREC" --help
expect_stdout_contains "usage"
for c in init patient history export import check; do
    expect_exit 0 "$MEDREC" "$c" --help
    expect_stdout_contains "usage"
done
for s in add show search update; do
    expect_exit 0 "$MEDREC" patient "$s" --help
    expect_stdout_contains "usage"
done
expect_exit 2 "$MEDREC" unknowncmd
expect_stderr_contains "unknowncmd"
expect_exit 2 "$MEDREC"
expect_exit 2 "$MEDREC" patient frobnicate --db "$DB"

# --- init ---------------------------------------------------------------
expect_exit 0 "$MEDREC" init --db "$DB"
check "init created the database file" test -s "$DB"
expect_exit 0 "$MEDREC" init --db "$DB"
expect_exit 0 "$MEDREC" check --db "$DB"
expect_stdout_matches "schema version [0-9]+"
expect_stdout_matches "^ok$"

count()
{
    mr export | wc -l
}

# --- patient add with flags -------------------------------------------------
expect_exit 0 "$MEDREC" patient add --db "$DB" --family Muñoz --given José \
    --given Luis --birth-date 1984-03-09 --gender male \
    --phone +1-555-201-4477 --address "12 Oak Ave, Springfield, IL 62701" \
    --identifier "urn:example:synthetic-ssn|999-12-3456"
expect_stdout_matches '^[0-9]{8,}$'
check "add prints exactly one line on stdout" test "$(wc -l <"$T/.out")" = 1
MRN1=$OUT
expect_eq "patient count after first add" 1 "$(count)"

# Damm: every single-digit change is caught, and says so.
bad_digit_ok=0
for ((i = 0; i < ${#MRN1}; i++)); do
    d=${MRN1:i:1}
    bad="${MRN1:0:i}$(((d + 1) % 10))${MRN1:i+1}"
    run "$MEDREC" patient show "$bad" --db "$DB"
    if [ "$RC" = 1 ] && grep -qi "check digit" "$T/.err"; then
        bad_digit_ok=$((bad_digit_ok + 1))
    else
        fail "show $bad (MRN $MRN1 with digit $i changed): want exit 1" \
             "and 'check digit', got $RC: $(head -n 1 "$T/.err")"
    fi
done
expect_eq "all ${#MRN1} one-digit changes of the MRN are rejected" \
    "${#MRN1}" "$bad_digit_ok"
# Two adjacent digits swapped (when they differ) must be caught too.
if [ "${MRN1:0:1}" != "${MRN1:1:1}" ]; then
    expect_exit 1 "$MEDREC" patient show "${MRN1:1:1}${MRN1:0:1}${MRN1:2}" \
        --db "$DB"
    expect_stderr_contains "check digit"
fi

# --- patient show -------------------------------------------------------
expect_exit 0 "$MEDREC" patient show "$MRN1" --db "$DB"
expect_stdout_contains "Muñoz"
expect_stdout_contains "José"
expect_stdout_matches "^Gender +male$"
expect_stdout_contains "+1-555-201-4477"
today=$(date +%F)
expect_stdout_contains "age $(age_on 1984-03-09 "$today")"

expect_exit 0 "$MEDREC" patient show "$MRN1" --json --db "$DB"
cp "$T/.out" show1.json
check_json "show --json" show1.json
expect_stdout_contains '"resourceType":"Patient"'
expect_stdout_contains '"versionId":"1"'
expect_stdout_contains "\"value\":\"$MRN1\""
PID1=$(grep -o '"id":"[^"]*"' show1.json | head -n 1 | cut -d'"' -f4)
check "show --json has a resource id" test -n "$PID1"
expect_exit 0 "$MEDREC" patient show "Patient/$PID1" --db "$DB"
expect_stdout_contains "$MRN1"

# Age boundaries: the birthday today counts, tomorrow's does not yet.
for delta in "-30 years" "-30 years +1 day" "-30 years -1 day" "-1 day"; do
    bd=$(date -d "$today $delta" +%F)
    run "$MEDREC" patient add --db "$DB" --family Agecheck --given "A$RANDOM" \
        --birth-date "$bd" --gender other
    if [ "$RC" != 0 ]; then
        fail "add born $bd: exit $RC: $ERR"
        continue
    fi
    run "$MEDREC" patient show "$OUT" --db "$DB"
    want=$(age_on "$bd" "$today")
    if grep -q "age $want)" "$T/.out"; then
        pass "born $bd: shows age $want on $today"
    else
        fail "born $bd: want 'age $want' on $today, got: $(grep -i born "$T/.out")"
    fi
done

# --- patient add --file ------------------------------------------------------
"$MR_SYNTH" patients 1 --seed 7 --start 42 >patient.json
expect_exit 0 "$MEDREC" patient add --file patient.json --db "$DB"
expect_stdout_matches '^[0-9]{8,}$'
MRN2=$OUT
fam2=$(grep -o '"family":"[^"]*"' patient.json | cut -d'"' -f4)
expect_exit 0 "$MEDREC" patient show "$MRN2" --db "$DB"
expect_stdout_contains "$fam2"
check "the new MRN differs from the first" test "$MRN2" != "$MRN1"
expect_exit 0 "$MEDREC" patient add --db "$DB" --file - --force <patient.json
expect_stdout_matches '^[0-9]{8,}$'

# --- search -----------------------------------------------------------------
"$MEDREC" patient add --db "$DB" --family Munro --given Ada \
    --birth-date 1950-01-01 --gender female --phone +1-555-301-0001 \
    >/dev/null 2>&1
for q in Muñ MUÑ mun MUN muñoz Munoz; do
    expect_exit 0 "$MEDREC" patient search --name "$q" --db "$DB"
    expect_stdout_contains "$MRN1"
done
expect_exit 0 "$MEDREC" patient search --family mun --db "$DB"
expect_stdout_contains "$MRN1"
expect_stdout_contains "Munro"
expect_exit 0 "$MEDREC" patient search --given jose --db "$DB"
expect_stdout_contains "$MRN1"
expect_exit 0 "$MEDREC" patient search --name munoz --birth-date 1984-03-09 \
    --db "$DB"
expect_stdout_contains "$MRN1"
expect_exit 0 "$MEDREC" patient search --family mun --birth-date ge1984-03-09 \
    --db "$DB"
expect_stdout_contains "$MRN1"
check "ge1984-03-09 excludes 1950" test "$(grep -c Munro "$T/.out")" = 0
expect_exit 0 "$MEDREC" patient search --family mun --birth-date lt1984-03-09 \
    --db "$DB"
expect_stdout_contains "Munro"
check "lt1984-03-09 excludes 1984-03-09" \
    test "$(grep -c "$MRN1" "$T/.out")" = 0
expect_exit 0 "$MEDREC" patient search --family mun --gender female \
    --db "$DB"
expect_stdout_contains "Munro"
check "gender=female excludes the male patient" \
    test "$(grep -c "$MRN1" "$T/.out")" = 0
expect_exit 0 "$MEDREC" patient search --phone +1-555-201-4477 --db "$DB"
expect_stdout_contains "$MRN1"
check "phone search finds only that patient" \
    test "$(grep -c Munro "$T/.out")" = 0
expect_exit 0 "$MEDREC" patient search --family mun --json --db "$DB"
cp "$T/.out" bundle.json
check_json "search --json" bundle.json
expect_stdout_contains '"resourceType":"Bundle"'
expect_stdout_contains '"total":2'
expect_exit 0 "$MEDREC" patient search --family nosuchname --json --db "$DB"
expect_stdout_contains '"total":0'

# Text columns line up also for names with accents (count characters).
run "$MEDREC" patient search --family mun --db "$DB"
col_ok=1
hdr=$(head -n 1 "$T/.out")
want_col=$(LC_ALL=C.UTF-8 awk 'BEGIN{}{print index($0, "BORN")}' <<<"$hdr")
while IFS= read -r line; do
    pre=${line%%[12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]*}
    got_col=$(($(printf '%s' "$pre" | LC_ALL=C.UTF-8 wc -m) + 1))
    [ "$got_col" = "$want_col" ] || col_ok=0
done < <(tail -n +2 "$T/.out")
if [ "$col_ok" = 1 ]; then
    pass "search table: birth dates start under BORN in every row"
else
    fail "search table: birth dates not aligned under BORN when names" \
         "have accents: $(tr '\n' '|' <"$T/.out")"
fi

# --- update and history ----------------------------------------------------
expect_exit 0 "$MEDREC" patient update "$MRN1" --phone +1-555-201-9999 \
    --reason "patient moved" --as alice --db "$DB"
expect_exit 0 "$MEDREC" patient show "$MRN1" --json --db "$DB"
expect_stdout_contains '"versionId":"2"'
expect_stdout_contains "+1-555-201-9999"
check "the old phone is gone from the current version" \
    test "$(grep -c 4477 "$T/.out")" = 0
before=$(mr export | md5sum)
expect_exit 2 "$MEDREC" patient update "$MRN1" --phone +1-555-201-0000 \
    --db "$DB"
expect_stderr_contains "reason"
expect_eq "update without --reason changes nothing" "$before" \
    "$(mr export | md5sum)"

expect_exit 0 "$MEDREC" history "Patient/$PID1" --db "$DB"
cp "$T/.out" hist.txt
expect_eq "history has two versions" 2 "$(grep -c 'version' hist.txt)"
check "history newest first: version 2 on the first line" \
    grep -q 'version 2' <(head -n 1 hist.txt)
check "history: version 1 on the second line" \
    grep -q 'version 1' <(sed -n 2p hist.txt)
check "history: version 2 by alice" grep -q 'alice' <(head -n 1 hist.txt)
check "history: version 2 reason" grep -q 'patient moved' <(head -n 1 hist.txt)
check "history: version 1 by the registering user" \
    grep -q "by $(id -un)" <(sed -n 2p hist.txt)
expect_exit 0 "$MEDREC" history --json "Patient/$PID1" --db "$DB"
cp "$T/.out" hist.json
check_json "history --json" hist.json
expect_stdout_contains '"type":"history"'
expect_stdout_contains '"total":2'
expect_exit 1 "$MEDREC" history Patient/doesnotexist --db "$DB"
expect_stderr_contains "not found"

# --- database selection -------------------------------------------------------
mkdir envdb cwd
MEDREC_DB=$T/envdb/env.db expect_exit 0 "$MEDREC" init
check "init honours \$MEDREC_DB" test -s envdb/env.db
MEDREC_DB=$T/envdb/env.db expect_exit 0 "$MEDREC" patient add \
    --family Envtest --given Eve --birth-date 2001-02-03 --gender female
MEDREC_DB=$T/envdb/env.db expect_exit 0 "$MEDREC" patient search --name envt
expect_stdout_contains "Envtest"
expect_exit 0 "$MEDREC" patient search --name envt --db "$DB"
check "the \$MEDREC_DB patient is not in the --db database" \
    test "$(grep -c Envtest "$T/.out")" = 0
(
    cd cwd || exit 1
    expect_exit 0 "$MEDREC" init
    check "default database is ./medrec.db" test -s medrec.db
    expect_exit 0 "$MEDREC" patient add --family Cwdtest --given Carl \
        --birth-date 1970-07-07 --gender male
    expect_exit 0 "$MEDREC" patient search --name cwdt
    expect_stdout_contains "Cwdtest"
    # --db wins over $MEDREC_DB.
    MEDREC_DB=$T/envdb/env.db expect_exit 0 "$MEDREC" patient search \
        --name cwdt --db medrec.db
    expect_stdout_contains "Cwdtest"
    echo "$PASS $FAIL" >../.sub
)
read -r PASS FAIL <.sub
check "no medrec.db created beside the explicit --db runs" test ! -e medrec.db

# --- duplicates --------------------------------------------------------------
n=$(count)
expect_exit 1 "$MEDREC" patient add --db "$DB" --family Muñoz --given José \
    --given Luis --birth-date 1984-03-09 --gender male
expect_stderr_contains "possible duplicate"
expect_stderr_contains "$MRN1"
expect_stdout_empty
expect_eq "a refused duplicate writes nothing" "$n" "$(count)"
expect_exit 1 "$MEDREC" patient add --db "$DB" --family MUNOZ --given jose \
    --given Luis --birth-date 1984-03-09 --gender male
expect_stderr_contains "possible duplicate"
expect_eq "case/accent variant is a duplicate too; nothing written" "$n" \
    "$(count)"
expect_exit 0 "$MEDREC" patient add --db "$DB" --family Muñoz --given José \
    --given Luis --birth-date 1984-03-09 --gender male --force
expect_stdout_matches '^[0-9]{8,}$'
check "--force gives a new MRN" test "$OUT" != "$MRN1"
expect_eq "--force registers the duplicate" $((n + 1)) "$(count)"
# Same name, other birth date: not a duplicate.
expect_exit 0 "$MEDREC" patient add --db "$DB" --family Muñoz --given José \
    --given Luis --birth-date 1984-03-10 --gender male

# --- export, import, export ------------------------------------------------------
"$MR_SYNTH" patients 300 --seed 11 --start 1000 >synth.ndjson
expect_exit 0 "$MEDREC" import --batch 100 --db "$DB" synth.ndjson
expect_eq "import reports its last commit" "committed 300" \
    "$(tail -n 1 "$T/.out")"
expect_exit 0 "$MEDREC" export --db "$DB"
cp "$T/.out" export1.ndjson
expect_eq "export has every patient" $((n + 2 + 300)) \
    "$(wc -l <export1.ndjson)"
expect_exit 0 "$MEDREC" init --db "$T/copy.db"
expect_exit 0 "$MEDREC" import --db "$T/copy.db" export1.ndjson
expect_exit 0 "$MEDREC" export --db "$T/copy.db"
cp "$T/.out" export2.ndjson
check "export -> import -> export is byte-identical" \
    cmp -s export1.ndjson export2.ndjson
expect_exit 0 "$MEDREC" patient show "$MRN1" --db "$T/copy.db"
expect_stdout_contains "Muñoz"
expect_exit 0 "$MEDREC" check --db "$T/copy.db"
expect_stdout_matches "^ok$"

# A patient registered after the import gets an MRN of its own: the MRN
# sequence must not hand out numbers the imported patients already hold.
grep -o '"system":"urn:medrec:mrn","value":"[0-9]*"' export1.ndjson |
    cut -d'"' -f8 | sort >mrns_imported.txt
expect_exit 0 "$MEDREC" patient add --db "$T/copy.db" --family Afterimport \
    --given Ivy --birth-date 2002-02-02 --gender female
MRN3=$OUT
check "an MRN assigned after import ($MRN3) is not an imported patient's" \
    test -n "$MRN3" -a "$(grep -cx "$MRN3" mrns_imported.txt)" = 0
expect_exit 0 "$MEDREC" patient show "$MRN1" --db "$T/copy.db"
expect_stdout_contains "Muñoz"
expect_exit 0 "$MEDREC" patient show "$MRN3" --db "$T/copy.db"
expect_stdout_contains "Afterimport"

# --- check --------------------------------------------------------------------
expect_exit 0 "$MEDREC" check --db "$DB"
expect_stdout_matches "schema version [0-9]+"
expect_stdout_matches "^ok$"

summary
