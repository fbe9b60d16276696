#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq programs in single quotes use $variables
# HL7 v2 to FHIR mapping (docs/hl7.md, src/records/hl7_map.c), through
# `medrec hl7 import` and read back with `medrec export` / `history`:
#
# 1. The shared corpus ($MEDREC_SHARED_DATA/hl7v2/*.hl7, third-party
#    samples and fuzzer outputs), with every MSH-3/MSH-4 registered as a
#    sender: the binary never crashes (exit 0 or 1, no sanitizer report),
#    every message gets a row in the interface log with a consistent
#    status and ACK code, message types and events medrec does not apply
#    are AR, and at least HL7_CORPUS_ADT_FLOOR of the ADT messages with a
#    supported event are applied. The corpus goes through twice: as it is
#    (its samples reuse control ids, so most are repeats of each other),
#    and with MSH-10 made unique per message so each one is mapped. The
#    counts by status and every supported ADT message that was not
#    applied (with its reason) are printed for a human to judge.
# 2. Field by field, with made-up messages: identifiers, names, dates and
#    time zones, gender, address, telecom, encounter class, location and
#    attending, OBX value types (NM, ST, TX, CWE, SN), reference ranges,
#    interpretation, OBX-11 status, NTE after OBX / OBR.
# 3. Behaviours: repeats, A01/A03/A08/A13, A11, A02/A12, A40 merge and a
#    result for the old identifier, ORM then ORU (basedOn), unknown order
#    and unknown patient (unmatched, then replay), a corrected result as
#    version 2, unregistered sender, MSH-11 T, a bad PID-7 (AE with ERR),
#    A60 with IAM (and IAM-6 D), unsupported types.
#
# Every person here is made up; the corpus is third-party sample data.
. "$(dirname "$0")/lib.sh"

need_cmd jq perl

# Times without an offset take MSH-7's; the server's own zone must not
# leak into what is checked.
export TZ=UTC

run "$MEDREC" hl7 --help
grep -qi 'unknown command' "$T/.err" && skip "medrec has no hl7 command yet"

# Applied supported-event ADT messages of the corpus (unique control ids)
# measured when this test was written; raise it as the mapping improves.
ADT_FLOOR=${HL7_CORPUS_ADT_FLOOR:-25}
SUPPORTED_ADT=' A01 A02 A03 A04 A05 A08 A11 A12 A13 A28 A31 A40 A60 '

CRASHES=0
RUNS=0

# crashed: the last run exited other than 0 or 1 (a signal, a usage
# error) or a sanitizer spoke (ASan exits 1 by default).
crashed()
{
    [ "$RC" -ge 128 ] || [ "$RC" -gt 1 ] ||
        grep -qE 'Sanitizer|runtime error:|LeakSanitizer' "$T/.err"
}

# M ARGS...: medrec on $DB; a crash is a failure, else silent.
M()
{
    run "$MEDREC" "$@" --db "$DB"
    RUNS=$((RUNS + 1))
    if crashed; then
        CRASHES=$((CRASHES + 1))
        fail "medrec $* exited $RC: $(grep -m1 -E 'Sanitizer|runtime error' \
            "$T/.err" || _err1)"
    fi
}

# imp FILE: hl7 import; ID ACK STATUS DETAIL from its last line.
imp()
{
    M hl7 import "$1"
    IFS=$'\t' read -r ID ACK STATUS DETAIL < <(tail -n 1 "$T/.out")
    ID=${ID:-0}
}

# messages: the interface log as NDJSON in $T/log.ndjson.
messages()
{
    M hl7 messages --json --limit 1000000
    cp "$T/.out" "$T/log.ndjson"
}

# logq ID JQ: a jq expression on row ID of the log (call messages first).
logq()
{
    jq -r --argjson id "$1" "select(.id == \$id) | $2" "$T/log.ndjson"
}

# dump: every resource in $T/all.ndjson.
dump()
{
    M export
    cp "$T/.out" "$T/all.ndjson"
}

# q JQ: jq over the export (one result per line, raw).
q()
{
    jq -r "$@" "$T/all.ndjson"
}

# pat VALUE [SYSTEM]: the id of the Patient with that identifier.
pat()
{
    q --arg v "$1" --arg s "${2:-urn:medrec:aa:HOSP}" \
        'select(.resourceType == "Patient" and
                any(.identifier[]?; .system == $s and .value == $v)) | .id'
}

# res TYPE: one resource of TYPE with id $2 as compact JSON.
res()
{
    q -c --arg t "$1" --arg i "$2" 'select(.resourceType == $t and .id == $i)'
}

# ---- building messages ---------------------------------------------------

# msh APP FAC TIME TYPE CONTROL [PROCESSING]: an MSH segment (v2.5.1).
msh()
{
    printf 'MSH|^~\\&|%s|%s|MEDREC|MEDREC|%s||%s|%s|%s|2.5.1\r' \
        "$1" "$2" "$3" "$4" "$5" "${6:-P}"
}

