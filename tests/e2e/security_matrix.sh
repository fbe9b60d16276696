#!/usr/bin/env bash
# Minimum necessary, end to end over real HTTP, with the expectations
# computed from the shipped policy itself (issue 4, "Tests"):
#
#  1. a generated matrix: every role of `medrec policy show` x a
#     representative type of every group (and AuditEvent, and a type in no
#     group) x read, vread, search, history (instance and type), create,
#     update, delete, _include, _revinclude and Patient/$everything; the
#     allow/deny of each cell comes from a jq program that expands the
#     policy's groups and allow/deny rules as docs/policy.md says. The
#     patient role (own compartment, released results only) and API tokens
#     of the system-token roles are separate blocks. Every 403 must have
#     exactly one audit entry with outcome DENIED, for that actor, action
#     and type.
#  2. IDOR: a patient user linked to Patient A tries every id of patient B
#     (read, vread, history, search by id/_id/subject/patient, $everything,
#     _include/_revinclude through their own resources, update, delete):
#     no success, and never B's data in any body.
#  3. injection: SQL-injection and path-traversal payloads in every kind
#     of search parameter, _sort/_include/_revinclude/_count, path segments
#     and headers: 4xx (or a 200 that matches nothing), never 5xx, and the
#     store unchanged (`medrec export` before and after).
#  4. secrets: the password, every session and API token, and the test
#     patients' names and birth dates are in neither the server's stderr
#     nor its access log; tokens are in no response body but the login's;
#     no password or token is stored in plain text in the database.
#
# Requests are batched: one curl process runs a config file of many
# requests (four at a time, on kept-alive connections); statuses, bodies
# and the expectations are then judged by one jq and one awk. Server bugs
# found this way are left failing, with the request in the message.
# MX_KEEP=DIR keeps a copy of the work directory (bodies, index, database).
. "$(dirname "$0")/http_lib.sh"

need_cmd curl jq sqlite3 awk grep sort

mkdir -p "$T/b" "$T/login" || exit 1
PARALLEL=(--parallel --parallel-max 4)
curl --help all 2>/dev/null | grep -q -- '--parallel-max' || PARALLEL=()
http_start --access-log "$T/access.log"
BASE=${URL%/fhir}
M() { "$MEDREC" "$@" --db "$DB"; }

# ---- secrets: collected as they are issued ---------------------------------
PW="Mtx-Quartz-Lantern-$$-9041"
printf '%s\n' "$PW" >"$T/secrets.pw"
printf '%s\n' "$TOKEN" >"$T/secrets.tok"

# ---- the policy and the expected matrix ------------------------------------
M policy show >"$T/policy.json" 2>"$T/policy.err" ||
    { fail "medrec policy show: $(head -c 200 "$T/policy.err")"; summary; }
NOAUTH=1 req GET /metadata
jqb '[.rest[0].resource[].type]' -c >"$T/alltypes.json"
[ "$(jq length "$T/alltypes.json")" -gt 100 ] ||
    fail "the CapabilityStatement lists the R4 resource types"

# Group expansion exactly as docs/policy.md: an entry is a type, a group
# defined above (recursively) or "*" (every R4 resource type).
JQ_DEFS='
def expand($g):
  [ .[] | if . == "*" then $all[]
          elif test("^[a-z]") then ($g[.] | expand($g))[]
          else . end ] | unique;
def acts:
  if any(.[]; . == "*")
  then ["read","search","create","update","delete","history","export"]
  else . end;
