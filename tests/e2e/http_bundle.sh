#!/usr/bin/env bash
# Batch and transaction Bundles over HTTP (POST /fhir): urn:uuid references
# rewritten, conditional references resolved, a transaction all or nothing,
# a batch entry by entry; then, when the shared Synthea bundles are at hand,
# all 30 stored and compared with what was sent (decimals byte for byte).
. "$(dirname "$0")/http_lib.sh"

export TZ=UTC
http_start

# A synthetic Patient; $1 family, $2 given, $3 birthDate, $4 identifier value.
patient()
{
    jq -nc --arg f "$1" --arg g "$2" --arg b "$3" --arg v "$4" \
        '{resourceType: "Patient", name: [{family: $f, given: [$g]}],
          gender: "female", birthDate: $b,
          identifier: [{system: "urn:example:h5-bundle", value: $v}]}'
}

# An Observation of $1 (a reference) on $2 (a dateTime) with value $3.
# jq would rewrite the number (0.10 -> 0.1), so it goes in as "@@0.10"
# and unquote puts the literal back into the finished Bundle.
observation()
{
    jq -nc --arg r "$1" --arg d "$2" --arg v "@@$3" \
        '{resourceType: "Observation", status: "final",
          code: {coding: [{system: "http://loinc.org", code: "8302-2"}]},
          subject: {reference: $r}, effectiveDateTime: $d,
          valueQuantity: {value: $v, unit: "cm",
                          system: "http://unitsofmeasure.org", code: "cm"}}'
}