# seg ID N=VALUE...: a segment with field N set to VALUE (others empty).
seg()
{
    local id=$1 kv i max=0 out
    local -a f=()
    shift
    for kv in "$@"; do
        i=${kv%%=*}
        f[i]=${kv#*=}
        [ "$i" -gt "$max" ] && max=$i
    done
    out=$id
    for ((i = 1; i <= max; i++)); do
        out+="|${f[i]:-}"
    done
    printf '%s\r' "$out"
}

# ==== 1. the corpus =======================================================

CORPUS=$MEDREC_SHARED_DATA/hl7v2
if [ -z "$MEDREC_SHARED_DATA" ] && [ -d "$LIB_DIR/../../../shared/data" ]; then
    CORPUS=$(cd "$LIB_DIR/../../../shared/data" && pwd)/hl7v2
fi
if ! ls "$CORPUS"/*.hl7 >/dev/null 2>&1; then
    echo "$TEST_NAME: no corpus in $CORPUS: corpus checks skipped"
else
    # Every MSH-3/MSH-4 pair of the corpus (MSH-1 and MSH-2 as each message
    # declares them), registered: ADT senders as registration-system,
    # everything else as lab-technician; no facility: any facility.
    for f in "$CORPUS"/*.hl7; do
        tr '\r' '\n' <"$f" | LC_ALL=C sed 's/^\xEF\xBB\xBF//' | awk '
            /^MSH/ && length($0) > 8 {
                fs = substr($0, 4, 1); cs = substr($0, 5, 1)
                n = split($0, a, fs)
                split(a[3], app, cs); split(a[4], fac, cs); split(a[9], t, cs)
                if (app[1] != "" || fac[1] != "")
                    print app[1] "\x1f" fac[1] "\x1f" t[1]
            }'
    done | awk -F'\x1f' '{
            k = $1 "\x1f" $2
            if ($3 == "ADT") role[k] = "registration-system"
            else if (!(k in role)) role[k] = "lab-technician"
        } END { for (k in role) print k "\x1f" role[k] }' |
        sort >"$T/senders"

    DB=$T/template.db
    M init
    nsend=0
    # The samples come from test systems (many send MSH-11 T): their
    # senders are registered as test systems, which --processing allows.
    while IFS=$'\x1f' read -r app fac role; do
        if [ -n "$fac" ]; then
            M hl7 sender add --app "$app" --facility "$fac" --role "$role" \
                --processing P,T,D
        else
            M hl7 sender add --app "$app" --role "$role" --processing P,T,D
        fi
        [ "$RC" = 0 ] && nsend=$((nsend + 1))
    done <"$T/senders"
    expect_eq "corpus: every sender registered" "$(wc -l <"$T/senders")" \
        "$nsend"

    # corpus_pass NAME DIR: import each file of DIR on its own copy of the
    # template; per-file lines in $T/NAME.lines (file TAB import line).
    corpus_pass()
    {
        local name=$1 dir=$2 f nfiles=0 nmsh bad="" short="" cut=""
        DB=$T/$name.db
        for x in "" -wal -shm; do
            [ -f "$T/template.db$x" ] && cp "$T/template.db$x" "$DB$x"
        done
        : >"$T/$name.lines"
        for f in "$dir"/*.hl7; do
            nfiles=$((nfiles + 1))
            run "$MEDREC" hl7 import --db "$DB" "$f"
            crashed && bad+=" ${f##*/}(exit $RC)"
            # One line per message: at least one per MSH segment.
            nmsh=$(tr '\r' '\n' <"$f" | LC_ALL=C sed 's/^\xEF\xBB\xBF//' |
                grep -ac '^MSH')
            [ "$(wc -l <"$T/.out")" -ge "$nmsh" ] || short+=" ${f##*/}"
            # The import went to the end of the file (its summary line).
            tail -n 1 "$T/.err" | grep -qE '^medrec: [0-9]+ applied' ||
                cut+=" ${f##*/}"
            sed "s|^|${f##*/}\t|" "$T/.out" >>"$T/$name.lines"
        done
        expect_eq "corpus ($name): $nfiles files, none crashed medrec" \
            "" "$bad"
        expect_eq "corpus ($name): a line for every MSH of every file" \
            "" "$short"
        expect_eq "corpus ($name): every import read its file to the end" \
            "" "$cut"
        messages
        cp "$T/log.ndjson" "$T/$name.log"
    }

    # print_counts NAME: the log's rows by status.
    print_counts()
    {
        echo "     corpus ($1) by status:" \
            "$(jq -r .status "$T/$1.log" | sort | uniq -c |
                awk '{printf "%s %s, ", $2, $1}' | sed 's/, $//')"
    }

    # consistent NAME: every row is finished with the ACK of its status.
    consistent()
    {
        local odd
        odd=$(jq -r 'select(
                (.status == "applied"   and .ack != "AA") or
                (.status == "unmatched" and .ack != "AA") or
                (.status == "error"     and .ack != "AE") or
                (.status == "rejected"  and .ack != "AR") or
                (.status | IN("applied","unmatched","error","rejected") | not))
              | "\(.id) \(.type) \(.status) \(.ack)"' "$T/$1.log")
        expect_eq "corpus ($1): every row has a final status and its ACK" \
            "" "$odd"
        odd=$(jq -r 'select(.ack_message == null or
                            (.ack_message | test("\\rMSA.A[AER].") | not))
                     | .id' "$T/$1.log" | head -n 5 | tr '\n' ' ')
        expect_eq "corpus ($1): every row keeps the ACK it sent" "" "$odd"
    }

    # --- pass 1: the files as they are
    corpus_pass raw "$CORPUS"
    nlines=$(wc -l <"$T/raw.lines")
    nrep=$(grep -c '(repeat)' "$T/raw.lines")
    nrows=$(wc -l <"$T/raw.log")
    expect_eq "corpus (raw): one log row per message that is not a repeat" \
        "$((nlines - nrep))" "$nrows"
    expect_eq "corpus (raw): repeats counted in the log" "$nrep" \
        "$(jq -s 'map(.repeats) | add // 0' "$T/raw.log")"
    echo "     corpus (raw): $nlines messages, $nrep repeats of an earlier" \
         "sender + MSH-10"
    print_counts raw
    consistent raw

    # --- pass 2: MSH-10 unique per message (the samples share control
    # ids: MSG00001 from ADTApp 31 times), so every message is mapped. The
    # fuzzer files go as they are.
    mkdir "$T/uniq"
    i=0
    for f in "$CORPUS"/*.hl7; do
        i=$((i + 1))
        case ${f##*/} in
        nhapi_bad_*) cp "$f" "$T/uniq/" ;;
        *) perl -0777 -pe '
               s/((?:^(?:\xEF\xBB\xBF)?|[\r\n])MSH(.)(?:(?:(?!\2)[^\r\n])*\2){8}(?:(?!\2)[^\r\n])*)/$1 . "-F'"$i"'." . ++$n/ge' \
               "$f" >"$T/uniq/${f##*/}" ;;
        esac
    done
    corpus_pass uniq "$T/uniq"
    nlines=$(wc -l <"$T/uniq.lines")
    expect_eq "corpus (unique ids): every message gets its own row" \
        "$nlines" "$(wc -l <"$T/uniq.log")"
    expect_eq "corpus (unique ids): no repeats" 0 \
        "$(grep -c '(repeat)' "$T/uniq.lines")"
    print_counts uniq
    consistent uniq

    # Types and events medrec does not apply: AR (rejected), whoever sent
    # them, never an error or a crash.
    odd=$(jq -r --arg sup "$SUPPORTED_ADT" '
        select(.type != "") |
        (.type | split("^")) as [$t, $e] |
        select(($t == "ADT" and ($sup | contains(" " + $e + " ") | not)) or
               ($t != "ADT" and
                (.type | IN("ORU^R01", "ORM^O01", "OML^O21") | not))) |
        select(.status != "rejected" or .ack != "AR") |
        "\(.id) \(.type) \(.status) \(.ack)"' "$T/uniq.log")
    expect_eq "corpus: unsupported types and ADT events are AR" "" "$odd"
    n=$(jq -r 'select(.type | test("^(SIU|MDM|DFT|BAR|VXU|RDE|REF|OUL)\\^"))
               | .id' "$T/uniq.log" | wc -l)
    check "corpus: SIU/MDM/DFT/BAR/VXU/RDE/REF/OUL messages mapped ($n)" \
        [ "$n" -ge 40 ]

    # Supported types and events: how many applied, and why the others
    # were not (file, log id, type, status, sender, reason).
    jq -r --arg sup "$SUPPORTED_ADT" '
        (.type | split("^")) as [$t, $e] |
        select(($t == "ADT" and ($sup | contains(" " + $e + " "))) or
               (.type | IN("ORU^R01", "ORM^O01", "OML^O21"))) |
        [.id, .type, .status, .sender, (.detail // "")] | @tsv' \
        "$T/uniq.log" | sort -n >"$T/supported"
    awk -F'\t' 'NR == FNR { file[$2] = $1; next }
        { print file[$1] "\t" $0 }' "$T/uniq.lines" "$T/supported" \
        >"$T/supported.named"
    awk -F'\t' '$3 ~ /^ADT\^/' "$T/supported.named" >"$T/adt"
    nadt=$(wc -l <"$T/adt")
    napplied=$(awk -F'\t' '$4 == "applied"' "$T/adt" | wc -l)
    echo "     corpus: $napplied of $nadt supported-event ADT messages" \
         "applied; ORU/ORM/OML: $(awk -F'\t' '$3 !~ /^ADT/ && $4 == "applied"' \
             "$T/supported.named" | wc -l) of $(awk -F'\t' '$3 !~ /^ADT/' \
             "$T/supported.named" | wc -l) applied." \
         "Not applied:"
    awk -F'\t' '$4 != "applied" {
            printf "       %-44s %-4s %-8s %-9s %-22s %s\n", $1, $2, $3, $4,
                substr($5, 1, 22), substr($6, 1, 100) }' \
        "$T/supported.named"
    check "corpus: at least $ADT_FLOOR supported ADT messages applied" \
        [ "$napplied" -ge "$ADT_FLOOR" ]
    check "corpus: supported-event ADT messages found" [ "$nadt" -ge 30 ]
    # A registered sender's production message that is refused must say
    # why in its ACK; none may end as an internal failure.
    odd=$(jq -r 'select(.status == "error" and
                        (.detail // "" | test("internal|out of memory"; "i")))
                 | "\(.id) \(.detail)"' "$T/uniq.log")
    expect_eq "corpus: no message fails inside medrec" "" "$odd"
fi

# ==== 2. field by field ===================================================

DB=$T/map.db
M init
M hl7 sender add --app REG --facility HOSP --role registration-system
M hl7 sender add --app LAB --facility HOSP --role lab-technician
M hl7 sender add --app ADMIT --facility "GENERAL HOSP" \
    --role registration-system
M hl7 sender list
expect_eq "three senders registered" 3 "$(grep -c active "$T/.out")"

# --- a patient with all the demographics
{
    msh REG HOSP 20260105093000+0100 'ADT^A04^ADT_A01' PAT-1
    seg EVN 1=A04 2=20260105093000+0100
    seg PID 1=1 \
        3='MRN1001^^^HOSP^MR~9876543210^^^&2.16.840.1.113883.2.4.6.3&ISO^NI' \
        5='Testperson^Alexandra^Maria^Jr^Ms^^L~Testperson-Old^Alex^^^^^M' \
        7=19800215 8=F \
        11='12 Example Street^Flat 3^Springfield^ST^12345^XX^H' \
        13='^PRN^PH^^^555^5551234~^NET^Internet^alex.testperson@example.org'
    seg PV1 1=1 2=O 3='CLINIC^12^^HOSP' 7='D123^Doctor^Dana^^^Dr' \
        19='V400^^^HOSP^VN' 44=202601050915
} >"$T/pat1.hl7"
imp "$T/pat1.hl7"
expect_eq "A04 with demographics: applied" "AA applied" "$ACK $STATUS"
PAT1_MSG=$ID
dump
P1=$(pat MRN1001)
check "A04: the Patient is found by urn:medrec:aa:HOSP|MRN1001" [ -n "$P1" ]
P=$(res Patient "$P1")
pj() { jq -r "$1" <<<"$P"; }
expect_eq "PID-3 CX.4.1 -> system urn:medrec:aa:HOSP, type MR" \
    "MR" "$(pj '.identifier[] | select(.value == "MRN1001") |
                .type.coding[0].code')"
expect_eq "PID-3 CX.4.2 + ISO -> urn:oid:" \
    "urn:oid:2.16.840.1.113883.2.4.6.3" \
    "$(pj '.identifier[] | select(.value == "9876543210") | .system')"
expect_eq "PID-5: family" Testperson "$(pj '.name[0].family')"
expect_eq "PID-5: given and middle name" 'Alexandra Maria' \
    "$(pj '.name[0].given | join(" ")')"
expect_eq "PID-5: suffix, prefix, use L -> official" 'Jr Ms official' \
    "$(pj '"\(.name[0].suffix[0]) \(.name[0].prefix[0]) \(.name[0].use)"')"
expect_eq "PID-5 second repetition: use M -> maiden" 'Testperson-Old maiden' \
    "$(pj '"\(.name[1].family) \(.name[1].use)"')"
expect_eq "PID-7 -> birthDate" 1980-02-15 "$(pj .birthDate)"
expect_eq "PID-8 F -> female" female "$(pj .gender)"
expect_eq "PID-11: lines, city, state, postal code, country, use" \
    '12 Example Street|Flat 3|Springfield|ST|12345|XX|home' \
    "$(pj '.address[0] | [(.line | join("|")), .city, .state, .postalCode,
                          .country, .use] | join("|")')"
expect_eq "PID-13: phone from area code and number, use home" \
    'phone (555) 5551234 home' \
    "$(pj '.telecom[] | select(.system == "phone") |
           "\(.system) \(.value) \(.use)"')"
expect_eq "PID-13: Internet -> email" 'alex.testperson@example.org home' \
    "$(pj '.telecom[] | select(.system == "email") | "\(.value) \(.use)"')"

E=$(q -c 'select(.resourceType == "Encounter" and
                 .identifier[0].value == "V400")')
ej() { jq -r "$1" <<<"$E"; }
expect_eq "PV1-19 -> Encounter.identifier system urn:medrec:aa:HOSP" \
    urn:medrec:aa:HOSP "$(ej '.identifier[0].system')"
expect_eq "Encounter.subject is the patient" "Patient/$P1" \
    "$(ej .subject.reference)"
expect_eq "PV1-2 O -> class AMB (v3-ActCode)" \
    'http://terminology.hl7.org/CodeSystem/v3-ActCode AMB' \
    "$(ej '"\(.class.system) \(.class.code)"')"
expect_eq "A04: a new visit is arrived" arrived "$(ej .status)"
expect_eq "PV1-3 -> location display, active" 'CLINIC room 12 (HOSP) active' \
    "$(ej '.location[0] | "\(.location.display) \(.status)"')"
expect_eq "PV1-44 without offset takes MSH-7's (+0100)" \
    2026-01-05T09:15:00+01:00 "$(ej .period.start)"
expect_eq "EVN-2 +0100 -> +01:00 (location period)" \
    2026-01-05T09:30:00+01:00 "$(ej '.location[0].period.start')"
expect_eq "PV1-7 -> participant ATND" ATND \
    "$(ej '.participant[0].type[0].coding[0].code')"
expect_eq "PV1-7 -> attending display and identifier" \
    'Dr Dana Doctor D123 urn:medrec:aa:HOSP' \
    "$(ej '.participant[0].individual |
           "\(.display) \(.identifier.value) \(.identifier.system)"')"

# --- encounter classes I and E
{
    msh REG HOSP 20260110080000+0100 'ADT^A01^ADT_A01' ENC-I
    seg EVN 1=A01 2=20260110080500+0100
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg PV1 1=1 2=I 3='WARD1^101^A^HOSP' 7='D123^Doctor^Dana' \
        19='V100^^^HOSP^VN' 44=20260110080000+0100
} >"$T/a01.hl7"
imp "$T/a01.hl7"
expect_eq "A01: applied" "AA applied" "$ACK $STATUS"
{
    msh REG HOSP 20260111230000+0100 'ADT^A04^ADT_A01' ENC-E
    seg EVN 1=A04 2=20260111230000+0100
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg PV1 1=1 2=E 3='ED^^^HOSP' 19='V500^^^HOSP^VN'
} >"$T/enc_e.hl7"
imp "$T/enc_e.hl7"
expect_eq "A04 emergency: applied" "AA applied" "$ACK $STATUS"
dump
enc() # enc VISIT JQ
{
    q --arg v "$1" "select(.resourceType == \"Encounter\" and
                           .identifier[0].value == \$v) | $2"
}
expect_eq "PV1-2 I -> IMP" IMP "$(enc V100 .class.code)"
expect_eq "PV1-2 E -> EMER" EMER "$(enc V500 .class.code)"
expect_eq "A01: in-progress" in-progress "$(enc V100 .status)"
expect_eq "A01: PV1-44 -> period.start" 2026-01-10T08:00:00+01:00 \
    "$(enc V100 .period.start)"
expect_eq "A01: location with room and bed" 'WARD1 room 101 bed A (HOSP)' \
    "$(enc V100 '.location[-1].location.display')"
expect_eq "A01 for a known identifier: no second Patient" 1 \
    "$(q 'select(.resourceType == "Patient") | .id' | grep -c "^$P1\$")"

# --- results: value types, units, ranges, notes, time zones
{
    msh LAB HOSP 20260107090000+0100 'ORM^O01^ORM_O01' ORD-1
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg ORC 1=NW 2='PLC-100^ORDERS' 7='^^^^^S' 9=20260107090000+0100 \
        12='D123^Doctor^Dana'
    seg OBR 1=1 2='PLC-100^ORDERS' 4='24331-1^Lipid panel^LN'
} >"$T/orm.hl7"
imp "$T/orm.hl7"
expect_eq "ORM^O01: applied" "AA applied" "$ACK $STATUS"
dump
SR=$(q 'select(.resourceType == "ServiceRequest" and
               any(.identifier[]; .value == "PLC-100")) | .id')
check "ORM^O01 -> a ServiceRequest with the placer number" [ -n "$SR" ]
S=$(res ServiceRequest "$SR")
expect_eq "ServiceRequest: PLAC identifier urn:medrec:aa:ORDERS|PLC-100" \
    'PLAC urn:medrec:aa:ORDERS PLC-100' \
    "$(jq -r '.identifier[0] |
              "\(.type.coding[0].code) \(.system) \(.value)"' <<<"$S")"
expect_eq "ServiceRequest: active order, stat, LOINC code, subject" \
    "active order stat http://loinc.org 24331-1 Patient/$P1" \
    "$(jq -r '"\(.status) \(.intent) \(.priority) \(.code.coding[0].system) \(.code.coding[0].code) \(.subject.reference)"' <<<"$S")"
expect_eq "ServiceRequest: ORC-9 -> authoredOn, ORC-12 -> requester" \
    '2026-01-07T09:00:00+01:00 D123' \
    "$(jq -r '"\(.authoredOn) \(.requester.identifier.value)"' <<<"$S")"

{
    msh LAB HOSP 20260106101500+0530 'ORU^R01^ORU_R01' RES-1
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg OBR 1=1 2='PLC-100^ORDERS' 3='FIL-1^LAB' 4='24331-1^Lipid panel^LN' \
        7=202601060800 22=20260106100000+0100 25=F
    seg NTE 1=1 3='Fasting sample.'
    seg OBX 1=1 2=NM 3='2345-7^Glucose^LN' 5=1.50 \
        6='mmol/L^millimole per liter^UCUM' 7=70-99 8=H 11=F \
        14=20260106080000+0100
    seg NTE 1=1 3='Repeat advised.'
    seg OBX 1=2 2=ST 3='8251-1^Service comment^LN' 5='Looks fine' 11=P
    seg OBX 1=3 2=TX 3='11526-1^Pathology study^LN' \
        5='First line~Second line' 11=F
    seg OBX 1=4 2=CWE 3='882-1^ABO and Rh group^LN' \
        5='LA19710-5^Group A^LN' 11=F
    seg OBX 1=5 2=SN 3='5671-3^Lead^LN' 5='<^10' \
        6='ug/dL^microgram per deciliter^UCUM' 7='<5' 8=L 11=F
    seg OBX 1=6 2=SN 3='2093-3^Cholesterol^LN' 5='^10^-^20' 6='mg/dL^^UCUM' \
        11=F
    seg OBX 1=7 2=SN 3='5196-1^HBsAg titer^LN' 5='^1^:^128' 11=F
} >"$T/oru.hl7"
imp "$T/oru.hl7"
expect_eq "ORU^R01 with seven results: applied" "AA applied" "$ACK $STATUS"
dump
obs() # obs LOINC JQ: on the patient's Observation with that code
{
    q --arg c "$1" --arg p "Patient/$P1" \
        "select(.resourceType == \"Observation\" and
                .subject.reference == \$p and
                .code.coding[0].code == \$c) | $2"
}
DR=$(q 'select(.resourceType == "DiagnosticReport" and
               .identifier[0].value == "FIL-1") | .id')
check "ORU -> a DiagnosticReport keyed by OBR-3" [ -n "$DR" ]
D=$(res DiagnosticReport "$DR")
dj() { jq -r "$1" <<<"$D"; }
expect_eq "DiagnosticReport: FILL identifier urn:medrec:aa:LAB|FIL-1" \
    'FILL urn:medrec:aa:LAB' \
    "$(dj '.identifier[0] | "\(.type.coding[0].code) \(.system)"')"
expect_eq "DiagnosticReport: status F -> final, LOINC code" \
    'final http://loinc.org 24331-1' \
    "$(dj '"\(.status) \(.code.coding[0].system) \(.code.coding[0].code)"')"
expect_eq "OBR-2 placer number -> basedOn the ServiceRequest" \
    "ServiceRequest/$SR" "$(dj '.basedOn[0].reference')"
expect_eq "OBR-7 without offset takes MSH-7's (+0530)" \
    2026-01-06T08:00:00+05:30 "$(dj .effectiveDateTime)"
expect_eq "OBR-22 +0100 -> issued +01:00" 2026-01-06T10:00:00+01:00 \
    "$(dj .issued)"
expect_eq "NTE after OBR -> DiagnosticReport.conclusion" 'Fasting sample.' \
    "$(dj .conclusion)"
expect_eq "DiagnosticReport.result lists the seven Observations" 7 \
    "$(dj '.result | length')"
expect_eq "Observations are filed on the patient" 7 \
    "$(q --arg p "Patient/$P1" 'select(.resourceType == "Observation" and
                                       .subject.reference == $p) | .id' |
        wc -l)"

