#!/usr/bin/env bash
# The official FHIR R4 examples ($MEDREC_SHARED_DATA/fhir/examples; see
# SOURCES.md beside that folder) against one `medrec serve`: each one is
# created, or refused with an OperationOutcome that says why. Never a 5xx,
# never a hang. Refusals alone never fail the test; the report lists them.
#
# How a file is sent:
#   - a resource with an id: PUT /fhir/Type/id (update as create keeps the
#     example's id, so the references between examples can resolve);
#     a resource without one: POST /fhir/Type;
#   - a Bundle of type transaction or batch: POST /fhir, processed as a
#     client means it (its entries are the examples); any other Bundle
#     (collection, document, message, searchset, *-response) is a resource
#     to store: PUT /fhir/Bundle/id;
#   - a file that is not a resource (the package manifest) is skipped.
#
# Passes: pass 1 sends every file in name order. Examples refer to others
# later in name order, so the refused ones are sent again, a pass at a time,
# until a pass creates nothing. A retry pass sends only what can now do
# better: an example refused because '"Type/id" does not exist' waits until
# the example with that Type/id is created (until then it would only be
# refused the same way again); any other refusal is sent once more, in
# pass 2, as it waits for nothing. Then examples whose missing references
# form a cycle among refused examples (A -> B -> A, or A -> A) are sent
# together as one transaction of PUTs, and the retry passes start again.
#
# Checks:
#   - 2xx: the resource reads back (GET) equal to the file apart from meta
#     (jq -S; for a Patient, less the MRN identifier medrec adds), meta
#     keeps the example's profile/tag/security, and every number literal
#     reads back byte for byte (medrec stores the client's bytes; jq 1.6
#     alone would not see 1.50 become 1.5). Entries of the examples'
#     transactions: the jq compare, urn:uuid references mapped to where the
#     entries were created;
#   - 4xx: an OperationOutcome whose issue[0] is an error with diagnostics
#     that explain it ("<field or subject>: <reason>", or the reason in a
#     few words; never empty, never a bare error name), and nothing stored
#     (at the end every refused example reads 404, or 403 when the access
#     policy refused it and hides the type);
#   - 401 fails: the test's own credentials were refused;
#   - batch: each entry answers 2xx, or 4xx with such an outcome;
#   - anything else (5xx, no answer within 60 s, 1xx/3xx) fails.
#
# Report: on stdout, and as markdown to $FHIR_EXAMPLES_REPORT (relative to
# the directory the test starts in; default fhir-examples.md there, i.e. in
# the build directory under CTest). The test never writes into the source
# tree by itself; docs/fhir-examples.md is this report, regenerated with
#   FHIR_EXAMPLES_REPORT=$PWD/docs/fhir-examples.md \
#       ctest --test-dir build -R fhir_examples
_fx_start_dir=$PWD
. "$(dirname "$0")/http_lib.sh"

export LC_ALL=C TZ=UTC

[ -n "$MEDREC_SHARED_DATA" ] ||
    skip "MEDREC_SHARED_DATA is not set: no FHIR R4 examples to load"
EX=$MEDREC_SHARED_DATA/fhir/examples
[ -d "$EX" ] || skip "no FHIR R4 examples: $EX does not exist"
REPORT=${FHIR_EXAMPLES_REPORT:-fhir-examples.md}
case $REPORT in
/*) ;;
*) REPORT=$_fx_start_dir/$REPORT ;;
esac
mkdir -p "$T/cmp"
MAXT=60 # seconds for one request: bounds a hang, never judges speed
US=$'\x1f' # field separator of jq's output to `read` (never in the data)

# ---- the examples ---------------------------------------------------------

# Per example file: RT resourceType, ID id, BTYPE Bundle.type; STATE
# created | refused | final-refused (a batch that ran: not sent again) |
# error (a failed check); CODE and DIAG of the last refusal, FIRST the
# first one, DETAIL a batch's refused entries, WHEN the last pass that sent
# it, HOW the request, NSENT how many times it was sent. BYKEY: "Type/id"
# -> the stand-alone example; INBUNDLE: "Type/id" -> the stored Bundle
# example holding it as an entry.
declare -A RT ID BTYPE BYKEY INBUNDLE STATE CODE DIAG FIRST DETAIL WHEN HOW
declare -A NSENT
FILES=()   # resource files, in name order
SKIPPED=() # files that are not resources

# A Bundle the server processes (POST /fhir) rather than stores.
is_processed()
{
    [ "${RT[$1]}" = Bundle ] && [[ ${BTYPE[$1]} =~ ^(transaction|batch)$ ]]
}

while IFS=$US read -r f rt id bt; do
    f=${f##*/}
    if [ -z "$rt" ]; then
        SKIPPED+=("$f")
        continue
    fi
    FILES+=("$f")
    RT[$f]=$rt
    ID[$f]=$id
    BTYPE[$f]=$bt
    if [ -n "$id" ] && ! is_processed "$f"; then
        BYKEY[$rt/$id]=$f
    fi