# bundle TYPE ENTRY...: each ENTRY is "FULLURL|METHOD URL|RESOURCE".
bundle()
{
    local type=$1 e fu rq res
    shift
    for e in "$@"; do
        fu=${e%%|*}
        e=${e#*|}
        rq=${e%%|*}
        res=${e#*|}
        jq -nc --arg fu "$fu" --arg m "${rq%% *}" --arg u "${rq#* }" \
            --argjson r "$res" \
            '{resource: $r, request: {method: $m, url: $u}} +
             (if $fu == "" then {} else {fullUrl: $fu} end)'
    done | jq -sc --arg t "$type" \
        '{resourceType: "Bundle", type: $t, entry: .}' |
        sed -E 's/"@@(-?[0-9][0-9.eE+-]*)"/\1/g'
}

UP=urn:uuid:6f1d1f0e-8a57-4c39-9b1e-000000000001
UO1=urn:uuid:6f1d1f0e-8a57-4c39-9b1e-000000000002
UO2=urn:uuid:6f1d1f0e-8a57-4c39-9b1e-000000000003

# --- a transaction: Patient + Observations by urn:uuid --------------------
bundle transaction \
    "$UO1|POST Observation|$(observation "$UP" 2021-03-04T05:06:07Z 178.88023499217553)" \
    "$UP|POST Patient|$(patient Bundleton Ada 1961-07-08 tx-1)" \
    "$UO2|POST Observation|$(observation "$UP" 2022-03-04 0.10)" >"$T/tx.json"
post_json "" "$T/tx.json"
expect_status 200 "transaction of a Patient and 2 Observations"
expect_header Content-Type '^application/fhir\+json' "transaction"
expect_jq "transaction-response with 3 entries, each 201" \
    '.resourceType == "Bundle" and .type == "transaction-response" and
     (.entry | length == 3) and
     ([.entry[].response.status | startswith("201")] | all)'
expect_jq "response entries in request order" \
    '[.entry[].response.location | split("/")[0]] ==
     ["Observation", "Patient", "Observation"]'
TXP=$(jqb '.entry[1].response.location | split("/")[0:2] | join("/")')
TXO1=$(jqb '.entry[0].response.location | split("/")[0:2] | join("/")')
TXO2=$(jqb '.entry[2].response.location | split("/")[0:2] | join("/")')
req GET "/$TXP"
expect_status 200 "read the Patient the transaction made"
expect_jq "the Patient is the one sent" '.name[0].family == "Bundleton"'
for o in "$TXO1" "$TXO2"; do
    req GET "/$o"
    expect_status 200 "read $o"
    expect_jq "$o: subject rewritten to $TXP" '.subject.reference == $p' \
        --arg p "$TXP"
done
req GET "/$TXO1"
grep -qF '"value":178.88023499217553' "$BODY" ||
    grep -qF '"value": 178.88023499217553' "$BODY"
check_rc=$?
[ $check_rc = 0 ] && pass "decimal 178.88023499217553 kept byte for byte" ||
    fail "decimal 178.88023499217553 not kept: $(_bodyhead)"
req GET "/$TXO2"
grep -qE '"value": ?0\.10[,}]' "$BODY" &&
    pass "decimal 0.10 kept byte for byte (trailing zero)" ||
    fail "decimal 0.10 not kept byte for byte: $(_bodyhead)"
req GET "/Observation?subject=$TXP"
expect_jq "search by the rewritten reference finds both" '.total == 2'

# --- a transaction with one bad entry: nothing stored ---------------------
snapshot "$T/before.snap"
bundle transaction \
    "$UP|POST Patient|$(patient Rollback Bea 1962-01-02 tx-2)" \
    "$UO1|POST Observation|$(observation "$UP" 2021-03-04 170)" \
    "$UO2|POST Observation|$(observation "$UP" 2021-02-30 171)" \
    >"$T/txbad.json"
post_json "" "$T/txbad.json"
expect_status 400 "transaction whose entry 2 has a bad date"
expect_outcome "transaction with a bad entry"
expect_jq "the outcome names entry[2]" \
    '.issue[0].diagnostics | test("entry\\[2\\]")'
expect_same_store "transaction with a bad entry" "$T/before.snap"

# A failure only found while running (stale If-Match) rolls back too.
bundle transaction \
    "$UP|POST Patient|$(patient Rollback Cid 1963-01-02 tx-3)" \
    "|PUT $TXP|$(patient Bundleton Ada 1961-07-08 tx-1 |
        jq -c --arg id "${TXP#Patient/}" '.id = $id')" >"$T/txstale.json"
jq -c '.entry[1].request.ifMatch = "W/\"7\""' "$T/txstale.json" \
    >"$T/txstale2.json"
post_json "" "$T/txstale2.json"
expect_status 412 "transaction with a stale ifMatch on entry 1"
expect_outcome "transaction with a stale ifMatch"
expect_jq "the outcome names entry[1]" \
    '.issue[0].diagnostics | test("entry\\[1\\]")'
expect_same_store "transaction with a stale ifMatch" "$T/before.snap"

# A conditional reference that matches nothing fails the transaction.
bundle transaction \
    "$UP|POST Patient|$(patient Rollback Dee 1964-01-02 tx-4)" \
    "|POST Observation|$(observation \
        'Patient?identifier=urn:example:h5-bundle|no-such' 2021-03-04 1)" \
    >"$T/txnoref.json"
post_json "" "$T/txnoref.json"
case $STATUS in
4??) pass "transaction with an unresolvable conditional reference: $STATUS" ;;
*) fail "transaction with an unresolvable conditional reference: want 4xx," \
        "got $STATUS -- $(_bodyhead)" ;;
esac
expect_outcome "transaction with an unresolvable conditional reference"
expect_jq "the outcome names entry[1]" \
    '.issue[0].diagnostics | test("entry\\[1\\]")'
expect_same_store "unresolvable conditional reference" "$T/before.snap"