# NM
GLU=$(obs 2345-7 .id)
glu_line=$(grep -F "\"id\":\"$GLU\"" "$T/all.ndjson")
check "NM 1.50 is stored as 1.50 (the decimal as sent)" \
    grep -qF '"value":1.50' <<<"$glu_line"
expect_eq "NM: unit text, UCUM system and code" \
    'millimole per liter http://unitsofmeasure.org mmol/L' \
    "$(obs 2345-7 '.valueQuantity | "\(.unit) \(.system) \(.code)"')"
expect_eq "NM: code system LN -> http://loinc.org" http://loinc.org \
    "$(obs 2345-7 '.code.coding[0].system')"
expect_eq "OBX-7 70-99 -> referenceRange low/high" '70 99' \
    "$(obs 2345-7 '.referenceRange[0] | "\(.low.value) \(.high.value)"')"
expect_eq "OBX-8 H -> interpretation H" \
    'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation H' \
    "$(obs 2345-7 '.interpretation[0].coding[0] | "\(.system) \(.code)"')"
expect_eq "OBX-11 F -> final" final "$(obs 2345-7 .status)"
expect_eq "OBX-14 +0100 -> effectiveDateTime +01:00" \
    2026-01-06T08:00:00+01:00 "$(obs 2345-7 .effectiveDateTime)"