'
# Representatives: the first type named directly in each group, every
# type a rule names directly (the partial cells of the policy table),
# AuditEvent, MedicationRequest (the IDOR set), and one type in no group.
REPS=$(jq -r --argjson all "$(cat "$T/alltypes.json")" "$JQ_DEFS"'
  .groups as $g
  | ([ $g[] | map(select(test("^[A-Z]")))[0] | values ]
     + [ .roles[] | ((.allow // [])[], (.deny // [])[]) | .types[]
         | select(test("^[A-Z]")) ]
     + ["AuditEvent", "MedicationRequest"]) as $r
  | ([ $g[] | expand($g)[] ] | unique) as $grouped
  | (["Questionnaire", "Library", "ValueSet", "Basic"] - $grouped)[0:1]
    as $none
  | (($r | unique) + $none)[]' "$T/policy.json" 2>"$T/jq.err" |
    grep -v '^$' | sort -u | tr '\n' ' ')
[ -n "$REPS" ] || { fail "computing the types: $(head -c 300 "$T/jq.err")"; summary; }
# Cells: role, type, action, 1 when allowed.
jq -r --argjson all "$(cat "$T/alltypes.json")" --arg reps "$REPS" "$JQ_DEFS"'
  .groups as $g
  | ($reps | split(" ") | map(select(. != ""))) as $reps
  | .roles | to_entries[] | .key as $role | .value as $rv
  | (reduce ($rv.allow // [])[] as $ru ({};
       reduce ($ru.types | expand($g))[] as $t (.;
         .[$t] = (((.[$t] // []) + ($ru.actions | acts)) | unique)))) as $al
  | (reduce ($rv.deny // [])[] as $ru ($al;
       reduce ($ru.types | expand($g))[] as $t (.;
         .[$t] = ((.[$t] // []) - ($ru.actions | acts))))) as $ef
  | $reps[] as $t
  | ("read","search","create","update","delete","history","export") as $a
  | [$role, $t, $a,
     (if any(($ef[$t] // [])[]; . == $a) and
         ($t != "AuditEvent" or ([$a] | inside(["read","search","history","export"])))
      then 1 else 0 end)] | @tsv' "$T/policy.json" >"$T/cells.tsv" 2>"$T/jq.err" ||
    { fail "expanding the policy: $(head -c 300 "$T/jq.err")"; summary; }
# Roles limited to their own compartment; the types each holds until
# released; the roles a system token may carry.
jq -r --argjson all "$(cat "$T/alltypes.json")" "$JQ_DEFS"'
  .groups as $g
  | (.roles | to_entries[]
     | "role\t\(.key)\t\(if .value.own_compartment_only == true then "own" else "staff" end)\t\((.value.hold_until_released // []) | expand($g) | join(" "))"),
    (.system_tokens[]? | "token\t\(.)")' "$T/policy.json" >"$T/roles.tsv"

declare -A ALLOW HELD
STAFF=()
OWN=()
SYSROLES=()
while IFS=$'\t' read -r role t a ok; do ALLOW["$role|$t|$a"]=$ok; done <"$T/cells.tsv"
while IFS=$'\t' read -r kind name what held; do
    if [ "$kind" = token ]; then
        SYSROLES+=("$name")
    elif [ "$what" = own ]; then
        OWN+=("$name")
        for t in $held; do HELD["$name|$t"]=1; done
    else
        STAFF+=("$name")
    fi
done <"$T/roles.tsv"
[ "${#STAFF[@]}" -ge 7 ] && [ "${#OWN[@]}" -ge 1 ] &&
    pass "policy: ${#STAFF[@]} staff roles, ${#OWN[@]} own-compartment role(s), ${#SYSROLES[@]} system-token roles" ||
    fail "policy: expected the shipped roles, got staff=${STAFF[*]} own=${OWN[*]}"
echo "types under test: $REPS"
al() { [ "${ALLOW["$1|$2|$3"]:-0}" = 1 ]; }
# The computed matrix, for the log: R S C U D H X per type.
for role in "${STAFF[@]}" "${OWN[@]}"; do
    line=
    for t in $REPS; do
        c=
        for a in read:R search:S create:C update:U delete:D history:H export:X; do
            al "$role" "$t" "${a%%:*}" && c+=${a#*:}
        done
        line+=" $t=${c:--}"
    done
    echo "  $role:$line"
done

# ---- fixtures ----------------------------------------------------------------
# @IDF@ is "id":"...", (empty for a create), @META@ a meta member or empty,
# @PAT@ the patient reference.
REL='"meta":{"tag":[{"system":"urn:medrec:release","code":"released"}]},'
declare -A FX LINK
FX[Patient]='{"resourceType":"Patient",@IDF@@META@"name":[{"family":"@FAM@","given":["@GIV@"]}],"gender":"female","birthDate":"@BIRTH@"}'
FX[Encounter]='{"resourceType":"Encounter",@IDF@@META@"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"@PAT@"}}'
FX[Coverage]='{"resourceType":"Coverage",@IDF@@META@"status":"active","policyHolder":{"reference":"@PAT@"},"beneficiary":{"reference":"@PAT@"},"payor":[{"display":"Mx Mutual"}]}'
FX[Account]='{"resourceType":"Account",@IDF@@META@"status":"active","subject":[{"reference":"@PAT@"}]}'
FX[Practitioner]='{"resourceType":"Practitioner",@IDF@@META@"name":[{"family":"Mxdoctor"}]}'
FX[DocumentReference]='{"resourceType":"DocumentReference",@IDF@@META@"status":"current","subject":{"reference":"@PAT@"},"content":[{"attachment":{"contentType":"text/plain","data":"bm90ZQ=="}}]}'
FX[Observation]='{"resourceType":"Observation",@IDF@@META@"status":"final","code":{"text":"potassium"},"subject":{"reference":"@PAT@"},"valueQuantity":{"value":5.1,"unit":"mmol/L"}}'
FX[Medication]='{"resourceType":"Medication",@IDF@@META@"code":{"text":"mxmedicine"}}'
FX[MedicationRequest]='{"resourceType":"MedicationRequest",@IDF@@META@"status":"active","intent":"order","medicationCodeableConcept":{"text":"mxmedicine"},"subject":{"reference":"@PAT@"}}'
FX[Condition]='{"resourceType":"Condition",@IDF@@META@"subject":{"reference":"@PAT@"},"code":{"text":"hypertension"}}'
FX[Consent]='{"resourceType":"Consent",@IDF@@META@"status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"@PAT@"}}'
FX[AuditEvent]='{"resourceType":"AuditEvent",@IDF@@META@"type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110110"},"recorded":"2024-01-01T00:00:00Z","agent":[{"requestor":false,"who":{"display":"mx"}}],"source":{"observer":{"display":"mx"}}}'
FX[ServiceRequest]='{"resourceType":"ServiceRequest",@IDF@@META@"status":"active","intent":"order","code":{"text":"potassium"},"subject":{"reference":"@PAT@"}}'
FX[Specimen]='{"resourceType":"Specimen",@IDF@@META@"subject":{"reference":"@PAT@"}}'
FX[DiagnosticReport]='{"resourceType":"DiagnosticReport",@IDF@@META@"status":"final","code":{"text":"panel"},"subject":{"reference":"@PAT@"}}'
FX[EpisodeOfCare]='{"resourceType":"EpisodeOfCare",@IDF@@META@"status":"active","patient":{"reference":"@PAT@"}}'
FX[AllergyIntolerance]='{"resourceType":"AllergyIntolerance",@IDF@@META@"code":{"text":"penicillin"},"patient":{"reference":"@PAT@"}}'
FX[Procedure]='{"resourceType":"Procedure",@IDF@@META@"status":"completed","code":{"text":"biopsy"},"subject":{"reference":"@PAT@"}}'
FX[Questionnaire]='{"resourceType":"Questionnaire",@IDF@@META@"status":"active","title":"mx"}'
FX[Library]='{"resourceType":"Library",@IDF@@META@"status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/library-type","code":"asset-collection"}]}}'
# The search parameter that links each type to its patient.
LINK=([Encounter]=subject [Coverage]=beneficiary [Account]=subject
    [DocumentReference]=subject [Observation]=subject
    [MedicationRequest]=subject [Condition]=subject [Consent]=patient
    [ServiceRequest]=subject [Specimen]=subject [DiagnosticReport]=subject
    [EpisodeOfCare]=patient [Procedure]=subject [AllergyIntolerance]=patient)

# fx TYPE ID PATREF [META]: one resource (Patient uses FAM, GIV, BIRTH).
FAM=Quillmatrix GIV=Adalind BIRTH=1961-03-17
fx()
{
    local s=${FX[$1]-} idf=
    [ -n "$2" ] && idf="\"id\":\"$2\","
    s=${s//@IDF@/$idf}
    s=${s//@META@/${4:-}}
    s=${s//@PAT@/$3}
    s=${s//@FAM@/$FAM}
    s=${s//@GIV@/$GIV}
    s=${s//@BIRTH@/$BIRTH}
    printf '%s\n' "$s"
}
for t in $REPS; do
    [ -n "${FX[$t]-}" ] || fail "no fixture for $t: add one to this test"
done

# The data, loaded by the file owner: mx-pat's chart (the matrix),
# delete targets d<n>-TYPE, patient A (pa, the patient user's chart:
# results and notes released, plus -held copies that are not) and
# patient B (pb), whose records A must never reach.
NAMES=(Quillmatrix Adalind Pattersonia Avelyn Zorbaxwell Brindlemay)
BIRTHS=(1961-03-17 1975-06-09 1958-11-23)
IMP=$T/data.ndjson
{
    fx Patient mx-pat ""
    for t in $REPS; do
        [ "$t" = Patient ] || fx "$t" "mx-$t" Patient/mx-pat
    done
    i=0
    for role in "${STAFF[@]}"; do
        i=$((i + 1))
        for t in $REPS; do
            FAM=Deltarget$i$t fx "$t" "d$i-$t" Patient/mx-pat
        done
    done
    FAM=Pattersonia GIV=Avelyn BIRTH=1975-06-09 fx Patient pa ""
    for t in $REPS; do
        [ -n "${LINK[$t]-}" ] || continue
        fx "$t" "pa-$t" Patient/pa "$REL"
        [ -n "${HELD["${OWN[0]}|$t"]-}" ] && fx "$t" "pa-$t-held" Patient/pa
    done
    # A's own observation pointing at B's: the way to try _include.
    echo '{"resourceType":"Observation","id":"pa-obs-x",'"$REL"'"status":"final","code":{"text":"sodium"},"subject":{"reference":"Patient/pa"},"performer":[{"reference":"Patient/pb"}],"hasMember":[{"reference":"Observation/pb-obs-rel"}],"derivedFrom":[{"reference":"DocumentReference/pb-doc"}]}'
    FAM=Zorbaxwell GIV=Brindlemay BIRTH=1958-11-23 fx Patient pb ""
    # B's records; two of them point back at A's chart (revinclude bait).
    echo '{"resourceType":"Observation","id":"pb-obs-rel",'"$REL"'"status":"final","code":{"text":"pbmarker-sodium"},"subject":{"reference":"Patient/pb"},"performer":[{"reference":"Patient/pa"}],"valueString":"pbmarker-value-1"}'
    echo '{"resourceType":"Observation","id":"pb-obs-held","status":"final","code":{"text":"pbmarker-potassium"},"subject":{"reference":"Patient/pb"},"valueString":"pbmarker-value-2"}'
    echo '{"resourceType":"Condition","id":"pb-cond","subject":{"reference":"Patient/pb"},"encounter":{"reference":"Encounter/pa-Encounter"},"code":{"text":"pbmarker-condition"}}'
    echo '{"resourceType":"Encounter","id":"pb-enc","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/pb"},"reasonCode":[{"text":"pbmarker-reason"}]}'
    echo '{"resourceType":"DocumentReference","id":"pb-doc",'"$REL"'"status":"current","description":"pbmarker-note","subject":{"reference":"Patient/pb"},"content":[{"attachment":{"contentType":"text/plain","data":"cGJtYXJrZXI="}}]}'
    echo '{"resourceType":"MedicationRequest","id":"pb-medreq","status":"active","intent":"order","medicationCodeableConcept":{"text":"pbmarker-drug"},"subject":{"reference":"Patient/pb"}}'
    # For the injection block: a patient to copy (If-None-Exist), one
    # patient per raw path (inj-d<k>) and per If-Match (inj-m<k>, at
    # version 1), and a RiskAssessment for the number parameter.
    FAM=Injectorova GIV=Ilse BIRTH=1980-02-29 fx Patient inj-pat ""
    for k in $(seq 1 20); do FAM=Injdel GIV=Nemo BIRTH=1981-01-01 fx Patient "inj-d$k" ""; done
    for k in $(seq 1 30); do FAM=Injmatch GIV=Nemo BIRTH=1982-01-01 fx Patient "inj-m$k" ""; done
    echo '{"resourceType":"RiskAssessment","id":"inj-risk","status":"final","subject":{"reference":"Patient/inj-pat"},"prediction":[{"probabilityDecimal":0.25}]}'
} >"$IMP"
NAMES+=(Injectorova Ilse Injdel Injmatch Nemo Deltarget Newmx Newpatmx)
BIRTHS+=(1980-02-29 1981-01-01 1982-01-01)
M import "$IMP" >/dev/null 2>"$T/imp.err" ||
    { fail "import the fixtures: $(head -c 300 "$T/imp.err")"; summary; }
PB_MRN=$(M export 2>/dev/null | jq -r 'select(.resourceType == "Patient" and .id == "pb")
    | .identifier[]? | select(.system == "urn:medrec:mrn") | .value')
# Bodies for updates: the stored resources without meta.
declare -A UPD
while IFS=$'\t' read -r ref body; do UPD[$ref]=$body; done < <(
    M export 2>/dev/null | jq -r '"\(.resourceType)/\(.id)\t\(del(.meta) | tojson)"')
[ -n "${UPD[Patient/pb]-}" ] && [ -n "$PB_MRN" ] &&
    pass "fixtures imported ($(wc -l <"$IMP") resources; B has MRN)" ||
    fail "fixtures: Patient/pb or its MRN missing after import"

# ---- users, sessions, tokens ---------------------------------------------------
declare -A AUTHOF
AUTHOF[-]=
addu()
{
    echo "$PW" | M user add "$1" --role "$2" --password-stdin ${3:+--patient "$3"} \
        >/dev/null 2>>"$T/users.err" || fail "user add $1: $(tail -n 1 "$T/users.err")"
}
login()
{
    local code tok
    code=$(curl -s -o "$T/login/$1.json" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' \
        --data "{\"username\":\"$1\",\"password\":\"$PW\"}" "$BASE/auth/login")
    tok=$(jq -r '.token // empty' "$T/login/$1.json" 2>/dev/null)
    if [ "$code" = 200 ] && [ -n "$tok" ]; then
        AUTHOF[$1]="Authorization: Bearer $tok"
        printf '%s\n' "$tok" >>"$T/secrets.tok"
    else
        fail "login $1: $code $(head -c 200 "$T/login/$1.json")"
    fi
}
for role in "${STAFF[@]}"; do addu "u-$role" "$role"; done
for role in "${OWN[@]}"; do addu "u-$role" "$role" Patient/pa; done
for role in "${STAFF[@]}" "${OWN[@]}"; do login "u-$role"; done
for role in "${SYSROLES[@]}"; do
    tok=$(M token create "mx-tok-$role" --role "$role" 2>>"$T/users.err")
    if [ -n "$tok" ]; then
        AUTHOF[mx-tok-$role]="Authorization: Bearer $tok"
        printf '%s\n' "$tok" >>"$T/secrets.tok"
    else
        fail "token create for $role: $(tail -n 1 "$T/users.err")"
    fi
done
# The injection block runs as a records technician of its own (it may
# search, read and write every chart type, so only the payload decides).
echo "$PW" | M user add mx-inj --role records-technician --password-stdin \
    >/dev/null 2>>"$T/users.err"
login mx-inj

# ---- the batch machinery ---------------------------------------------------------
# rq BLOCK ACTOR TYPE INTER WANT ZM MUST MUSTNOT ONLY AKEY METHOD PATH [CFG...]
#   WANT     ERE the status must match
#   ZM       1: a 2xx search must match nothing; 2: a 2xx must carry an
#            OperationOutcome entry (a parameter ignored, and said so)
#   MUST     refs (Type/id) that a 2xx body must contain
#   MUSTNOT  ERE no ref of a 2xx body may match
#   ONLY     ERE every ref of a 2xx body must match
#   AKEY     "action|type" of the DENIED audit entry a 403 must leave
#   CFG      more curl config lines (headers, data, path-as-is)
# The actor's credentials are added unless CFG sets NOAUTH.
NREQ=0
: >"$T/index.tsv"
: >"$T/status.txt"
: >"$T/batch.cfg"
cq()
{
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}
rq()
{
    local blk=$1 actor=$2 type=$3 inter=$4 want=$5 zm=$6 must=$7 mustnot=$8 \
        only=$9 akey=${10} method=${11} path=${12} url l noauth=
    shift 12
    NREQ=$((NREQ + 1))
    case $path in
    http://*) url=$path ;;
    *) url=$URL$path ;;
    esac
    {
        [ -s "$T/batch.cfg" ] && echo next
        echo "url = $(cq "$url")"
        echo "request = $(cq "$method")"
        echo globoff
        echo "output = \"$T/b/$NREQ\""
        echo "write-out = \"$NREQ %{http_code}\\n\""
        for l in "$@"; do
            if [ "$l" = NOAUTH ]; then noauth=1; else printf '%s\n' "$l"; fi
        done
        [ -z "$noauth" ] && [ -n "${AUTHOF[$actor]-}" ] &&
            echo "header = $(cq "${AUTHOF[$actor]}")"
    } >>"$T/batch.cfg"
    printf '%s\t' "$NREQ" "$blk" "$actor" "$type" "$inter" "$want" "$zm" \
        "$must" "$mustnot" "$only" "$akey" >>"$T/index.tsv"
    printf '%s %s\n' "$method" "${path:0:160}" >>"$T/index.tsv"
}
JSONCT='header = "Content-Type: application/fhir+json"'
body() { echo "data-binary = $(cq "$1")"; }
flush()
{
    [ -s "$T/batch.cfg" ] || return 0
    curl -s "${PARALLEL[@]}" -K "$T/batch.cfg" >>"$T/status.txt" 2>>"$T/curl.err"
    : >"$T/batch.cfg"
    echo "     ($NREQ requests sent, ${SECONDS}s)"
    if ! _alive "$SRV_PID"; then
        fail "the server has exited: $(tail -n 3 "$T/srv$_SRV_N.err" | tr '\n' ' ')"
        judge
        summary
    fi
}
# ---- judging: statuses, bodies and expectations in one pass --------------------
# One jq over every body: "n <tab> resourceType <tab> matches <tab> refs".
judge()
{
    local files
    files=$(cd "$T/b" && ls | sort -n | tr '\n' ' ')
    [ -n "$files" ] || return 0
    # One line per body, so that jq -R reads each on its own.
    (cd "$T/b" && sed -i -e '$a\' $files)
    (cd "$T/b" && jq -rR 'input_filename as $f | (fromjson? // {"resourceType": "NOT-JSON"})
        | [$f, (.resourceType // "-"),
           ([.entry[]? | select(.search.mode == "match")] | length),
           (if .resourceType == "Bundle"
            then [.entry[]? | select(.search.mode != "outcome") | .resource
                  | select(. != null) | "\(.resourceType)/\(.id)"]
            elif .resourceType == "OperationOutcome" or .resourceType == "NOT-JSON" then []
            else ["\(.resourceType)/\(.id)"] end | join(" ")),
           ([.entry[]? | select(.search.mode == "outcome")] | length)] | @tsv' $files) \
        >"$T/bodies.tsv" 2>"$T/bodies.err"
    awk -F'\t' -v OFS='\t' -v out="$T/judged.tsv" '
        FILENAME ~ /status.txt$/ { split($0, s, " "); st[s[1]] = s[2]; next }
        FILENAME ~ /bodies.tsv$/ { rt[$1] = $2; nm[$1] = $3; refs[$1] = $4; nw[$1] = $5; next }
        {
            n = $1; blk = $2; actor = $3; type = $4; inter = $5; want = $6
            zm = $7; must = $8; mustnot = $9; only = $10; akey = $11; what = $12
            code = (n in st) ? st[n] : "000"
            why = ""
            if (code !~ want) why = "status " code " (want " want ")"
            else if (code ~ /^2/) {
                nr = split(refs[n], r, " ")
                if (zm == 1 && nm[n] + 0 > 0) why = "matched " nm[n] " resource(s): " refs[n]
                if (zm == 2 && nw[n] + 0 == 0) why = "ignored without a warning" 
                k = split(must, mu, " ")
                for (i = 1; i <= k && why == ""; i++) {
                    found = 0
                    for (j = 1; j <= nr; j++) if (r[j] == mu[i]) found = 1
                    if (!found) why = "missing " mu[i] " in " substr(refs[n], 1, 200)
                }
                for (j = 1; j <= nr && why == ""; j++) {
                    if (mustnot != "" && r[j] ~ mustnot) why = "must not contain " r[j]
                    else if (only != "" && r[j] !~ only) why = "foreign resource " r[j]
                }
            }
            ok = (why == "") ? "ok" : "FAIL"
            print n, blk, actor, type, inter, code, ok, why, what, akey > out
        }' "$T/status.txt" "$T/bodies.tsv" "$T/index.tsv"
}
# The audit action of a denied search (the trail has its own).
sk() { [ "$1" = AuditEvent ] && echo "audit-search|$1" || echo "search|$1"; }
A2='^2[0-9][0-9]$'
DN='^403$'
# want ROLE TYPE ACTION: the status ERE for a staff cell.
want() { al "$1" "$2" "$3" && echo "$A2" || echo "$DN"; }

# ---- 1. the matrix: staff roles ------------------------------------------------
for role in "${STAFF[@]}"; do
    u=u-$role
    i=0
    for r in "${STAFF[@]}"; do i=$((i + 1)); [ "$r" = "$role" ] && break; done
    for t in $REPS; do
        id=mx-$t
        [ "$t" = Patient ] && id=mx-pat
        ok() { al "$role" "$t" "$1" && echo "$t/$id"; }
        if [ "$t" = AuditEvent ]; then
            # GET /AuditEvent searches the trail itself (its own parameters,
            # audited as audit-search); a stored AuditEvent may or may not
            # be readable by id, so an allowed read may also be a 404.
            wr() { al "$role" "$t" "$1" && echo '^(2[0-9][0-9]|404)$' || echo "$DN"; }
            rq m "$u" "$t" read "$(wr read)" 0 "" "" "" "read|$t" GET "/$t/$id"
            rq m "$u" "$t" vread "$(wr read)" 0 "" "" "" "vread|$t" GET "/$t/$id/_history/1"
            rq m "$u" "$t" search "$(want "$role" "$t" search)" 0 "" "" "^AuditEvent/" "audit-search|$t" GET "/$t?_count=5"
            rq m "$u" "$t" history "$(wr history)" 0 "" "" "" "history|$t" GET "/$t/$id/_history"
        else
            rq m "$u" "$t" read "$(want "$role" "$t" read)" 0 "$(ok read)" "" "" "read|$t" GET "/$t/$id"
            rq m "$u" "$t" vread "$(want "$role" "$t" read)" 0 "$(ok read)" "" "" "vread|$t" GET "/$t/$id/_history/1"
            rq m "$u" "$t" search "$(want "$role" "$t" search)" 0 "$(ok search)" "" "" "$(sk "$t")" GET "/$t?_id=$id"
            rq m "$u" "$t" history "$(want "$role" "$t" history)" 0 "$(ok history)" "" "" "history|$t" GET "/$t/$id/_history"
        fi
        rq m "$u" "$t" type-history "$(want "$role" "$t" history)" 0 "" "" "" "history|$t" GET "/$t/_history"
        rq m "$u" "$t" update "$(want "$role" "$t" update)" 0 "" "" "" "update|$t" PUT "/$t/$id" \
            "$JSONCT" "$(body "${UPD[$t/$id]}")"
        rq m "$u" "$t" create "$(want "$role" "$t" create)" 0 "" "" "" "create|$t" POST "/$t" \
            "$JSONCT" "$(body "$(FAM="Newmx${role//-/}" fx "$t" "" Patient/mx-pat)")"
        rq m "$u" "$t" delete "$(want "$role" "$t" delete)" 0 "" "" "" "delete|$t" DELETE "/$t/d$i-$t"
        p=${LINK[$t]-}
        [ -n "$p" ] || continue
        # _include: the base type's search right decides the status; the
        # included Patient appears only with search rights on Patient.
        if al "$role" Patient search; then mp="Patient/mx-pat" mn=""; else mp="" mn="^Patient/"; fi
        rq m "$u" "$t" _include "$(want "$role" "$t" search)" 0 "$(ok search) $mp" "$mn" "" "$(sk "$t")" \
            GET "/$t?_id=$id&_include=$t:$p"
        if al "$role" "$t" search; then mp="$t/$id" mn=""; else mp="" mn="^$t/"; fi
        rq m "$u" "$t" _revinclude "$(want "$role" Patient search)" 0 \
            "$(al "$role" Patient search && echo Patient/mx-pat) $mp" "$mn" "" "search|Patient" \
            GET "/Patient?_id=mx-pat&_revinclude=$t:$p"
    done
    # $everything: Patient read decides; each linked type appears exactly
    # when the role may read it.
    must="Patient/mx-pat" mn=
    for t in $REPS; do
        [ -n "${LINK[$t]-}" ] || continue
        if al "$role" "$t" read; then must+=" $t/mx-$t"; else mn+="${mn:+|}$t"; fi
    done
    al "$role" Patient read || must=
    rq m "$u" Patient '$everything' "$(want "$role" Patient read)" 0 "$must" \
        "${mn:+^($mn)/}" "" "read|Patient" GET '/Patient/mx-pat/$everything'
done
# System tokens: the role they carry, nothing more.
for role in "${SYSROLES[@]}"; do
    for t in $REPS; do
        id=mx-$t
        [ "$t" = Patient ] && id=mx-pat
        rq tok "mx-tok-$role" "$t" read "$(want "$role" "$t" read)" 0 "" "" "" "read|$t" GET "/$t/$id"
        rq tok "mx-tok-$role" "$t" search "$(want "$role" "$t" search)" 0 "" "" "" "$(sk "$t")" GET "/$t?_id=$id"
    done
done
# No credentials: 401 on every interaction.
for t in $REPS; do
    rq anon - "$t" read '^401$' 0 "" "" "" "" GET "/$t/mx-$t" NOAUTH
    rq anon - "$t" search '^401$' 0 "" "" "" "" GET "/$t" NOAUTH
    rq anon - "$t" history '^401$' 0 "" "" "" "" GET "/$t/mx-$t/_history" NOAUTH
    rq anon - "$t" create '^401$' 0 "" "" "" "" POST "/$t" NOAUTH "$JSONCT" \
        "$(body "$(fx "$t" "" Patient/mx-pat)")"
    rq anon - "$t" update '^401$' 0 "" "" "" "" PUT "/$t/mx-$t" NOAUTH "$JSONCT" \
        "$(body "$(fx "$t" "mx-$t" Patient/mx-pat)")"
    rq anon - "$t" delete '^401$' 0 "" "" "" "" DELETE "/$t/mx-$t" NOAUTH
done
rq anon - Patient '$everything' '^401$' 0 "" "" "" "" GET '/Patient/mx-pat/$everything' NOAUTH
flush

# ---- 1b. the patient role: own compartment, released results only -----------
OWNONLY='^[A-Za-z]+/pa(-[A-Za-z]+|-obs-x)?$'
for role in "${OWN[@]}"; do
    u=u-$role
    # want404 ACTION TYPE: allowed but not theirs -> 404, else 403.
    w404() { al "$role" "$2" "$1" && echo '^404$' || echo "$DN"; }
    for t in $REPS; do
        own=
        if [ "$t" = Patient ]; then own=pa; elif [ -n "${LINK[$t]-}" ]; then own=pa-$t; fi
        foreign=mx-$t
        [ "$t" = Patient ] && foreign=mx-pat
        if [ -n "$own" ]; then
            okr() { al "$role" "$t" "$1" && echo "$t/$own"; }
            rq p "$u" "$t" read-own "$(want "$role" "$t" read)" 0 "$(okr read)" "" "$OWNONLY" "read|$t" GET "/$t/$own"
            rq p "$u" "$t" vread-own "$(want "$role" "$t" read)" 0 "$(okr read)" "" "$OWNONLY" "vread|$t" GET "/$t/$own/_history/1"
            rq p "$u" "$t" search-own "$(want "$role" "$t" search)" 0 "$(okr search)" "" "$OWNONLY" "$(sk "$t")" GET "/$t?_id=$own"
            rq p "$u" "$t" history-own "$(want "$role" "$t" history)" 0 "" "" "$OWNONLY" "history|$t" GET "/$t/$own/_history"
            rq p "$u" "$t" update-own "$(want "$role" "$t" update)" 0 "" "" "$OWNONLY" "update|$t" PUT "/$t/$own" \
                "$JSONCT" "$(body "${UPD[$t/$own]}")"
            if [ -n "${HELD["$role|$t"]-}" ]; then
                rq p "$u" "$t" read-unreleased "$(w404 read "$t")" 0 "" "" "" "read|$t" GET "/$t/$own-held"
                rq p "$u" "$t" search-unreleased "$(want "$role" "$t" search)" 0 "" "-held$" "$OWNONLY" "$(sk "$t")" \
                    GET "/$t?_id=$own-held"
            fi
        fi
        if [ -n "${LINK[$t]-}" ]; then
            p=${LINK[$t]}
            rq p "$u" "$t" _include "$(want "$role" "$t" search)" 0 \
                "$(al "$role" "$t" search && echo "$t/pa-$t") $(al "$role" "$t" search && al "$role" Patient search && echo Patient/pa)" \
                "" "$OWNONLY" "$(sk "$t")" GET "/$t?_id=pa-$t&_include=$t:$p"
            rq p "$u" "$t" _revinclude "$(want "$role" Patient search)" 0 \
                "$(al "$role" Patient search && echo Patient/pa) $(al "$role" Patient search && al "$role" "$t" search && echo "$t/pa-$t")" \
                "" "$OWNONLY" "search|Patient" GET "/Patient?_id=pa&_revinclude=$t:$p"
        fi
        rq p "$u" "$t" read-foreign "$(w404 read "$t")" 0 "" "" "" "read|$t" GET "/$t/$foreign"
        rq p "$u" "$t" vread-foreign "$(w404 read "$t")" 0 "" "" "" "vread|$t" GET "/$t/$foreign/_history/1"
        rq p "$u" "$t" search-all "$(want "$role" "$t" search)" 0 "" "" "$OWNONLY" "$(sk "$t")" GET "/$t"
        rq p "$u" "$t" search-foreign "$(want "$role" "$t" search)" 1 "" "" "$OWNONLY" "$(sk "$t")" GET "/$t?_id=$foreign"
        rq p "$u" "$t" type-history "$(want "$role" "$t" history)" 0 "" "" "$OWNONLY" "history|$t" GET "/$t/_history"
        rq p "$u" "$t" create "$(want "$role" "$t" create)" 0 "" "" "" "create|$t" POST "/$t" \
            "$JSONCT" "$(body "$(FAM=Newpatmx fx "$t" "" Patient/pa)")"
        rq p "$u" "$t" update-foreign "$(w404 update "$t")" 0 "" "" "" "update|$t" PUT "/$t/$foreign" \
            "$JSONCT" "$(body "${UPD[$t/$foreign]}")"
        rq p "$u" "$t" delete-foreign "$(w404 delete "$t")" 0 "" "" "" "delete|$t" DELETE "/$t/$foreign"
    done
    must="Patient/pa" mn=
    for t in $REPS; do
        [ -n "${LINK[$t]-}" ] || continue
        al "$role" "$t" read && must+=" $t/pa-$t"
    done
    al "$role" Patient read || must=
    rq p "$u" Patient '$everything-own' "$(want "$role" Patient read)" 0 "$must" "" "$OWNONLY" \
        "read|Patient" GET '/Patient/pa/$everything'
    rq p "$u" Patient '$everything-foreign' "$(w404 read Patient)" 0 "" "" "" "read|Patient" \
        GET '/Patient/mx-pat/$everything'
done
flush

# ---- 2. IDOR: patient user A against every id of patient B -------------------
PU=u-${OWN[0]}
BREFS="Patient/pb Observation/pb-obs-rel Observation/pb-obs-held Condition/pb-cond Encounter/pb-enc DocumentReference/pb-doc MedicationRequest/pb-medreq"
NOTB='^[A-Za-z]+/pb'
NO2='^(403|404)$'
# A 2xx is allowed only for searches (an empty or A-only answer).
SRCH='^(200|400|403|404)$'
for ref in $BREFS; do
    t=${ref%%/*} id=${ref#*/}
    rq idor "$PU" "$t" read "$NO2" 0 "" "$NOTB" "" "read|$t" GET "/$ref"
    rq idor "$PU" "$t" vread "$NO2" 0 "" "$NOTB" "" "vread|$t" GET "/$ref/_history/1"
    rq idor "$PU" "$t" history "$NO2" 0 "" "$NOTB" "" "history|$t" GET "/$ref/_history"
    rq idor "$PU" "$t" update "$NO2" 0 "" "$NOTB" "" "update|$t" PUT "/$ref" "$JSONCT" \
        "$(body "${UPD[$ref]}")"
    rq idor "$PU" "$t" delete "$NO2" 0 "" "$NOTB" "" "delete|$t" DELETE "/$ref"
    rq idor "$PU" "$t" search-_id "$SRCH" 1 "" "$NOTB" "$OWNONLY" "$(sk "$t")" GET "/$t?_id=$id"
    rq idor "$PU" "$t" search-_id-post "$SRCH" 1 "" "$NOTB" "$OWNONLY" "$(sk "$t")" POST "/$t/_search" \
        'header = "Content-Type: application/x-www-form-urlencoded"' "$(body "_id=$id")"
    rq idor "$PU" "$t" search-_id-mixed "$SRCH" 0 "" "$NOTB" "$OWNONLY" "$(sk "$t")" GET "/$t?_id=$id,pa-$t,pa"
    if [ "$t" != Patient ]; then
        for sp in subject patient subject:Patient; do
            for v in Patient%2Fpb pb "$(jq -rn --arg v "$BASE/fhir/Patient/pb" '$v|@uri')"; do
                rq idor "$PU" "$t" "search-$sp" "$SRCH" 1 "" "$NOTB" "$OWNONLY" "$(sk "$t")" \
                    GET "/$t?$sp=$v"
            done
        done
        rq idor "$PU" "$t" search-chain "$SRCH" 1 "" "$NOTB" "$OWNONLY" "$(sk "$t")" GET "/$t?subject.name=Zorbaxwell"
        rq idor "$PU" "$t" search-revinclude "$SRCH" 0 "" "$NOTB" "$OWNONLY" "search|Patient" \
            GET "/Patient?_id=pb&_revinclude=$t:subject"
    fi
    rq idor "$PU" "$t" create-for-B "$NO2" 0 "" "$NOTB" "" "create|$t" POST "/$t" "$JSONCT" \
        "$(body "$(FAM=Zorbaxwell GIV=Brindlemay BIRTH=1958-11-23 fx "$t" "" Patient/pb)")"
done
rq idor "$PU" Patient '$everything' "$NO2" 0 "" "$NOTB" "" "read|Patient" GET '/Patient/pb/$everything'
rq idor "$PU" Patient '$everything-own' '^200$' 0 "Patient/pa" "$NOTB" "$OWNONLY" "" GET '/Patient/pa/$everything'
for qs in "name=Zorbaxwell" "family=Zorbaxwell" "given=Brindlemay" "birthdate=1958-11-23" \
    "identifier=$PB_MRN" "identifier=urn:medrec:mrn%7C$PB_MRN" "_id=pb,pa" "name:contains=orbax" \
    "_has:Observation:subject:_id=pb-obs-rel" "_count=1000" "_sort=-_lastUpdated"; do
    rq idor "$PU" Patient "search-$qs" "$SRCH" 0 "" "$NOTB" "$OWNONLY" "search|Patient" GET "/Patient?$qs"
done
for qs in "performer=Patient/pa" "code=pbmarker-sodium" "value-string=pbmarker-value-1" \
    "_id=pa-obs-x&_include=Observation:performer" "_id=pa-obs-x&_include=Observation:has-member" \
    "_id=pa-obs-x&_include=Observation:derived-from" "_id=pa-obs-x&_include=*" \
    "_id=pa-obs-x&_include:iterate=Observation:has-member" "_count=1000"; do
    rq idor "$PU" Observation "search-$qs" "$SRCH" 0 "" "$NOTB" "$OWNONLY" "search|Observation" GET "/Observation?$qs"
done
rq idor "$PU" Patient search-revinclude-performer "$SRCH" 0 "Patient/pa" "$NOTB" "$OWNONLY" "search|Patient" \
    GET "/Patient?_id=pa&_revinclude=Observation:performer"
rq idor "$PU" Encounter search-revinclude-encounter "$SRCH" 0 "Encounter/pa-Encounter" "$NOTB" "$OWNONLY" "search|Encounter" \
    GET "/Encounter?_id=pa-Encounter&_revinclude=Condition:encounter"
rq idor "$PU" Condition search-encounter "$SRCH" 0 "" "$NOTB" "$OWNONLY" "search|Condition" \
    GET "/Condition?encounter=Encounter/pa-Encounter"
rq idor "$PU" - system-history '^(200|403)$' 0 "" "$NOTB" "$OWNONLY" "history|" GET "/_history"
# Does the answer tell whether B's record exists? Compare with an id
# nobody has.
rq idor "$PU" Observation oracle-b '^404$' 0 "" "" "" "read|Observation" GET "/Observation/pb-obs-rel"
ORACLE_B=$NREQ
rq idor "$PU" Observation oracle-none '^404$' 0 "" "" "" "read|Observation" GET "/Observation/pb-obs-zzz"
ORACLE_N=$NREQ
flush

# ---- 3. injection --------------------------------------------------------------
snapshot "$T/inj.before" || fail "medrec export before the injection block"
IU=mx-inj
LONG=$(printf 'A%.0s' {1..6000})
PAYLOADS=("' OR 1=1--" "\"; DROP TABLE resource;--" "') OR ('1'='1" \
    "1; SELECT sqlite_version()" "x' UNION SELECT json FROM resource--" \
    "../../etc/passwd" "..\\..\\windows\\win.ini" "%" "_" "\\" "*" \
    "’ OR ‘1’=‘1" "＇ OR 1=1--" "ʼ; DROP TABLE audit;--" "$LONG")
# URL-encoded, in one jq.
mapfile -t ENC < <(printf '%s\0' "${PAYLOADS[@]}" |
    jq -Rr 'split("\u0000")[] | select(. != "") | @uri')
# Raw forms that go into the URL as they are.
RAW=("%27" "%27%20OR%201%3D1--" "..%2F..%2F..%2Fetc%2Fpasswd" "%2e%2e%2f%2e%2e%2f" \
    "%00" "x%00%27%20OR%201%3D1" "%2527" "%C0%AE%C0%AE%2F" "%E2%80%99%20OR%201=1")
VALS=("${ENC[@]}" "${RAW[@]}")
[ "${#ENC[@]}" = "${#PAYLOADS[@]}" ] ||
    fail "encoding the payloads: ${#ENC[@]} of ${#PAYLOADS[@]}"
INJ='^(2[0-9][0-9]|4[0-9][0-9])$'
STRICT='header = "Prefer: handling=strict"'
IN4='^4[0-9][0-9]$'
PARAMS=("Patient name" "Patient family" "Patient name:exact" "Patient name:contains"
    "Patient address" "Patient identifier" "Patient gender" "Patient _id"
    "Observation code" "Observation code-sys" "Patient _tag" "Patient _security"
    "Patient birthdate" "Observation date" "Patient _lastUpdated"
    "Observation subject" "Observation patient" "Condition encounter"
    "Observation value-quantity" "RiskAssessment probability"
    "DocumentReference location")
for v in "${VALS[@]}"; do
    for pp in "${PARAMS[@]}"; do
        t=${pp%% *} p=${pp#* }
        val=$v
        [ "$p" = code-sys ] && p=code val="http%3A%2F%2Floinc.org%7C$v"
        rq inj "$IU" "$t" "param-$p" "$INJ" 1 "" "" "" "" GET "/$t?$p=$val"
    done
    # Result parameters: refused when the client asks for strict
    # handling; by default (lenient) either refused or ignored with a
    # warning in the Bundle.
    for p in _sort _include _revinclude _count; do
        [ "$v" = "${ENC[10]}" ] && [ "${p%include}" != "$p" ] && continue # "*": a valid wildcard
        rq inj "$IU" Patient "$p-strict" "$IN4" 0 "" "" "" "" GET "/Patient?$p=$v" "$STRICT"
        rq inj "$IU" Patient "$p" "$INJ" 2 "" "" "" "" GET "/Patient?$p=$v"
    done
    rq inj "$IU" Observation _sort-desc-strict "$IN4" 0 "" "" "" "" GET "/Observation?_sort=-$v" "$STRICT"
    rq inj "$IU" Patient history-_since "$IN4" 0 "" "" "" "" GET "/Patient/inj-pat/_history?_since=$v"
    rq inj "$IU" Patient history-_count "$IN4" 0 "" "" "" "" GET "/Patient/inj-pat/_history?_count=$v"
    rq inj "$IU" - path-type "$IN4" 0 "" "" "" "" GET "/$v"
    rq inj "$IU" - path-type-id "$IN4" 0 "" "" "" "" GET "/$v/inj-pat" path-as-is
    rq inj "$IU" Patient path-id "$IN4" 0 "" "" "" "" GET "/Patient/$v" path-as-is
    rq inj "$IU" Patient path-id-history "$IN4" 0 "" "" "" "" GET "/Patient/$v/_history" path-as-is
    rq inj "$IU" Patient path-id-everything "$IN4" 0 "" "" "" "" GET "/Patient/$v/\$everything" path-as-is
    rq inj "$IU" Patient path-version "$IN4" 0 "" "" "" "" GET "/Patient/inj-pat/_history/$v" path-as-is
    rq inj "$IU" Patient path-id-put "$IN4" 0 "" "" "" "" PUT "/Patient/$v" path-as-is "$JSONCT" \
        "$(body "${UPD[Patient/inj-pat]}")"
    rq inj "$IU" Patient path-id-delete "$IN4" 0 "" "" "" "" DELETE "/Patient/$v" path-as-is
done
# Each raw path names a patient of its own (inj-d<k>), so that a path
# that reaches one does not change what the others find.
k=0
for path in "/Patient/../../etc/passwd" "/../../../etc/passwd" "/Patient/@ID@/../../../etc/passwd" \
    "/Patient/%2e%2e/%2e%2e/etc/passwd" "/Patient/@ID@%00" "/Patient/@ID@%00.json" \
    "/Patient%00/@ID@" "/Patient/@ID@/_history/1%00" "/Patient/@ID@;DROP" \
    "/Patient/@ID@/_history/1%20OR%201=1" "/Patient/@ID@/_history/-1" \
    "/Patient/@ID@/_history/99999999999999999999" "/Patient/@ID@%2F..%2F..%2Fmx-pat"; do
    k=$((k + 1))
    path=${path//@ID@/inj-d$k}
    rq inj "$IU" - "raw-path" "$IN4" 0 "" "" "" "" GET "$path" path-as-is
    rq inj "$IU" - "raw-path-delete" "$IN4" 0 "" "" "" "" DELETE "$path" path-as-is
done
rq inj "$IU" - "outside-fhir" "$IN4" 0 "" "" "" "" GET "$BASE/../../etc/passwd" path-as-is
# Headers: the raw payloads (curl sends bytes; a header cannot hold NUL).
HV=("${PAYLOADS[@]}" "%00" "%27" "W/\"1\"' OR '1'='1" "\"1\" OR 1=1" "1 OR 1=1" "W/\"0\"" "W/\"-1\"")
k=0
for v in "${HV[@]}"; do
    # Each If-Match against a patient of its own, still at version 1.
    k=$((k + 1))
    rq inj "$IU" Patient if-match "$IN4" 0 "" "" "" "" PUT "/Patient/inj-m$k" "$JSONCT" \
        "header = $(cq "If-Match: $v")" "$(body "${UPD[Patient/inj-m$k]}")"
    # A copy of inj-pat: a duplicate unless the header made it match.
    rq inj "$IU" Patient if-none-exist '^(400|409)$' 0 "" "" "" "" POST /Patient "$JSONCT" \
        "header = $(cq "If-None-Exist: $v")" \
        "$(body "$(FAM=Injectorova GIV=Ilse BIRTH=1980-02-29 fx Patient "" "")")"
    rq inj "$IU" Patient if-none-exist-param '^(400|409)$' 0 "" "" "" "" POST /Patient "$JSONCT" \
        "header = $(cq "If-None-Exist: name=$v")" \
        "$(body "$(FAM=Injectorova GIV=Ilse BIRTH=1980-02-29 fx Patient "" "")")"
    rq inj "$IU" Patient prefer-read "$INJ" 0 "" "" "" "" GET /Patient/inj-pat \
        "header = $(cq "Prefer: $v")"
    rq inj "$IU" Patient prefer-search "$INJ" 0 "" "" "" "" GET "/Patient?_id=none-such" \
        "header = $(cq "Prefer: handling=$v")"
    rq inj "$IU" Patient prefer-put "$IN4" 0 "" "" "" "" PUT /Patient/inj-pat "$JSONCT" \
        "header = $(cq "Prefer: return=$v")" 'header = "If-Match: W/\"7\""' \
        "$(body "${UPD[Patient/inj-pat]}")"
    rq inj - Patient authorization-bearer '^401$' 0 "" "" "" "" GET /Patient/inj-pat \
        "header = $(cq "Authorization: Bearer $v")"
    rq inj - Patient authorization-raw '^401$' 0 "" "" "" "" GET /Patient/inj-pat \
        "header = $(cq "Authorization: $v")"
    rq inj - Patient authorization-token-suffix '^401$' 0 "" "" "" "" GET /Patient/inj-pat \
        "header = $(cq "${AUTHOF[$IU]}$v")"
    rq inj - Patient cookie '^401$' 0 "" "" "" "" GET /Patient/inj-pat \
        "header = $(cq "Cookie: __Host-medrec=$v")"
    rq inj - Patient cookie-raw '^401$' 0 "" "" "" "" GET /Patient/inj-pat \
        "header = $(cq "Cookie: $v")"
done
# Oversized values: a 100 KB search value and a 20 KB header.
HUGE=$(printf 'B%.0s' {1..100000})
rq inj "$IU" Patient huge-param "$IN4" 0 "" "" "" "" GET "/Patient?name=$HUGE"
rq inj "$IU" Patient huge-header '^4[0-9][0-9]$' 0 "" "" "" "" GET /Patient/inj-pat \
    "header = $(cq "If-None-Exist: ${HUGE:0:20000}")"
rq inj - Patient huge-authorization '^4[0-9][0-9]$' 0 "" "" "" "" GET /Patient/inj-pat \
    "header = $(cq "Authorization: Bearer ${HUGE:0:20000}")"
flush
req GET /metadata
expect_status 200 "the server still answers after the injection block"
expect_same_store "injection payloads in parameters, paths and headers" "$T/inj.before"

judge; [ -n "${MX_KEEP:-}" ] && rm -rf "$MX_KEEP" && cp -r "$T" "$MX_KEEP"
declare -A BP BF
while IFS=$'\t' read -r n blk actor type inter code ok why what akey; do
    if [ "$ok" = ok ]; then
        BP[$blk]=$((${BP[$blk]:-0} + 1))
        PASS=$((PASS + 1))
    else
        BF[$blk]=$((${BF[$blk]:-0} + 1))
        fail "[$blk] $actor $inter $type: $what -> $why"
    fi
done <"$T/judged.tsv"
for blk in m tok anon p idor inj; do
    echo "ok   block $blk: ${BP[$blk]:-0} requests as expected, ${BF[$blk]:-0} not"
done
expect_eq "every request got an answer" "$NREQ" "$(wc -l <"$T/judged.tsv")"
grep -c ' 5[0-9][0-9]$' "$T/status.txt" >"$T/n5xx"
expect_eq "no 5xx anywhere" 0 "$(cat "$T/n5xx")"

# ---- every denial audited: one DENIED entry per 403, same actor, action, type --
awk -F'\t' '$6 == "403" && $3 != "-" { print $3 "|" $10 }' "$T/judged.tsv" | sort >"$T/denied.want"
sqlite3 "$DB" "SELECT actor || '|' || action || '|' || coalesce(type, '') FROM audit
    WHERE outcome = 'DENIED' AND (actor LIKE 'u-%' OR actor LIKE 'mx-%')" |
    sort >"$T/denied.got"
for actor in $(cut -d'|' -f1 "$T/denied.want" "$T/denied.got" | sort -u); do
    w=$(grep -c "^$actor|" "$T/denied.want")
    g=$(grep -c "^$actor|" "$T/denied.got")
    if diff <(grep "^$actor|" "$T/denied.want") <(grep "^$actor|" "$T/denied.got") >"$T/denied.diff"; then
        pass "$actor: $w refusals, $g DENIED audit entries, one for one"
    else
        fail "$actor: $w refusals but $g DENIED audit entries: $(head -n 4 "$T/denied.diff" | tr '\n' ' ')"
    fi
done
# The patient's "not found" answers are on the trail too.
n404=$(awk -F'\t' -v u="$PU" '$3 == u && $6 == "404"' "$T/judged.tsv" | wc -l)
a404=$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE actor = '$PU' AND outcome NOT IN ('ok', 'DENIED')")
[ "$a404" -ge "$n404" ] && pass "$PU: $n404 not-found answers, $a404 audited failures" ||
    fail "$PU: $n404 not-found answers but only $a404 audited failures"

# ---- IDOR: nothing of B's in any body A received --------------------------------
idor_files=$(awk -F'\t' '$2 == "idor" || ($2 == "p") { printf "%s/b/%s ", T, $1 }' T="$T" "$T/index.tsv")
# (The self link echoes A's own query: it is left out.)
leaks=$(awk -v re='pbmarker|Zorbaxwell|Brindlemay|1958-11-23|"id":"pb|'"$PB_MRN" '
    { gsub(/"link":\[[^]]*\]/, ""); if ($0 ~ re) print FILENAME }' $idor_files 2>/dev/null |
    sort -u | tr '\n' ' ')
nidor2=$(awk -F'\t' '$2 == "idor" && $6 ~ /^2/ && $5 !~ /^search|-own$|^system-history$/' "$T/judged.tsv" | wc -l)
expect_eq "IDOR: no direct access to B's ids succeeded" 0 "$nidor2"
expect_eq "IDOR: no body sent to patient A holds B's data" "" "$leaks"
[ -n "$leaks" ] && for f in $leaks; do
    echo "     leak in request ${f##*/}: $(grep -P "^${f##*/}\t" "$T/index.tsv" | cut -f12) -- $(head -c 200 "$f")"
done
sed "s/pb-obs-rel/ID/g" "$T/b/$ORACLE_B" >"$T/oracle.b"
sed "s/pb-obs-zzz/ID/g" "$T/b/$ORACLE_N" >"$T/oracle.n"
if cmp -s "$T/oracle.b" "$T/oracle.n"; then
    pass "IDOR: B's record and a missing one get the same answer"
else
    fail "IDOR: the answer tells B's record exists: '$(head -c 150 "$T/oracle.b")' vs '$(head -c 150 "$T/oracle.n")'"
fi

# ---- 4. secrets ------------------------------------------------------------------
cat "$T/secrets.pw" "$T/secrets.tok" | grep -v '^$' >"$T/secrets.all"
printf '%s\n' "${NAMES[@]}" "${BIRTHS[@]}" >"$T/phi.txt"
expect_eq "secrets issued: password, the file owner's token, sessions and API tokens" yes \
    "$([ "$(wc -l <"$T/secrets.all")" -ge $((2 + ${#STAFF[@]} + ${#OWN[@]} + ${#SYSROLES[@]})) ] && echo yes)"
[ -s "$T/access.log" ] && pass "the access log was written ($(wc -l <"$T/access.log") lines)" ||
    fail "the access log is empty"
for f in "$T/access.log" "$T/srv$_SRV_N.err" "$T/srv$_SRV_N.out"; do
    hit=$(grep -o -F -f "$T/secrets.all" "$f" | head -n 1)
    expect_eq "no password or token in ${f##*/}" "" "${hit:0:12}"
    hit=$(grep -o -F -f "$T/phi.txt" "$f" | head -n 1)
    expect_eq "no patient name or birth date in ${f##*/}" "" "$hit"
done
hit=$(grep -rl -F -f "$T/secrets.all" "$T/b" | head -n 3 | tr '\n' ' ')
expect_eq "no password or token in any of $NREQ response bodies" "" "$hit"
hit=$(grep -l -F "$PW" "$T/login"/* | head -n 3)
expect_eq "no password in the login answers" "" "$hit"
for f in "$T/login"/*; do
    n=$(grep -o -F -f "$T/secrets.tok" "$f" | sort -u | wc -l)
    [ "$n" = 1 ] || fail "login answer ${f##*/} holds $n tokens (want its own only)"
done
pass "each login answer holds its own token only"
hit=$(cat "$DB"* 2>/dev/null | grep -a -o -F -f "$T/secrets.all" | head -n 1)
expect_eq "no password or token stored in plain text in the database" "" "${hit:0:12}"
hit=$(sqlite3 "$DB" "SELECT * FROM audit" | grep -o -F -f "$T/secrets.all" | head -n 1)
expect_eq "no password or token in the audit trail" "" "${hit:0:12}"

summary