# --- a batch with one bad entry: the good ones stored ---------------------
# batch_check MSG BADSTATUS: the last answer is a batch-response whose
# entry 1 failed with BADSTATUS and entries 0 and 2 were created.
batch_check()
{
    local msg=$1 bad=$2 loc
    expect_status 200 "$msg"
    expect_jq "$msg: batch-response, 3 entries" \
        '.type == "batch-response" and (.entry | length == 3)'
    expect_jq "$msg: entries 0 and 2 are 201, entry 1 is $bad" \
        '[.entry[].response.status | split(" ")[0]] == ["201", $b, "201"]' \
        --arg b "$bad"
    expect_jq "$msg: entry 1 carries an OperationOutcome" \
        '.entry[1].response.outcome.resourceType == "OperationOutcome"'
    locs=$(jqb '(.entry[0].response.location // "-"),
                (.entry[2].response.location // "-")')
    i=0
    for loc in $locs; do
        req GET "/${loc%/_history/*}"
        [ "$loc" != - ] && [ "$STATUS" = 200 ] &&
            pass "$msg: entry $i stored" ||
            fail "$msg: entry $i not stored ($loc: $STATUS)"
        i=2
    done
}

bundle batch \
    "|POST Observation|$(observation "$TXP" 2020-01-01 160)" \
    "|POST Observation|$(observation "$TXP" 2020-02-30 161)" \
    "|POST Observation|$(observation "$TXP" 2020-03-01 162)" >"$T/batch1.json"
post_json "" "$T/batch1.json"
cp "$BODY" "$T/batch1.resp"
batch_check "batch whose entry 1 has a bad date" 400

bundle batch \
    "|POST Patient|$(patient Batchley Eve 1970-05-05 b-1)" \
    "|POST Patient|$(patient Bundleton Ada 1961-07-08 tx-dup)" \
    "|POST Patient|$(patient Batchley Fay 1971-06-06 b-2)" >"$T/batch2.json"
post_json "" "$T/batch2.json"
batch_check "batch whose entry 1 is a duplicate patient" 409

# A duplicate patient inside a transaction is refused as on POST /Patient.
snapshot "$T/before.snap"
bundle transaction \
    "|POST Patient|$(patient Batchley Gil 1972-07-07 b-3)" \
    "|POST Patient|$(patient Bundleton Ada 1961-07-08 tx-dup2)" >"$T/txdup.json"
post_json "" "$T/txdup.json"
expect_status 409 "transaction whose entry 1 is a duplicate patient"
expect_outcome "transaction with a duplicate patient"
expect_same_store "transaction with a duplicate patient" "$T/before.snap"

# --- conditional references -----------------------------------------------
bundle transaction \
    "|POST Observation|$(observation \
        'Patient?identifier=urn:example:h5-bundle|tx-1' 2023-01-01 181)" \
    >"$T/cond.json"
post_json "" "$T/cond.json"
expect_status 200 "transaction with a conditional reference"
loc=$(jqb '.entry[0].response.location // ""')
req GET "/${loc%/_history/*}"
expect_jq "conditional reference resolved to $TXP" \
    '.subject.reference == $p' --arg p "$TXP"

# --- conditional update and delete -----------------------------------------
# raw_bundle TYPE JSON-ENTRY...: entries given whole (GET and DELETE have
# no resource).
raw_bundle()
{
    local type=$1
    shift
    printf '%s\n' "$@" | jq -sc --arg t "$type" \
        '{resourceType: "Bundle", type: $t, entry: .}' |
        sed -E 's/"@@(-?[0-9][0-9.eE+-]*)"/\1/g'
}
CONDP='Patient?identifier=urn:example:h5-bundle|tx-1'
UNEW=urn:uuid:6f1d1f0e-8a57-4c39-9b1e-000000000009
raw_bundle transaction \
    "$(jq -nc --arg u "$CONDP" --argjson r "$(patient Bundleton Ada 1961-07-08 tx-1 |
        jq -c '.telecom = [{system: "phone", value: "+1-555-0142"}]')" \
        '{resource: $r, request: {method: "PUT", url: $u}}')" \
    "$(jq -nc --arg fu "$UNEW" \
        --argjson r "$(patient Condnew Bea 1977-01-02 cond-new-1)" \
        '{fullUrl: $fu, resource: $r, request: {method: "PUT",
          url: "Patient?identifier=urn:example:h5-bundle|cond-new-1"}}')" \
    "$(jq -nc --argjson r "$(observation "$UNEW" 2023-02-02 150)" \
        '{resource: $r, request: {method: "POST", url: "Observation"}}')" \
    >"$T/condput.json"