expect_eq "NTE after OBX -> Observation.note" 'Repeat advised.' \
    "$(obs 2345-7 '.note[0].text')"
expect_eq "Observation basedOn the order" "ServiceRequest/$SR" \
    "$(obs 2345-7 '.basedOn[0].reference')"
expect_eq "Observation category laboratory" laboratory \
    "$(obs 2345-7 '.category[0].coding[0].code')"
# ST, TX
expect_eq "ST -> valueString" 'Looks fine' "$(obs 8251-1 .valueString)"
expect_eq "OBX-11 P -> preliminary" preliminary "$(obs 8251-1 .status)"
expect_eq "Observation without OBX-14 takes OBR-7" \
    2026-01-06T08:00:00+05:30 "$(obs 8251-1 .effectiveDateTime)"
expect_eq "TX repetitions -> lines of valueString" \
    "$(printf 'First line\nSecond line')" "$(obs 11526-1 .valueString)"
# CWE
expect_eq "CWE -> valueCodeableConcept (LOINC answer)" \
    'http://loinc.org LA19710-5 Group A' \
    "$(obs 882-1 '.valueCodeableConcept.coding[0] |
                  "\(.system) \(.code) \(.display)"')"
# SN
expect_eq "SN <^10 -> valueQuantity with comparator" '< 10 ug/dL' \
    "$(obs 5671-3 '.valueQuantity | "\(.comparator) \(.value) \(.code)"')"