done < <(cd "$EX" && jq -r '[input_filename, (.resourceType // ""),
                              (.id // ""), (.type // "")] |
                             map(tostring | gsub("[\u001f\n]"; " ")) |
                             join("\u001f")' -- *.json 2>"$T/index.err")
[ "${#FILES[@]}" -gt 0 ] ||
    { fail "no example could be read: $(head -c 200 "$T/index.err")"; summary; }
while IFS=$US read -r f key; do
    INBUNDLE[$key]=${f##*/}
done < <(cd "$EX" && jq -r 'select(.resourceType == "Bundle" and
                              (.type | test("^(transaction|batch)$") | not))
                             | .entry[]?.resource |
                             select(.resourceType and .id) |
                             input_filename + "\u001f" + .resourceType + "/" +
                             .id' -- Bundle-*.json 2>/dev/null)

# ---- judging answers --------------------------------------------------------

# Diagnostics explain a refusal when they name a field or subject and the
# reason ("Observation.subject.reference: ...", "Patient: ...") or say it
# in words ("Practitioner/x not found", "a clerk may not create Bundle
# resources": three words at least), and are not only the name of an
# error (mr_strerror).
EXPLAINED_RE='^[A-Za-z][][A-Za-z0-9_.()/ -]*: .+'
SENTENCE_RE='^[^ ]+( [^ ]+){2,}$'
GENERIC_RE='^(invalid input|malformed JSON|input too large|not found|resource deleted|version conflict|possible duplicate|already exists|access denied|not signed in|not supported|internal error|unknown error)$'
# medrec's own OperationOutcome, compact: read without starting jq (1.6
# takes ~50 ms a start); any other shape goes to jq.
OO_RE='^\{"resourceType":"OperationOutcome","issue":\[\{"severity":"(error|fatal)","code":"[a-z-]+","diagnostics":"(([^"\\]|\\["\\/])*)"[,}]'

# DIAGV: the diagnostics of the OperationOutcome in $BODY, empty unless
# issue[0] is an error or fatal issue.
outcome_diag()
{
    local text=
    IFS= read -r -d '' text <"$BODY"
    if [[ $text =~ $OO_RE ]]; then
        DIAGV=${BASH_REMATCH[2]//\\\\/$'\x01'}
        DIAGV=${DIAGV//\\\"/\"}
        DIAGV=${DIAGV//\\\//\/}
        DIAGV=${DIAGV//$'\x01'/\\}
        return 0
    fi
    DIAGV=$(jq -r 'if .resourceType == "OperationOutcome" and
              (.issue | type == "array" and length > 0) and
              (.issue[0].severity == "error" or .issue[0].severity == "fatal")
           then .issue[0].diagnostics // "" | tostring else "" end' \
        "$BODY" 2>/dev/null)
    DIAGV=${DIAGV//[$'\n\t']/ }
}

# Checks that diagnostics $2 explain a refusal (label $1); 0 if so.
check_explained()
{
    if [ -z "$2" ]; then
        fail "$1: refused without an OperationOutcome error with" \
             "diagnostics -- $(_bodyhead)"
        return 1
    fi
    if [[ $2 =~ $GENERIC_RE ]] ||
        ! [[ $2 =~ $EXPLAINED_RE || $2 =~ $SENTENCE_RE ]]; then
        fail "$1: diagnostics name no field or reason: '$2'"
        return 1
    fi
    return 0
}

# Whether JSON files $1 and $2 hold the same number literals, byte for
# byte (as multisets: strings are removed first, and JSON strings never
# span lines). Prints the literals that differ.
same_numbers()
{
    awk 'FNR == 1 { side = side ? -1 : 1 }
         { gsub(/\r/, ""); gsub(/"([^"\\]|\\.)*"/, "")
           while (match($0, /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/)) {
               n[substr($0, RSTART, RLENGTH)] += side
               $0 = substr($0, RSTART + RLENGTH) } }
         END { for (t in n) if (n[t]) { printf "%s(%+d) ", t, n[t]; bad = 1 }
               exit bad }' "$1" "$2"
}

# jq over pairs of inputs (sent, read back): one line "k<TAB>why" per
# pair, why empty if they agree. $posts[k]: the server chose the id. A
# Patient reads back with medrec's MRN identifier.
CMP='
def nomrn:
  if .resourceType == "Patient" and (.identifier | type) == "array" then
    .identifier |= map(select(.system != "urn:medrec:mrn"))
    | if .identifier == [] then del(.identifier) else . end
  else . end;
def kept: (.meta // {}) | del(.versionId, .lastUpdated);
def body($post): del(.meta) | if $post then del(.id) else . end;
def why($s; $g; $post):
  if ($s | body($post)) != ($g | nomrn | body($post)) then
    "the content differs"
  elif ($s | kept) != ($g | kept) then
    "meta lost or changed (profile/tag/security): sent \($s | kept | tojson)"
    + ", got \($g | kept | tojson)"
  elif ($g.meta.versionId | type) != "string" then "no meta.versionId"
  else "" end;
[inputs] as $d | range(0; $d | length; 2) as $i |
"\($i / 2)\t" + (why($d[$i]; $d[$i + 1]; $posts[$i / 2]) | gsub("\n"; " "))'

# Read-backs waiting for their comparison (one jq run per pass):
# CMP_FILE[k] the example, CMP_LABEL, CMP_SENT, CMP_GOT (files), CMP_POST
# (true: the server chose the id), CMP_BYTES ("bytes": number literals too).
CMP_FILE=() CMP_LABEL=() CMP_SENT=() CMP_GOT=() CMP_POST=() CMP_BYTES=()
CMP_N=0

# Reads back "Type/id" $2 for example $1 to compare with the resource in
# file $4 at the end of the pass; label $3; $5 true if the server chose the
# id; $6 "bytes" to compare number literals too. 0 if it could be read.
readback()
{
    local f=$1 path=$2 label=$3 got=$T/cmp/$CMP_N.got text=
    req GET "/$path" --max-time "$MAXT"
    if [ "$STATUS" != 200 ]; then
        fail "$label: read back GET /$path: status $STATUS -- $(_bodyhead)"
        return 1
    fi
    IFS= read -r -d '' text <"$BODY"
    printf '%s' "$text" >"$got"
    CMP_FILE+=("$f")
    CMP_LABEL+=("$label: GET /$path")
    CMP_SENT+=("$4")
    CMP_GOT+=("$got")
    CMP_POST+=("${5:-false}")
    CMP_BYTES+=("${6:-}")
    CMP_N=$((CMP_N + 1))
    return 0
}

# Compares every pending read-back; a difference fails and makes its
# example an error.
flush_readbacks()
{
    local k why posts args=() res=$T/cmp/res
    [ "${#CMP_FILE[@]}" -gt 0 ] || return 0
    posts=$(printf '%s,' "${CMP_POST[@]}")
    for k in "${!CMP_FILE[@]}"; do
        args+=("${CMP_SENT[$k]}" "${CMP_GOT[$k]}")
    done
    if ! jq -nr --argjson posts "[${posts%,}]" "$CMP" "${args[@]}" \
        >"$res" 2>"$res.err"; then
        # Some file is not JSON: judge the pairs one at a time.
        : >"$res"
        for k in "${!CMP_FILE[@]}"; do
            why=$(jq -nr --argjson posts "[${CMP_POST[$k]}]" "$CMP" \
                "${CMP_SENT[$k]}" "${CMP_GOT[$k]}" 2>/dev/null) ||
                why=$'0\tnot JSON'
            printf '%s\t%s\n' "$k" "${why#*$'\t'}" >>"$res"
        done
    fi
    declare -A whys=()
    while IFS=$'\t' read -r k why; do
        whys[$k]=$why
    done <"$res"
    for k in "${!CMP_FILE[@]}"; do
        why=${whys[$k]-not compared}
        if [ -n "$why" ]; then
            fail "${CMP_LABEL[$k]}: $why -- $(diff \
                <(jq -S "del(.meta)" "${CMP_SENT[$k]}") \
                <(jq -S "del(.meta)" "${CMP_GOT[$k]}") | grep '^[<>]' |
                head -n 4 | cut -c 1-160 | tr '\n' ' ')"
            STATE[${CMP_FILE[$k]}]=error
        elif [ "${CMP_BYTES[$k]}" = bytes ] &&
            ! why=$(same_numbers "${CMP_SENT[$k]}" "${CMP_GOT[$k]}"); then
            fail "${CMP_LABEL[$k]}: number literals differ" \
                 "(+ sent, - read back): ${why:0:300}"
            STATE[${CMP_FILE[$k]}]=error
        else
            pass "${CMP_LABEL[$k]}: reads back the same"
        fi
    done
    CMP_FILE=() CMP_LABEL=() CMP_SENT=() CMP_GOT=() CMP_POST=() CMP_BYTES=()
}

refuse()
{
    STATE[$1]=refused
    CODE[$1]=$2
    DIAG[$1]=$3
    [ -n "${FIRST[$1]:-}" ] || FIRST[$1]="$2 $3"
}

# The answer to a processed Bundle (file $1, label $2) that was 2xx.
bundle_answer()
{
    local f=$1 label=$2 resp=$T/resp.json n_req n_resp i st loc meth diag
    local map refused=0 bad=0 details= sent
    cp "$BODY" "$resp"
    if ! jq -e --arg t "${BTYPE[$f]}-response" '.resourceType == "Bundle" and
            .type == $t' "$resp" >/dev/null 2>&1; then
        fail "$label: $STATUS but not a ${BTYPE[$f]}-response Bundle --" \
             "$(_bodyhead)"
        refuse "$f" "$STATUS" "the answer is not a ${BTYPE[$f]}-response"
        STATE[$f]=error
        return
    fi
    n_req=$(jq '.entry | length' "$EX/$f")
    n_resp=$(jq '.entry | length' "$resp")
    if [ "$n_req" != "$n_resp" ]; then
        fail "$label: $n_req entries sent, $n_resp answered"
        bad=1
    fi
    # fullUrl -> "Type/id" where each written entry went.
    map=$(jq -c --slurpfile q "$EX/$f" '[.entry | to_entries[] |
            select(.value.response.location and $q[0].entry[.key].fullUrl) |
            {key: $q[0].entry[.key].fullUrl,
             value: (.value.response.location | sub("^.*/fhir/"; "") |
                     sub("/_history/.*$"; ""))}] | from_entries' "$resp")
    while IFS=$US read -r i st loc meth diag; do
        case $st in
        2*)
            [ "$meth" = POST ] || [ "$meth" = PUT ] || continue
            # A conditional create that matched answers 200: not ours.
            [ "$meth" = POST ] && [ "${st%% *}" != 201 ] && continue
            loc=${loc##*/fhir/}
            loc=${loc%%/_history/*}
            sent=$T/cmp/$CMP_N.sent
            jq --argjson m "$map" --argjson i "$i" '.entry[$i].resource |
                walk(if type == "string" and $m[.] then $m[.] else . end)' \
                "$EX/$f" >"$sent"
            readback "$f" "$loc" "$label entry[$i] $meth" "$sent" \
                "$([ "$meth" = POST ] && echo true || echo false)" ||
                bad=1
            ;;
        4*)
            refused=$((refused + 1))
            details+="entry[$i] ${st%% *}: ${diag:-(no diagnostics)}; "
            [ "$refused" = 1 ] && refuse "$f" "${st%% *}" "$diag"
            check_explained "$label entry[$i] ($st)" "$diag" || bad=1
            ;;
        *)
            fail "$label entry[$i]: status '$st' --" \
                 "$(jq -c ".entry[$i].response" "$resp" | head -c 300)"
            bad=1
            ;;
        esac
    done < <(jq -r --slurpfile q "$EX/$f" '.entry | to_entries[] |
        [.key, (.value.response.status // ""),
         (.value.response.location // ""),
         ($q[0].entry[.key].request.method // ""),
         (.value.response.outcome |
          if .resourceType == "OperationOutcome" and
             (.issue[0].severity == "error" or .issue[0].severity == "fatal")
          then .issue[0].diagnostics // "" else "" end)] |
        map(tostring | gsub("[\u001f\n]"; " ")) | join("\u001f")' "$resp")
    [ "$refused" -gt 0 ] &&
        DETAIL[$f]="$refused of $n_req entries refused: ${details%; }"
    if [ "$bad" != 0 ]; then
        STATE[$f]=error
    elif [ "$refused" -gt 0 ]; then
        # A batch ran its other entries: sending it again would redo them.
        STATE[$f]=final-refused
        pass "$label: $STATUS, $refused of $n_req entries refused, explained"
    else
        STATE[$f]=created
        pass "$label: $STATUS, every entry done"
    fi
}

# Sends example $1 once and judges the answer.
send_one()
{
    local f=$1 rt=${RT[$1]} id=${ID[$1]} how label loc post
    if is_processed "$f"; then
        how="POST /fhir (${BTYPE[$f]})"
        post_json "" "$EX/$f" --max-time "$MAXT"
    elif [ -n "$id" ]; then
        how="PUT /fhir/$rt/$id"
        put_json "/$rt/$id" "$EX/$f" --max-time "$MAXT"
    else
        how="POST /fhir/$rt"
        post_json "/$rt" "$EX/$f" --max-time "$MAXT"
    fi
    HOW[$f]=$how
    WHEN[$f]=$PASSNO
    NSENT[$f]=$((${NSENT[$f]:-0} + 1))
    label="pass $PASSNO: $f: $how"
    case $STATUS in
    2??)
        if is_processed "$f"; then
            bundle_answer "$f" "$label"
            return
        fi
        if [ -n "$id" ]; then
            loc=$rt/$id
        else
            loc=$(hdr Location)
            loc=${loc##*/fhir/}
            loc=${loc%%/_history/*}
        fi
        post=false
        [ -n "$id" ] || post=true
        if readback "$f" "$loc" "$label: $STATUS" "$EX/$f" "$post" bytes; then
            STATE[$f]=created
        else
            STATE[$f]=error
        fi
        ;;
    401)
        # Not the example: the test's own credentials.
        fail "$label: 401, the test is not signed in -- $(_bodyhead)"
        refuse "$f" "$STATUS" "not signed in"
        STATE[$f]=error
        ;;
    4??)
        outcome_diag
        refuse "$f" "$STATUS" "${DIAGV:-(no diagnostics)}"
        if check_explained "$label: $STATUS" "$DIAGV"; then
            pass "$label: refused $STATUS, explained: ${DIAGV:0:150}"
        else
            STATE[$f]=error
        fi
        ;;
    000)
        fail "$label: no answer within $MAXT s: $(head -c 200 "$T/.curlerr")"
        refuse "$f" "$STATUS" "no answer"
        STATE[$f]=error
        ;;
    *)
        fail "$label: status $STATUS -- $(_bodyhead)"
        outcome_diag
        refuse "$f" "$STATUS" "${DIAGV:-(no diagnostics)}"
        STATE[$f]=error
        ;;
    esac
}

# ---- passes -----------------------------------------------------------------

declare -A P_WHAT P_SENT P_CREATED P_REFUSED
PASSNO=0

# NSTATE: how many examples are in state $1.
count_state()
{
    local f
    NSTATE=0
    for f in "${FILES[@]}"; do
        [ "${STATE[$f]:-}" = "$1" ] && NSTATE=$((NSTATE + 1))
    done
}

# Records pass $PASSNO over examples "$@": how many sent, created, refused.
end_pass()
{
    local created=0 f
    flush_readbacks
    for f in "$@"; do
        [ "${STATE[$f]}" = created ] && created=$((created + 1))
    done
    P_SENT[$PASSNO]=$#
    P_CREATED[$PASSNO]=$created
    P_REFUSED[$PASSNO]=$(($# - created))
    echo "--- pass $PASSNO (${P_WHAT[$PASSNO]}): sent $#, created $created," \
         "refused $(($# - created))"
}

# REF: the reference that diagnostics $1 say does not exist ("Type/id").
missing_ref()
{
    local re='"([A-Z][A-Za-z]+/[A-Za-z0-9.-]+)(/_history/[^"]*)?" does not exist'
    REF=
    [[ $1 =~ $re ]] && REF=${BASH_REMATCH[1]}
    return 0
}

# WAIT: the example that refused example $1 waits for, if that is
# refused too.
waits_for()
{
    WAIT=
    [ "${STATE[$1]:-}" = refused ] || return 0
    missing_ref "${DIAG[$1]:-}"
    [ -n "$REF" ] && [ "${STATE[${BYKEY[$REF]:-}]:-}" = refused ] &&
        WAIT=${BYKEY[$REF]}
    return 0
}

# Whether refused example $1 may do better now: one refused because
# '"Type/id" does not exist' once the example with that Type/id is created;
# any other refusal once more (pass 2), as it does not wait for anything.
worth_retrying()
{
    [ "${STATE[$1]}" = refused ] || return 1
    missing_ref "${DIAG[$1]:-}"
    if [ -z "$REF" ]; then
        [ "${NSENT[$1]}" -lt 2 ]
        return
    fi
    [ "${STATE[${BYKEY[$REF]:-}]:-}" = created ]
}

# Retry passes until one creates nothing.
retry_passes()
{
    local todo f
    while :; do
        todo=()
        for f in "${FILES[@]}"; do
            worth_retrying "$f" && todo+=("$f")
        done
        [ "${#todo[@]}" -gt 0 ] || return 0
        PASSNO=$((PASSNO + 1))
        P_WHAT[$PASSNO]="the refused that may do better now"
        for f in "${todo[@]}"; do
            send_one "$f"
        done
        end_pass "${todo[@]}"
        [ "${P_CREATED[$PASSNO]}" -gt 0 ] || return 0
    done
}

declare -A CYCLE_DONE
CYCLES=() # "members|status|outcome"

# Sends each cycle of refused examples that wait for each other as one
# transaction of PUTs. 0 if any was created.
break_cycles()
{
    local f cur members key sent=() m progress=1 tx i label ok
    for f in "${FILES[@]}"; do
        [ "${STATE[$f]}" = refused ] || continue
        members=("$f")
        cur=$f
        key=
        for ((i = 0; i < 50; i++)); do
            waits_for "$cur"
            [ -n "$WAIT" ] || break
            if [ "$WAIT" = "$f" ]; then
                key=$(printf '%s\n' "${members[@]}" | sort | tr '\n' ' ')
                key=${key% }
                break
            fi
            [[ " ${members[*]} " == *" $WAIT "* ]] && break
            members+=("$WAIT")
            cur=$WAIT
        done
        [ -n "$key" ] && [ -z "${CYCLE_DONE[$key]:-}" ] || continue
        CYCLE_DONE[$key]=1
        if [ "${#sent[@]}" = 0 ]; then
            PASSNO=$((PASSNO + 1))
            P_WHAT[$PASSNO]="reference cycles, one transaction each"
        fi
        # The transaction is assembled from the files' own bytes.
        tx=$T/cycle${#CYCLES[@]}.json
        {
            printf '{"resourceType":"Bundle","type":"transaction","entry":['
            i=0
            for m in $key; do
                [ "$i" -gt 0 ] && printf ','
                printf '{"fullUrl":"%s/%s/%s","resource":' \
                    "$URL" "${RT[$m]}" "${ID[$m]}"
                cat "$EX/$m"
                printf ',"request":{"method":"PUT","url":"%s/%s"}}' \
                    "${RT[$m]}" "${ID[$m]}"
                i=$((i + 1))
            done
            printf ']}'
        } >"$tx"
        label="pass $PASSNO: cycle $key: POST /fhir (transaction of PUTs)"
        post_json "" "$tx" --max-time "$MAXT"
        for m in $key; do
            sent+=("$m")
            WHEN[$m]=$PASSNO
            HOW[$m]="PUT in one transaction with: $key"
        done
        case $STATUS in
        2??)
            ok=1
            if ! jq -e '.type == "transaction-response" and
                    ([.entry[].response.status | tostring |
                      test("^20[01]")] | all)' "$BODY" >/dev/null 2>&1; then
                fail "$label: $STATUS but not every entry done --" \
                     "$(_bodyhead)"
                ok=0
            fi
            for m in $key; do
                if [ "$ok" = 1 ] && readback "$m" "${RT[$m]}/${ID[$m]}" \
                    "$label: $m" "$EX/$m" false bytes; then
                    STATE[$m]=created
                    progress=0
                else
                    STATE[$m]=error
                fi
            done
            [ "$ok" = 1 ] && pass "$label: $STATUS, every member reads back"
            CYCLES+=("$key|$STATUS|created")
            ;;
        4??)
            outcome_diag
            [ "$STATUS" = 401 ] &&
                fail "$label: 401, the test is not signed in"
            check_explained "$label: $STATUS" "$DIAGV" &&
                pass "$label: refused $STATUS, explained: ${DIAGV:0:150}"
            CYCLES+=("$key|$STATUS|${DIAGV:-(no diagnostics)}")
            ;;
        *)
            fail "$label: status $STATUS -- $(_bodyhead)"
            CYCLES+=("$key|$STATUS|(failed)")
            ;;
        esac
    done
    [ "${#sent[@]}" -gt 0 ] && end_pass "${sent[@]}"
    return $progress
}

http_start

PASSNO=1
P_WHAT[1]="every example, in name order"
for f in "${FILES[@]}"; do
    send_one "$f"
done
end_pass "${FILES[@]}"

while :; do
    retry_passes
    break_cycles || break
done

# Nothing refused was stored.
for f in "${FILES[@]}"; do
    case ${STATE[$f]} in
    refused | final-refused) ;;
    *) continue ;;
    esac
    if is_processed "$f"; then
        # What a refused transaction would have PUT by id.
        [ "${BTYPE[$f]}" = transaction ] || continue
        while read -r u; do
            req GET "/$u" --max-time "$MAXT"
            if [ "$STATUS" = 404 ] || [ "$STATUS" = 410 ]; then
                pass "$f refused: $u was not stored"
            else
                fail "$f refused, yet GET /$u answers $STATUS"
            fi
        done < <(jq -r '.entry[].request | select(.method == "PUT") | .url |
                        select(test("^[A-Z][A-Za-z]+/[A-Za-z0-9.-]+$"))' \
                     "$EX/$f")
        continue
    fi
    [ -n "${ID[$f]}" ] || continue
    req GET "/${RT[$f]}/${ID[$f]}" --max-time "$MAXT"
    if [ "$STATUS" = 404 ]; then
        pass "$f refused: nothing stored"
    elif [ "$STATUS" = 403 ] && [ "${CODE[$f]:-}" = 403 ]; then
        pass "$f refused by the access policy, which hides the type too"
    else
        fail "$f refused, yet GET /${RT[$f]}/${ID[$f]} answers $STATUS"
    fi
done

# ---- report -----------------------------------------------------------------

# Refusal groups: title and assessment.
declare -A G_TITLE G_NOTE GRP
G_ORDER=(policy ref-absent ref-bundled ref-in-tx ref-chain ref-self
         duplicate patient-rule url-slash operation search-param
         unknown-element invalid-value other)
G_TITLE[policy]="Refused by the access policy"
G_NOTE[policy]="Not about the example: the role of the test's API token may not write "
G_NOTE[policy]+="this type. The shipped policy (src/security/policy_default.json) puts "
G_NOTE[policy]+="Bundle in no group, so no role may store a Bundle resource; "
G_NOTE[policy]+="docs/policy.md notes that labels are not read from the entries of a "
G_NOTE[policy]+="stored Bundle, so storing one would let labelled entries past the "
G_NOTE[policy]+="label check."
G_TITLE[ref-absent]="Reference to a resource that no example provides"
G_NOTE[ref-absent]="Refused by design: a relative reference must name a stored resource "
G_NOTE[ref-absent]+="(README). The target's type is outside the selection (Location, "
G_NOTE[ref-absent]+="Specimen, ServiceRequest, Coverage, ...) or no example has that id."
G_TITLE[ref-bundled]="Reference to a resource found only inside a stored Bundle example"
G_NOTE[ref-bundled]="Refused by design: the target exists only as an entry of a "
G_NOTE[ref-bundled]+="collection/document Bundle example; storing a Bundle (were it allowed)"
G_NOTE[ref-bundled]+=" keeps it as one Bundle resource and does not create its entries."
G_TITLE[ref-in-tx]="Transaction entry referring to another entry by Type/id"
G_NOTE[ref-in-tx]="The reference \"Type/id\" matches the absolute fullUrl of another "
G_NOTE[ref-in-tx]+="entry of the same transaction (a POST, which gets a new id). R4 "
G_NOTE[ref-in-tx]+="resolves a relative reference in an entry whose fullUrl is a urn:uuid "
G_NOTE[ref-in-tx]+="against the server base, so refusing is defensible; some servers match"
G_NOTE[ref-in-tx]+=" it to the entry."
G_TITLE[ref-chain]="Reference to an example that is itself refused"
G_NOTE[ref-chain]="Follows from another refusal: the chain and its root are shown; these "
G_NOTE[ref-chain]+="would be created if the root were."
G_TITLE[ref-self]="Reference to itself"
G_NOTE[ref-self]="The example refers to its own Type/id; a plain PUT checks the "
G_NOTE[ref-self]+="reference before the resource exists."
G_TITLE[duplicate]="Possible duplicate patient"
G_NOTE[duplicate]="By design: registration refuses a Patient with the same name, birth "
G_NOTE[duplicate]+="date and gender as a stored one (docs/architecture.md, Patients and "
G_NOTE[duplicate]+="MRNs); these examples describe the same person. The diagnostics "
G_NOTE[duplicate]+="mention an explicit override, which only the CLI offers (--force)."
G_TITLE[patient-rule]="medrec's patient registration rules"
G_NOTE[patient-rule]="A deliberate medrec rule (docs/architecture.md: registration needs a "
G_NOTE[patient-rule]+="name or an identifier) that is stricter than R4, which requires "
G_NOTE[patient-rule]+="neither: the example is valid R4."
G_TITLE[url-slash]="Batch or transaction entry: request.url with a leading slash"
G_NOTE[url-slash]="Suspected medrec bug: the official examples write request.url as "
G_NOTE[url-slash]+="\"/Patient/example\"; it is meant relative to the base, and common "
G_NOTE[url-slash]+="servers accept it. Every entry of these batches is refused for it."
G_TITLE[operation]="Transaction entry that calls an operation (\$name)"
G_NOTE[operation]="Operations inside a Bundle are not supported; refusing is fair, though"
G_NOTE[operation]+=" the diagnostics could say so plainly."
G_TITLE[search-param]="Unsupported search parameter"
G_NOTE[search-param]="medrec refuses search parameters it does not support (strict "
G_NOTE[search-param]+="handling)."
G_TITLE[unknown-element]="Unknown element"
G_NOTE[unknown-element]="The validator does not know an element: check it against R4."
G_TITLE[invalid-value]="Invalid value"
G_NOTE[invalid-value]="The validator refuses a value: check it against R4."
G_TITLE[other]="Other"
G_NOTE[other]="Not classified: read the diagnostics."

# GROUP: the refusal group of example $1.
group_of()
{
    local f=$1 d=${DIAG[$1]:-}
    missing_ref "$d"
    if [ "${CODE[$f]:-}" = 403 ]; then
        GROUP=policy
    elif [ -n "$REF" ]; then
        if [ "$REF" = "${RT[$f]}/${ID[$f]}" ]; then
            GROUP=ref-self
        elif [ -n "${BYKEY[$REF]:-}" ]; then
            GROUP=ref-chain
        elif [ -n "${INBUNDLE[$REF]:-}" ]; then
            GROUP=ref-bundled
        elif is_processed "$f" && jq -e --arg r "/$REF" \
            'any(.entry[].fullUrl // ""; endswith($r))' "$EX/$f" \
            >/dev/null 2>&1; then
            GROUP=ref-in-tx
        else
            GROUP=ref-absent
        fi
    elif [[ $d == *"possible duplicate"* ]]; then
        GROUP=duplicate
    elif [[ $d == Patient:* || $d == Patient.* ]] &&
        [[ $d != *"unknown element"* && $d != *" must "* ]]; then
        GROUP=patient-rule
    elif [[ $d == *'got "/'* || $d == *'"/'*'" is not a resource type'* ]]; then
        GROUP=url-slash
    elif [[ $d == *'request.url'*'$'* ]]; then
        GROUP=operation
    elif [[ $d == *"is not a supported search parameter"* ]]; then
        GROUP=search-param
    elif [[ $d == *"unknown element"* ]]; then
        GROUP=unknown-element
    elif [[ $d == *"is not a valid"* || $d == *" must "* ||
        $d == *"required value set"* || $d == *"required element"* ]]; then
        GROUP=invalid-value
    else
        GROUP=other
    fi
}

# CHAIN: the refused examples that $1 waits for, and the root's refusal.
chain_of()
{
    local cur=$1 path= i
    for ((i = 0; i < 50; i++)); do
        waits_for "$cur"
        [ -n "$WAIT" ] && [ "$WAIT" != "$1" ] || break
        [[ " $path " == *" $WAIT "* ]] && break
        path+="${path:+ -> }$WAIT"
        cur=$WAIT
    done
    CHAIN="waits for $path; root: $cur, ${CODE[$cur]:-} ${DIAG[$cur]:-}"
}

# MD: $1 as text for a markdown table cell.
md()
{
    MD=${1//|/\\|}
    MD=${MD//$'\n'/ }
}

count_state created
n_created=$NSTATE
count_state error
n_error=$NSTATE
n_refused=$((${#FILES[@]} - n_created - n_error))
for f in "${FILES[@]}"; do
    [ "${STATE[$f]}" = created ] && continue
    group_of "$f"
    GRP[$f]=$GROUP
done
{
    echo "# The official FHIR R4 examples against medrec serve"
    echo
    echo "Generated by \`tests/e2e/fhir_examples.sh\` (CTest \`e2e/fhir_examples\`)"
    echo "from \`../shared/data/fhir/examples/\`: the HL7 package"
    echo "hl7.fhir.r4.examples 4.0.1 (see \`../shared/data/fhir/SOURCES.md\`)."
    echo "Regenerate this file with"
    echo "\`FHIR_EXAMPLES_REPORT=\$PWD/docs/fhir-examples.md ctest --test-dir build -R fhir_examples\`."
    echo
    echo "Each example is PUT to \`/fhir/Type/id\` (POSTed to \`/fhir/Type\` if it"
    echo "had no id); a Bundle of type transaction or batch is POSTed to \`/fhir\`"
    echo "and processed, any other Bundle is stored with PUT \`/fhir/Bundle/id\`."
    echo "Pass 1 sends every file in name order. Retry passes send the refused"
    echo "examples that may now do better (one refused for a missing reference"
    echo "once that example is created, any other refusal once more) until a"
    echo "pass creates nothing; then"
    echo "examples whose missing references form a cycle are sent together as"
    echo "one transaction of PUTs, and the retries start again. Every created"
    echo "example reads back equal apart from meta (and medrec's MRN on a"
    echo "Patient), number literals byte for byte; every refusal is a 4xx"
    echo "OperationOutcome whose diagnostics name the field and the reason, and"
    echo "stores nothing. No 5xx and no hang is allowed. Requests are signed in"
    echo "with the API token of tests/e2e/http_lib.sh (role"
    echo "${HTTP_ROLE:-records-technician})."
    echo
    echo "## Counts"
    echo
    echo "${#FILES[@]} resources in $(( ${#FILES[@]} + ${#SKIPPED[@]} )) JSON" \
         "files (not a resource, skipped: ${SKIPPED[*]:-none})."
    if [ "$n_error" -gt 0 ]; then
        echo "**Created: $n_created. Refused: $n_refused. Failed checks:" \
             "$n_error.**"
    else
        echo "**Created: $n_created. Refused: $n_refused.**"
    fi
    echo
    echo "| pass | sent | created | refused | what |"
    echo "|---|---|---|---|---|"
    for ((p = 1; p <= PASSNO; p++)); do
        echo "| $p | ${P_SENT[$p]:-0} | ${P_CREATED[$p]:-0} |" \
             "${P_REFUSED[$p]:-0} | ${P_WHAT[$p]:-} |"
    done
    echo
    echo "| resourceType | examples | created | refused |"
    echo "|---|---|---|---|"
    for t in $(for f in "${FILES[@]}"; do echo "${RT[$f]}"; done | sort -u); do
        a=0 c=0
        for f in "${FILES[@]}"; do
            [ "${RT[$f]}" = "$t" ] || continue
            a=$((a + 1))
            [ "${STATE[$f]}" = created ] && c=$((c + 1))
        done
        echo "| $t | $a | $c | $((a - c)) |"
    done
    echo
    echo "## Refused, by reason"
    for g in "${G_ORDER[@]}"; do
        rows=()
        for f in "${FILES[@]}"; do
            [ "${GRP[$f]:-}" = "$g" ] && rows+=("$f")
        done
        [ "${#rows[@]}" -gt 0 ] || continue
        echo
        echo "### ${G_TITLE[$g]} (${#rows[@]})"
        echo
        echo "${G_NOTE[$g]}"
        echo
        echo "| example | status | diagnostics |"
        echo "|---|---|---|"
        for f in "${rows[@]}"; do
            extra=
            if [ "$g" = ref-chain ]; then
                chain_of "$f"
                extra=" -- $CHAIN"
            elif [ "$g" = ref-bundled ]; then
                missing_ref "${DIAG[$f]}"
                extra=" -- an entry of ${INBUNDLE[$REF]}"
            fi
            d=${DIAG[$f]:-}
            [ -n "${DETAIL[$f]:-}" ] && d=${DETAIL[$f]}
            [ "${STATE[$f]}" = error ] && extra+=" (FAILED a check)"
            md "$d$extra"
            echo "| $f | ${CODE[$f]:-} | $MD |"
        done
    done
    if [ "${#CYCLES[@]}" -gt 0 ]; then
        echo
        echo "## Reference cycles sent as one transaction"
        echo
        echo "A transaction counts the Type/id its own entries PUT as existing, so"
        echo "it stores what no order of single PUTs can: examples that refer to"
        echo "each other, or to themselves."
        echo
        echo "| examples | status | outcome | alone, refused with |"
        echo "|---|---|---|---|"
        for c in "${CYCLES[@]}"; do
            IFS='|' read -r mem st out <<<"$c"
            alone=
            for m in $mem; do
                alone+="$m: ${CODE[$m]:-} ${DIAG[$m]:-}; "
            done
            md "$out"
            out=$MD
            md "${alone%; }"
            echo "| $mem | $st | $out | $MD |"
        done
    fi
    echo
    echo "## Created after a refusal"
    echo
    echo "| example | created in pass | first refused with |"
    echo "|---|---|---|"
    for f in "${FILES[@]}"; do
        [ "${STATE[$f]}" = created ] && [ -n "${FIRST[$f]:-}" ] || continue
        md "${FIRST[$f]}"
        echo "| $f | ${WHEN[$f]} | $MD |"
    done
} >"$T/report.md"

echo
cat "$T/report.md"
if mkdir -p "$(dirname "$REPORT")" && cp "$T/report.md" "$REPORT"; then
    echo
    echo "report written to $REPORT"
else
    fail "cannot write the report to $REPORT"
fi

summary