post_json "" "$T/condput.json"
expect_status 200 "transaction with conditional updates"
expect_jq "conditional PUT with one match updates that patient (version 2)" \
    '.entry[0].response.status == "200 OK" and
     (.entry[0].response.location | startswith($p + "/_history/2"))' \
    --arg p "$TXP"
expect_jq "conditional PUT with no match creates" \
    '.entry[1].response.status == "201 Created"'
NEWP=$(jqb '.entry[1].response.location' | sed 's#/_history/.*##')
loc=$(jqb '.entry[2].response.location')
req GET "/${loc%/_history/*}"
expect_jq "a reference to a conditional PUT's fullUrl resolves to its id" \
    '.subject.reference == $p' --arg p "$NEWP"
req GET "/$TXP"
expect_jq "conditional PUT stored the new content" \
    '.telecom[0].value == "+1-555-0142"'

snapshot "$T/before.snap"
raw_bundle transaction \
    '{"request":{"method":"DELETE","url":"Patient?gender=female"}}' \
    >"$T/conddel.json"
post_json "" "$T/conddel.json"
expect_status 412 "conditional DELETE matching several resources"
expect_outcome "conditional DELETE matching several resources"
expect_same_store "conditional DELETE matching several" "$T/before.snap"
raw_bundle transaction \
    '{"request":{"method":"DELETE","url":"Patient?nosuchparam=1"}}' \
    >"$T/conddel2.json"
post_json "" "$T/conddel2.json"
expect_status 400 "conditional DELETE with an unknown parameter is refused"
expect_same_store "conditional DELETE with an unknown parameter" \
    "$T/before.snap"
raw_bundle transaction \
    '{"request":{"method":"DELETE","url":"Patient?identifier=urn:example:h5-bundle|nobody"}}' \
    >"$T/conddel3.json"
post_json "" "$T/conddel3.json"
expect_status 200 "conditional DELETE matching nothing"
expect_same_store "conditional DELETE matching nothing" "$T/before.snap"

# --- GET entries ------------------------------------------------------------
raw_bundle batch \
    "{\"request\":{\"method\":\"GET\",\"url\":\"$TXP\"}}" \
    "{\"request\":{\"method\":\"GET\",\"url\":\"$TXP/_history/1\"}}" \
    "{\"request\":{\"method\":\"GET\",\"url\":\"Observation?subject=$TXP&_count=100\"}}" \
    '{"request":{"method":"GET","url":"Patient/nosuchpatient1"}}' \
    '{"request":{"method":"GET","url":"Patient/a/b/c"}}' >"$T/get.json"
post_json "" "$T/get.json"
expect_status 200 "batch of GET entries"
expect_jq "GET entry: a read with its etag" \
    '.entry[0].response.status == "200 OK" and .entry[0].resource.id == $id and
     .entry[0].response.etag == "W/\"2\""' --arg id "${TXP#Patient/}"
expect_jq "GET entry: a vread of version 1" \
    '.entry[1].resource.meta.versionId == "1" and
     (.entry[1].resource.telecom == null)'
expect_jq "GET entry: a search gives a searchset Bundle" \
    '.entry[2].resource.resourceType == "Bundle" and
     .entry[2].resource.type == "searchset" and
     .entry[2].resource.total >= 3 and
     (.entry[2].resource.entry | length) == .entry[2].resource.total and
     ([.entry[2].resource.entry[].resource.subject.reference] | unique == [$p])' \
    --arg p "$TXP"
expect_jq "GET entry of a missing resource: 404 with an outcome" \
    '(.entry[3].response.status | startswith("404")) and
     .entry[3].response.outcome.resourceType == "OperationOutcome"'