expect_eq "OBX-7 <5 -> referenceRange high only" '5 null' \
    "$(obs 5671-3 '.referenceRange[0] | "\(.high.value) \(.low)"')"
expect_eq "OBX-8 L -> interpretation L" L \
    "$(obs 5671-3 '.interpretation[0].coding[0].code')"
expect_eq "SN ^10^-^20 -> valueRange" '10 20 mg/dL' \
    "$(obs 2093-3 '.valueRange | "\(.low.value) \(.high.value) \(.low.code)"')"
expect_eq "SN ^1^:^128 -> valueRatio" '1 128' \
    "$(obs 5196-1 '.valueRatio |
                   "\(.numerator.value) \(.denominator.value)"')"

# --- a corrected result: version 2 of the same Observation
{
    msh LAB HOSP 20260106141500+0100 'ORU^R01^ORU_R01' RES-1C
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg OBR 1=1 2='PLC-100^ORDERS' 3='FIL-1^LAB' 4='24331-1^Lipid panel^LN' \
        7=202601060800 25=C
    seg OBX 1=1 2=NM 3='2345-7^Glucose^LN' 5=1.60 \
        6='mmol/L^millimole per liter^UCUM' 7=70-99 11=C
} >"$T/oru_c.hl7"
imp "$T/oru_c.hl7"
expect_eq "corrected ORU: applied" "AA applied" "$ACK $STATUS"
dump
expect_eq "corrected result: still one Glucose Observation, same id" "$GLU" \
    "$(obs 2345-7 .id | tr '\n' ' ' | sed 's/ $//')"
expect_eq "corrected result: OBX-11 C -> corrected, new value" \
    'corrected 1.6' "$(obs 2345-7 '"\(.status) \(.valueQuantity.value)"')"
expect_eq "corrected result: version 2" 2 "$(obs 2345-7 .meta.versionId)"
M history "Observation/$GLU"
expect_eq "history: two versions of the Observation" 2 \
    "$(grep -c '^version' "$T/.out")"
expect_eq "corrected report: status C -> corrected, earlier results kept" \
    'corrected 7' \
    "$(q --arg i "$DR" 'select(.id == $i) | "\(.status) \(.result | length)"')"

# ==== 3. behaviours =======================================================

# --- the same control id again: acknowledged, applied once
before=$(res Patient "$P1" | jq -r .meta.versionId)
imp "$T/pat1.hl7"
expect_eq "repeat: same row, same ACK" "$PAT1_MSG AA applied (repeat)" \
    "$ID $ACK $STATUS"
messages
expect_eq "repeat: repeats = 1 in the log" 1 "$(logq "$PAT1_MSG" .repeats)"
expect_eq "repeat: one row for sender + control id" 1 \
    "$(jq -r 'select(.control_id == "PAT-1") | .id' "$T/log.ndjson" | wc -l)"
dump
expect_eq "repeat: the Patient was not written again" "$before" \
    "$(res Patient "$P1" | jq -r .meta.versionId)"

# --- A03, then A08 (stays finished), then A13 (in-progress again)
adt_visit() # adt_visit EVENT CONTROL TIME PV1-FIELDS...
{
    local ev=$1 ctl=$2 t=$3
    shift 3
    {
        msh REG HOSP "$t" "ADT^$ev^ADT_A01" "$ctl"
        seg EVN 1="$ev" 2="$t"
        seg PID 1=1 3='MRN1001^^^HOSP^MR'
        seg PV1 1=1 "$@"
    } >"$T/$ctl.hl7"
    imp "$T/$ctl.hl7"
    expect_eq "$ev ($ctl): applied" "AA applied" "$ACK $STATUS${DETAIL:+ -- $DETAIL}"
}
adt_visit A03 DIS-1 20260112120000+0100 2=I 3='WARD1^101^A^HOSP' \
    19='V100^^^HOSP^VN' 36=01
dump
expect_eq "A03: finished, end from the event time" \
    'finished 2026-01-12T12:00:00+01:00' \
    "$(enc V100 '"\(.status) \(.period.end)"')"
expect_eq "A03: PV1-36 -> dischargeDisposition" 01 \
    "$(enc V100 '.hospitalization.dischargeDisposition.coding[0].code')"
adt_visit A08 UPD-1 20260112130000+0100 2=I 3='WARD1^101^A^HOSP' \
    7='D456^Medic^Morgan' 19='V100^^^HOSP^VN'
dump
expect_eq "A08 after A03: the visit stays finished" finished \
    "$(enc V100 .status)"
expect_eq "A08 after A03: details updated (attending)" D456 \
    "$(enc V100 '.participant[0].individual.identifier.value')"
expect_eq "A08 with PID-5 empty: the name is kept" Testperson \
    "$(res Patient "$P1" | jq -r '.name[0].family')"
adt_visit A13 UNDIS-1 20260112140000+0100 2=I 3='WARD1^101^A^HOSP' \
    19='V100^^^HOSP^VN'
dump
expect_eq "A13 after A03: in-progress, no period.end, no disposition" \
    'in-progress null null' \
    "$(enc V100 '"\(.status) \(.period.end) \(.hospitalization.dischargeDisposition)"')"

# --- A11 cancels an admission
adt_visit A01 ADM-2 20260113080000+0100 2=I 3='WARD1^102^A^HOSP' \
    19='V200^^^HOSP^VN'
adt_visit A11 CAN-2 20260113090000+0100 2=I 3='WARD1^102^A^HOSP' \
    19='V200^^^HOSP^VN'
dump
expect_eq "A11: cancelled" cancelled "$(enc V200 .status)"