expect_jq "GET entry with a malformed url: 400" \
    '.entry[4].response.status | startswith("400")'
# In a transaction GETs run last, so they see the transaction's writes.
raw_bundle transaction \
    '{"request":{"method":"GET","url":"Patient?identifier=urn:example:h5-bundle|tx-get"}}' \
    "$(jq -nc --argjson r "$(patient Getley Cy 1980-08-08 tx-get)" \
        '{resource: $r, request: {method: "POST", url: "Patient"}}')" \
    >"$T/txget.json"
post_json "" "$T/txget.json"
expect_status 200 "transaction with a POST and a GET"
expect_jq "transaction GET runs after the POST and finds it" \
    '.entry[0].resource.total == 1 and
     .entry[0].resource.entry[0].resource.name[0].family == "Getley"'

# --- the Synthea bundles --------------------------------------------------
SYN=${MEDREC_SHARED_DATA:+$MEDREC_SHARED_DATA/fhir/synthea}
if [ -z "$SYN" ] || ! ls "$SYN"/*.json >/dev/null 2>&1; then
    echo "skip Synthea bundles: ${SYN:-\$MEDREC_SHARED_DATA/fhir/synthea}" \
         "is absent"
    summary
fi

# Number literals of JSON text on stdin (each value after a key), sorted.
numbers()
{
    LC_ALL=C grep -oE '"[[:space:]]*:[[:space:]]*-?[0-9][0-9.eE+-]*' |
        sed -E 's/^"[[:space:]]*:[[:space:]]*//' | LC_ALL=C sort
}

# "Type/id" of every line of an export on stdin, without parsing it all.
export_refs()
{
    LC_ALL=C awk -F'"' '{ if ($2 == "resourceType" && $6 == "id")
                              print $4 "/" $8; else print "?" }'
}