# --- A02 transfer, then A12 cancels it
adt_visit A01 ADM-3 20260114080000+0100 2=I 3='WARD1^103^A^HOSP' \
    19='V300^^^HOSP^VN'
adt_visit A02 TRF-3 20260114100000+0100 2=I 3='WARD2^202^B^HOSP' \
    6='WARD1^103^A^HOSP' 19='V300^^^HOSP^VN'
dump
expect_eq "A02: old location completed, new one active" \
    'WARD1 room 103 bed A (HOSP):completed WARD2 room 202 bed B (HOSP):active' \
    "$(enc V300 '[.location[] | "\(.location.display):\(.status)"] | join(" ")')"
expect_eq "A02: the old location ends at the transfer" \
    2026-01-14T10:00:00+01:00 "$(enc V300 '.location[0].period.end')"
adt_visit A12 CTRF-3 20260114110000+0100 2=I 3='WARD1^103^A^HOSP' \
    6='WARD2^202^B^HOSP' 19='V300^^^HOSP^VN'
dump
expect_eq "A12: back to the previous location, active, no end" \
    'WARD1 room 103 bed A (HOSP):active:null' \
    "$(enc V300 '[.location[] | "\(.location.display):\(.status):\(.period.end)"] | join(" ")')"
expect_eq "A12: the visit is still in progress" in-progress \
    "$(enc V300 .status)"

# --- A40 merge, then a result for the old identifier
person() # person CONTROL MRN FAMILY GIVEN BIRTH
{
    {
        msh REG HOSP 20260115080000+0100 'ADT^A28^ADT_A05' "$1"
        seg EVN 1=A28 2=20260115080000+0100
        seg PID 1=1 3="$2^^^HOSP^MR" 5="$3^$4" 7="$5" 8=M
        seg PV1 1=1 2=N
    } >"$T/$1.hl7"
    imp "$T/$1.hl7"
    expect_eq "A28 $2: applied" "AA applied" "$ACK $STATUS"
}
person PER-OLD MRN3001 Mergeman Oliver 19700101
person PER-NEW MRN3002 Mergeman Oliver 19700101
{
    msh REG HOSP 20260115090000+0100 'ADT^A40^ADT_A39' MRG-1
    seg EVN 1=A40 2=20260115090000+0100
    seg PID 1=1 3='MRN3002^^^HOSP^MR' 5='Mergeman^Oliver'
    seg MRG 1='MRN3001^^^HOSP^MR'
} >"$T/a40.hl7"
imp "$T/a40.hl7"
expect_eq "A40: applied" "AA applied" "$ACK $STATUS"
dump
OLD=$(pat MRN3001)
NEW=$(pat MRN3002)
check "A40: both charts still exist" \
    test -n "$OLD" -a -n "$NEW" -a "$OLD" != "$NEW"
expect_eq "A40: the old chart is replaced-by the survivor, inactive" \
    "replaced-by Patient/$NEW false" \
    "$(res Patient "$OLD" |
        jq -r '"\(.link[0].type) \(.link[0].other.reference) \(.active)"')"
expect_eq "A40: the survivor replaces the old chart" \
    "replaces Patient/$OLD" \
    "$(res Patient "$NEW" |
        jq -r '"\(.link[0].type) \(.link[0].other.reference)"')"
{
    msh LAB HOSP 20260115100000+0100 'ORU^R01^ORU_R01' RES-MRG
    seg PID 1=1 3='MRN3001^^^HOSP^MR'
    seg OBR 1=1 3='FIL-MRG^LAB' 4='2951-2^Sodium^LN' 7=20260115093000 25=F
    seg OBX 1=1 2=NM 3='2951-2^Sodium^LN' 5=140 6='mmol/L^^UCUM' 11=F
} >"$T/oru_mrg.hl7"
imp "$T/oru_mrg.hl7"
expect_eq "ORU for the merged (old) identifier: applied" "AA applied" \
    "$ACK $STATUS"
messages
expect_eq "ORU for the old identifier is filed on the survivor" \
    "Patient/$NEW" "$(logq "$ID" .patient)"
dump
expect_eq "its Observation's subject is the survivor" "Patient/$NEW" \
    "$(q 'select(.resourceType == "Observation" and
                 .code.coding[0].code == "2951-2") | .subject.reference')"

# The survivor's and the old identifier together (as senders often list
# them after a merge) name one patient, the survivor.
{
    msh LAB HOSP 20260115103000+0100 'ORU^R01^ORU_R01' RES-MRG2
    seg PID 1=1 3='MRN3002^^^HOSP^MR~MRN3001^^^HOSP^MR'
    seg OBR 1=1 3='FIL-MRG2^LAB' 4='2823-3^Potassium^LN' 7=20260115093000 \
        25=F
    seg OBX 1=1 2=NM 3='2823-3^Potassium^LN' 5=4.1 6='mmol/L^^UCUM' 11=F
} >"$T/oru_mrg2.hl7"
imp "$T/oru_mrg2.hl7"
expect_eq "after A40, PID-3 with survivor and old identifier: applied" \
    "AA applied" "$ACK $STATUS${DETAIL:+ -- $DETAIL}"
# An update sent under the old identifier lands on the survivor; the old
# identifier must still find one patient afterwards.
{
    msh REG HOSP 20260115110000+0100 'ADT^A08^ADT_A01' UPD-MRG
    seg EVN 1=A08 2=20260115110000+0100
    seg PID 1=1 3='MRN3001^^^HOSP^MR' 5='Mergeman^Oliver^James'
    seg PV1 1=1 2=N
} >"$T/a08_mrg.hl7"
imp "$T/a08_mrg.hl7"
expect_eq "after A40, A08 for the old identifier: applied" "AA applied" \
    "$ACK $STATUS${DETAIL:+ -- $DETAIL}"
messages
expect_eq "after A40, A08 for the old identifier: on the survivor" \
    "Patient/$NEW" "$(logq "$ID" .patient)"
{
    msh LAB HOSP 20260115120000+0100 'ORU^R01^ORU_R01' RES-MRG3
    seg PID 1=1 3='MRN3001^^^HOSP^MR'
    seg OBR 1=1 3='FIL-MRG3^LAB' 4='2075-0^Chloride^LN' 7=20260115113000 \
        25=F
    seg OBX 1=1 2=NM 3='2075-0^Chloride^LN' 5=101 6='mmol/L^^UCUM' 11=F
} >"$T/oru_mrg3.hl7"
imp "$T/oru_mrg3.hl7"
expect_eq "after A40 and an A08 for the old identifier, its ORU: applied" \
    "AA applied" "$ACK $STATUS${DETAIL:+ -- $DETAIL}"

# --- a visit or an order of another patient: AE, nothing changed
{
    msh REG HOSP 20260115130000+0100 'ADT^A01^ADT_A01' ENC-OTHER
    seg EVN 1=A01 2=20260115130000+0100
    seg PID 1=1 3='MRN3002^^^HOSP^MR'
    seg PV1 1=1 2=I 3='WARD1^101^A^HOSP' 19='V100^^^HOSP^VN'
} >"$T/enc_other.hl7"
imp "$T/enc_other.hl7"
expect_eq "A01 with another patient's visit number: AE" "AE error" \
    "$ACK $STATUS"
expect_eq "another patient's visit: the reason names PV1-19" PV1-19 \
    "${DETAIL:0:6}"
check "another patient's visit: the reason names the visit's patient" \
    grep -qF "Patient/$P1" <<<"$DETAIL"
{
    msh LAB HOSP 20260115140000+0100 'ORM^O01^ORM_O01' ORD-OTHER
    seg PID 1=1 3='MRN3002^^^HOSP^MR'
    seg ORC 1=NW 2='PLC-100^ORDERS'
    seg OBR 1=1 2='PLC-100^ORDERS' 4='24331-1^Lipid panel^LN'
} >"$T/orm_other.hl7"
imp "$T/orm_other.hl7"
expect_eq "ORM with another patient's placer number: AE naming ORC-2" \
    "AE error ORC-2" "$ACK $STATUS ${DETAIL:0:5}"
{
    msh LAB HOSP 20260115150000+0100 'ORM^O01^ORM_O01' ORD-CA
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg ORC 1=CA 2='PLC-100^ORDERS'
    seg OBR 1=1 2='PLC-100^ORDERS' 4='24331-1^Lipid panel^LN'
} >"$T/orm_ca.hl7"
imp "$T/orm_ca.hl7"
expect_eq "ORM ORC-1 CA: applied" "AA applied" "$ACK $STATUS"
dump
expect_eq "ORC-1 CA: the same ServiceRequest, revoked, version 2" \
    "revoked 2 Patient/$P1" \
    "$(res ServiceRequest "$SR" |
        jq -r '"\(.status) \(.meta.versionId) \(.subject.reference)"')"

# --- a result for an order medrec does not know: unmatched
{
    msh LAB HOSP 20260116080000+0100 'ORU^R01^ORU_R01' RES-NOORD
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg OBR 1=1 2='PLC-999^ORDERS' 3='FIL-9^LAB' 4='2345-7^Glucose^LN' \
        7=20260116070000 25=F
    seg OBX 1=1 2=NM 3='2345-7^Glucose^LN' 5=5.1 6='mmol/L^^UCUM' 11=F
} >"$T/oru_noord.hl7"
imp "$T/oru_noord.hl7"
expect_eq "ORU with an unknown placer number: unmatched, AA" \
    "AA unmatched" "$ACK $STATUS"
expect_eq "unknown order: the reason names OBR-2" OBR-2 "${DETAIL:0:5}"
dump
expect_eq "unknown order: nothing filed" "" \
    "$(q 'select(.resourceType == "DiagnosticReport" and
                 .identifier[0].value == "FIL-9") | .id')"

# --- a result for a patient medrec does not know, then registered, replayed
{
    msh LAB HOSP 20260116090000+0100 'ORU^R01^ORU_R01' RES-NOPAT
    seg PID 1=1 3='MRN5001^^^HOSP^MR'
    seg OBR 1=1 3='FIL-5^LAB' 4='2345-7^Glucose^LN' 7=20260116083000 25=F
    seg OBX 1=1 2=NM 3='2345-7^Glucose^LN' 5=4.8 6='mmol/L^^UCUM' 11=F
} >"$T/oru_nopat.hl7"
imp "$T/oru_nopat.hl7"
NOPAT_MSG=$ID
expect_eq "ORU for an unknown patient: unmatched, AA" "AA unmatched" \
    "$ACK $STATUS"
expect_stdout_contains 'PID-3'
M hl7 unmatched --json
expect_eq "the unmatched queue holds it" unmatched \
    "$(jq -r --argjson id "$NOPAT_MSG" 'select(.id == $id) | .status' \
        "$T/.out")"
messages
check "unmatched: the ACK is AA with a warning ERR" \
    grep -q 'ERR|.*|W|' <<<"$(logq "$NOPAT_MSG" .ack_message | tr '\r' '\n')"
{
    msh REG HOSP 20260116100000+0100 'ADT^A04^ADT_A01' PAT-5
    seg EVN 1=A04 2=20260116100000+0100
    seg PID 1=1 3='MRN5001^^^HOSP^MR' 5='Latecomer^Lee' 7=19900303 8=U
} >"$T/pat5.hl7"
imp "$T/pat5.hl7"
expect_eq "A04 registers the patient" "AA applied" "$ACK $STATUS"
M hl7 replay "$NOPAT_MSG"
expect_eq "replay: exit 0" 0 "$RC"
expect_stdout_matches "^$NOPAT_MSG"$'\t'"AA"$'\t'"applied"
messages
dump
P5=$(pat MRN5001)
expect_eq "replay: the log row is applied, filed on the new patient" \
    "applied Patient/$P5" "$(logq "$NOPAT_MSG" '"\(.status) \(.patient)"')"
expect_eq "replay: the Observation is there" 1 \
    "$(q --arg p "Patient/$P5" 'select(.resourceType == "Observation" and
                                       .subject.reference == $p) | .id' |
        wc -l)"
expect_eq "PID-8 U -> unknown" unknown "$(res Patient "$P5" | jq -r .gender)"
M hl7 replay "$NOPAT_MSG"
expect_eq "replay of an applied message: refused (exit 1)" 1 "$RC"
expect_stderr_contains 'applied already'

# --- refusals
{
    msh NOBODY HOSP 20260116110000+0100 'ADT^A04^ADT_A01' NOB-1
    seg EVN 1=A04
    seg PID 1=1 3='MRN8001^^^HOSP^MR' 5='Nobody^Nora'
} >"$T/nobody.hl7"
imp "$T/nobody.hl7"
expect_eq "unregistered sender: rejected, AR" "AR rejected" "$ACK $STATUS"
expect_eq "unregistered sender: exit 1" 1 "$RC"
messages
check "unregistered sender: the ACK is MSA|AR" \
    grep -q 'MSA|AR|NOB-1' <<<"$(logq "$ID" .ack_message | tr '\r' '\n')"
expect_eq "unregistered sender: the reason names MSH-3" MSH-3 "${DETAIL:0:5}"

{
    msh REG HOSP 20260116110000+0100 'ADT^A04^ADT_A01' TRN-1 T
    seg EVN 1=A04
    seg PID 1=1 3='MRN8002^^^HOSP^MR' 5='Trainee^Tess'
} >"$T/training.hl7"
imp "$T/training.hl7"
expect_eq "MSH-11 T: rejected, AR" "AR rejected" "$ACK $STATUS"
expect_eq "MSH-11 T: the reason names MSH-11" MSH-11 "${DETAIL:0:6}"

{
    msh REG HOSP 20260116120000+0100 'ADT^A04^ADT_A01' BAD-DOB
    seg EVN 1=A04
    seg PID 1=1 3='MRN6001^^^HOSP^MR' 5='Baddate^Bea' 7=19801345 8=F
} >"$T/baddob.hl7"
imp "$T/baddob.hl7"
expect_eq "PID-7 19801345: error, AE" "AE error" "$ACK $STATUS"
messages
ackmsg=$(logq "$ID" .ack_message | tr '\r' '\n')
check "PID-7: the ACK is MSA|AE" grep -q '^MSA|AE|BAD-DOB' <<<"$ackmsg"
check "PID-7: ERR names PID-7 (ERR-2 PID^1^7)" \
    grep -q '^ERR||PID^1^7|' <<<"$ackmsg"