"$MEDREC" export --db "$DB" 2>/dev/null | export_refs | sort >"$T/refs.before"
nb=0
for f in "$SYN"/*.json; do
    nb=$((nb + 1))
    name=$(basename "$f" .json)
    name=${name%%_*-*}
    n=$(jq '.entry | length' "$f")
    post_json "" "$f"
    if [ "$STATUS" != 200 ]; then
        fail "Synthea $name: POST status $STATUS -- $(_bodyhead)"
        continue
    fi
    cp "$BODY" "$T/resp.json"
    expect_jq "Synthea $name: $n entries, each 201" \
        '(.entry | length == $n) and
         ([.entry[].response.status | startswith("201")] | all)' \
        --argjson n "$n"
    # fullUrl -> "Type/id", from the response entries (in request order).
    jq -c --slurpfile r "$T/resp.json" '
        [range(0; .entry | length) as $i |
         {key: .entry[$i].fullUrl,
          value: ($r[0].entry[$i].response.location // "" |
                  split("/")[0:2] | join("/"))}] | from_entries' "$f" \
        >"$T/map.json"
    "$MEDREC" export --db "$DB" 2>/dev/null >"$T/export.ndjson"
    export_refs <"$T/export.ndjson" | sort >"$T/refs.after"
    comm -13 "$T/refs.before" "$T/refs.after" >"$T/refs.new"
    jq -r '.[]' "$T/map.json" | sort >"$T/refs.answered"
    if cmp -s "$T/refs.answered" "$T/refs.new"; then
        pass "Synthea $name: $n new resources stored, as answered"
    else
        fail "Synthea $name: stored resources differ from the answer" \
             "(answered < > stored): $(diff "$T/refs.answered" \
             "$T/refs.new" | grep '^[<>]' | head -n 4 | tr '\n' ' ')"
    fi
    # The new resources' stored text, as exported.
    export_refs <"$T/export.ndjson" | paste -d ' ' - "$T/export.ndjson" |
        awk 'NR == FNR { new[$0] = 1; next }
             ($1 in new) { sub(/^[^ ]+ /, ""); print }' "$T/refs.new" - \
        >"$T/new.ndjson"
    if grep -q 'urn:uuid:' "$T/new.ndjson"; then
        fail "Synthea $name: a urn:uuid reference was not rewritten"
    else
        pass "Synthea $name: no urn:uuid left"
    fi
    # Every "Type/id" reference points to a stored resource.
    jq -r '.. | objects | .reference? // empty | strings |
        select(startswith("#") | not)' "$T/new.ndjson" | sort -u \
        >"$T/refs.used"
    expect_eq "Synthea $name: every reference resolves" "" \
        "$(comm -23 "$T/refs.used" "$T/refs.after" | head -n 3 | tr '\n' ' ')"
    # Decimals byte for byte: the same number literals went in as are stored.
    numbers <"$f" >"$T/num.sent"
    numbers <"$T/new.ndjson" >"$T/num.stored"
    if cmp -s "$T/num.sent" "$T/num.stored"; then
        pass "Synthea $name: all $(grep -c . "$T/num.sent") number" \
             "literals stored byte for byte"
    else
        fail "Synthea $name: number literals differ (sent < > stored):" \
             "$(diff "$T/num.sent" "$T/num.stored" | grep '^[<>]' |
                head -n 4 | tr '\n' ' ')"
    fi
    # A sample, read over HTTP, equals what was sent but id, meta, the MRN
    # and the rewritten references.
    # (jq starts slowly: one run picks the sample, one compares it.)
    rm -f "$T"/sample.*.json
    jq -r --argjson n "$n" '. as $m | ($m | keys_unsorted) as $k |
        [range(0; $n; ($n + 7) / 8 | floor), $n - 1] | unique[] as $i |
        "\($i) \($m[$k[$i]])"' "$T/map.json" >"$T/sample.list"
    while read -r i ref; do
        req GET "/$ref"
        if [ "$STATUS" = 200 ]; then
            cp "$BODY" "$T/sample.$i.json"
        else
            fail "Synthea $name: GET $ref (entry $i): status $STATUS"
        fi
    done <"$T/sample.list"
    jq -rn --slurpfile b "$f" --slurpfile m "$T/map.json" '
        inputs | (input_filename | split(".")[-2] | tonumber) as $i |
        ($b[0].entry[$i].resource | del(.id, .meta) |
         walk(if type == "object" and (.reference | type) == "string"
                 and $m[0][.reference] != null
              then .reference = $m[0][.reference] else . end)) as $want |
        (del(.id, .meta) |
         if .identifier then .identifier |= map(select(.system !=
             "urn:medrec:mrn")) else . end) as $have |
        if $have == $want then "same \($i)" else "differs \($i)" end' \
        "$T"/sample.*.json >"$T/sample.result"
    if ! grep -q '^same' "$T/sample.result"; then
        fail "Synthea $name: no sampled resource could be compared"
    elif grep -q '^differs' "$T/sample.result"; then
        fail "Synthea $name: entries differ from what was sent:" \
             "$(grep '^differs' "$T/sample.result" | tr '\n' ' ')"
    else
        pass "Synthea $name: $(grep -c '^same' "$T/sample.result") sampled" \
             "resources equal the sent ones"
    fi
    cp "$T/refs.after" "$T/refs.before"
done
expect_eq "all 30 Synthea bundles posted" 30 "$nb"

# The example decimal from the brief, read back over HTTP.
f=$(grep -l '178\.88023499217553' "$SYN"/*.json | head -n 1)
if [ -n "$f" ]; then
    req GET "/Observation?value-quantity=178.88023499217553&_count=100"
    if grep -qE '"value": ?178\.88023499217553[,}]' "$BODY"; then
        pass "Synthea: value 178.88023499217553 served byte for byte"
    else
        fail "Synthea: value 178.88023499217553 not served as sent:" \
             "$(_bodyhead)"
    fi
fi

summary