check "PID-7: the reason quotes the value" grep -q '19801345' <<<"$ackmsg"
M hl7 show "$ID"
expect_stdout_contains 'PID-7'
dump
expect_eq "PID-7 error: no Patient created" "" "$(pat MRN6001)"

for t in 'SIU^S12^SIU_S12' 'MDM^T02^MDM_T02' 'ADT^A17^ADT_A17'; do
    {
        msh REG HOSP 20260116130000+0100 "$t" "UNS-${t%%^*}-$(cut -d^ -f2 <<<"$t")"
        seg EVN 1=X
        seg PID 1=1 3='MRN1001^^^HOSP^MR'
    } >"$T/uns.hl7"
    imp "$T/uns.hl7"
    expect_eq "${t%^*}: rejected, AR" "AR rejected" "$ACK $STATUS"
done

# --- A60: allergies from IAM, then withdrawn (IAM-6 D)
{
    msh REG HOSP 20260117080000+0100 'ADT^A60^ADT_A60' ALG-1
    seg EVN 1=A60 2=20260117080000+0100
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg IAM 1=1 2=DA 3='70618^Penicillin^RXNORM' 4=SV 5='Hives~Wheezing' \
        6=A 7=ALG-ID-1 11=20200101
    seg IAM 1=2 2=FA 3='256349002^Peanut^SCT' 4=MO 5=Rash 6=A 7=ALG-ID-2
} >"$T/a60.hl7"
imp "$T/a60.hl7"
expect_eq "A60 with two IAM: applied" "AA applied" "$ACK $STATUS"
dump
alg() # alg CODE JQ
{
    q --arg c "$1" --arg p "Patient/$P1" \
        "select(.resourceType == \"AllergyIntolerance\" and
                .patient.reference == \$p and
                .code.coding[0].code == \$c) | $2"
}
expect_eq "IAM -> two AllergyIntolerance" 2 \
    "$(q --arg p "Patient/$P1" 'select(.resourceType == "AllergyIntolerance"
                                       and .patient.reference == $p) | .id' |
        wc -l)"
ALG=$(alg 70618 .id)
expect_eq "IAM-3 RXNORM code, IAM-2 DA -> medication allergy" \
    'http://www.nlm.nih.gov/research/umls/rxnorm medication allergy' \
    "$(alg 70618 '"\(.code.coding[0].system) \(.category[0]) \(.type)"')"
expect_eq "IAM-4 SV -> criticality high, reaction severe" 'high severe' \
    "$(alg 70618 '"\(.criticality) \(.reaction[0].severity)"')"
expect_eq "IAM-5 repetitions -> manifestations" 'Hives|Wheezing' \
    "$(alg 70618 '[.reaction[0].manifestation[].text] | join("|")')"
expect_eq "IAM-6 A -> active, confirmed" 'active confirmed' \
    "$(alg 70618 '"\(.clinicalStatus.coding[0].code) \(.verificationStatus.coding[0].code)"')"
expect_eq "IAM-11 -> onset" 2020-01-01 "$(alg 70618 .onsetDateTime)"
expect_eq "IAM-2 FA -> food" food "$(alg 256349002 '.category[0]')"
{
    msh REG HOSP 20260117090000+0100 'ADT^A60^ADT_A60' ALG-2
    seg EVN 1=A60 2=20260117090000+0100
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg IAM 1=1 2=DA 3='70618^Penicillin^RXNORM' 4=SV 6=D 7=ALG-ID-1
} >"$T/a60d.hl7"
imp "$T/a60d.hl7"
expect_eq "A60 IAM-6 D: applied" "AA applied" "$ACK $STATUS"
dump
expect_eq "IAM-6 D: the same AllergyIntolerance, entered-in-error, v2" \
    "$ALG entered-in-error null 2" \
    "$(alg 70618 '"\(.id) \(.verificationStatus.coding[0].code) \(.clinicalStatus) \(.meta.versionId)"')"

# --- values the mapping builds must pass medrec's own validation
# A phone with an extension (XTN-8): stored as "(555) 5559876 x42".
{
    msh REG HOSP 20260118080000+0100 'ADT^A31^ADT_A05' EXT-1
    seg EVN 1=A31 2=20260118080000+0100
    seg PID 1=1 3='MRN1001^^^HOSP^MR' 14='^WPN^PH^^^555^5559876^42'
    seg PV1 1=1 2=N
} >"$T/ext.hl7"
imp "$T/ext.hl7"
expect_eq "PID-14 with an extension (XTN-8): applied" "AA applied" \
    "$ACK $STATUS${DETAIL:+ -- $DETAIL}"
# A value that unescapes to control characters (\X01\) is text like any
# other, or refused naming its field; never spliced into the JSON.
{
    msh LAB HOSP 20260118083000+0100 'ORU^R01^ORU_R01' CTL-1
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg OBR 1=1 3='FIL-CTL^LAB' 4='8251-1^Service comment^LN' \
        7=20260118080000 25=F
    seg OBX 1=1 2=ST 3='8251-1^Service comment^LN' 5='\X01\#1' 11=F
} >"$T/ctl.hl7"
imp "$T/ctl.hl7"
if [ "$STATUS" = applied ]; then
    dump
    expect_eq "OBX-5 \\X01\\#1: stored as a string" string \
        "$(q 'select(.resourceType == "DiagnosticReport" and
                     .identifier[0].value == "FIL-CTL") | .result[0].reference' |
            sed 's|^Observation/||' | xargs -I{} jq -r --arg i {} \
            'select(.id == $i) | .valueString | type' "$T/all.ndjson")"
else
    expect_eq "OBX-5 \\X01\\#1: refused naming OBX-5" "AE OBX-5" \
        "$ACK ${DETAIL:0:5}"
fi
# A sender whose facility (MSH-4) has a space: the systems made from it
# (identifier without an assigning authority, attending) must be URIs.
{
    msh ADMIT 'GENERAL HOSP' 20260118090000+0100 'ADT^A01^ADT_A01' SP-1
    seg EVN 1=A01 2=20260118090000+0100
    seg PID 1=1 3='GH7001' 5='Spacey^Sam' 7=19750505 8=M
    seg PV1 1=1 2=I 3='WARD9^901' 7='D900^Healer^Hana' 19=GV9001
} >"$T/space.hl7"
imp "$T/space.hl7"
expect_eq "MSH-4 with a space (identifiers without authority): applied" \
    "AA applied" "$ACK $STATUS${DETAIL:+ -- $DETAIL}"
# PL.1 is an HD in v2.5+: only its first subcomponent is the ward's name.
{
    msh REG HOSP 20260118100000+0100 'ADT^A01^ADT_A01' HD-1
    seg EVN 1=A01 2=20260118100000+0100
    seg PID 1=1 3='MRN1001^^^HOSP^MR'
    seg PV1 1=1 2=I 3='WARD7&1.2.3&ISO^707^B^HOSP' 19='V700^^^HOSP^VN'
} >"$T/hd.hl7"
imp "$T/hd.hl7"
dump
expect_eq "PV1-3.1 with subcomponents: display uses the name" \
    'WARD7 room 707 bed B (HOSP)' "$(enc V700 '.location[0].location.display')"

expect_eq "no crash or sanitizer report in $RUNS medrec runs" 0 "$CRASHES"
summary
