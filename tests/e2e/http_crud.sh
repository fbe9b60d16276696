#!/usr/bin/env bash
# The FHIR REST interactions of `medrec serve`, end to end over HTTP:
# create (and conditional create), read, vread, update (If-Match, update as
# create), delete, instance history, search with paging, the error answers
# (each an OperationOutcome that changes nothing), many concurrent clients,
# and an access log that holds no query strings, ids or names.
. "$(dirname "$0")/http_lib.sh"

export TZ=UTC
ACCESS_LOG=$T/access.log
http_start --access-log "$ACCESS_LOG"
JSON='Content-Type: application/fhir+json'

# One synthetic patient per file: $T/p/<n>.json.
mkdir -p "$T/p" "$T/c"
"$MR_SYNTH" patients 5 --seed 3 --start 9000 >"$T/crud.ndjson"
split -l 1 -d -a 3 --additional-suffix=.json "$T/crud.ndjson" "$T/p/"

# Epoch seconds of an HTTP date or a FHIR instant.
epoch()
{
    date -u -d "$1" +%s 2>/dev/null || echo "bad date '$1'"
}

# --- capabilities ---------------------------------------------------------
req GET /metadata
expect_status 200 "GET /metadata"
expect_header Content-Type '^application/fhir\+json' "GET /metadata"
expect_jq "metadata: CapabilityStatement, FHIR 4.0.1, Patient and Observation" \
    '.resourceType == "CapabilityStatement" and .fhirVersion == "4.0.1" and
     ([.rest[0].resource[].type] | index("Patient") and index("Observation"))'

# --- create ---------------------------------------------------------------
post_json /Patient "$T/p/000.json"
expect_status 201 "POST /Patient"
expect_header Content-Type '^application/fhir\+json' "POST /Patient"
expect_header Location "^${URL//./\\.}/Patient/[A-Za-z0-9.-]+/_history/1\$" \
    "POST /Patient"
expect_header ETag '^W/"1"$' "POST /Patient"
expect_header Last-Modified \
    '^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$' \
    "POST /Patient"
PID1=$(jqb .id)
LM1=$(hdr Last-Modified)
loc=$(hdr Location)
expect_eq "Location names the created id" "$URL/Patient/$PID1/_history/1" "$loc"
expect_jq "created: meta.versionId 1 and an MRN (urn:medrec:mrn)" \
    '.meta.versionId == "1" and
     ([.identifier[] | select(.system == "urn:medrec:mrn")] | length == 1)'
expect_jq "created: content equals the sent resource (but id, meta, MRN)" \
    '(del(.id, .meta) | .identifier |= map(select(.system != "urn:medrec:mrn")))
     == ($s[0] | del(.id))' --slurpfile s "$T/p/000.json"
expect_eq "Last-Modified is meta.lastUpdated (to the second)" \
    "$(epoch "$(jqb .meta.lastUpdated)")" "$(epoch "$LM1")"
MRN1=$(jqb '.identifier[] | select(.system == "urn:medrec:mrn") | .value')
cp "$BODY" "$T/created1.json"

# --- read -----------------------------------------------------------------
req GET "/Patient/$PID1"
expect_status 200 "GET /Patient/id"
expect_header Content-Type '^application/fhir\+json' "GET /Patient/id"
expect_header ETag '^W/"1"$' "GET /Patient/id"
expect_eq "read: Last-Modified as at create" "$LM1" "$(hdr Last-Modified)"
expect_jq "read: the body is the created resource" '. == $c[0]' \
    --slurpfile c "$T/created1.json"

req GET /Patient/nosuchid123
expect_status 404 "GET unknown id"
expect_outcome "GET unknown id"

# --- update ---------------------------------------------------------------
jq -c '.telecom[0].value = "+1-555-000-0001" | .gender = "other"' \
    "$T/created1.json" >"$T/upd2.json"
put_json "/Patient/$PID1" "$T/upd2.json" -H 'If-Match: W/"1"'
expect_status 200 "PUT with current If-Match"
expect_header ETag '^W/"2"$' "PUT with current If-Match"
expect_header Content-Type '^application/fhir\+json' "PUT"
expect_jq "update: versionId 2, new content, MRN kept" \
    '.meta.versionId == "2" and .gender == "other" and
     .telecom[0].value == "+1-555-000-0001" and
     ([.identifier[] | select(.system == "urn:medrec:mrn") | .value]
      == [$mrn])' --arg mrn "$MRN1"

jq -c '.telecom[0].value = "+1-555-000-0002"' "$T/created1.json" \
    >"$T/upd3.json"
put_json "/Patient/$PID1" "$T/upd3.json" -H 'X-Reason: patient%20called%20%E2%80%94%20new%20phone' 
expect_status 200 "PUT without If-Match"
expect_header ETag '^W/"3"$' "PUT without If-Match"
expect_jq "update: versionId 3" '.meta.versionId == "3"'
cp "$BODY" "$T/v3.json"

snapshot "$T/before.snap"
jq -c '.telecom[0].value = "+1-555-999-9999"' "$T/created1.json" \
    >"$T/stale.json"
put_json "/Patient/$PID1" "$T/stale.json" -H 'If-Match: W/"2"'
expect_status 412 "PUT with stale If-Match"
expect_outcome "PUT with stale If-Match"
expect_same_store "PUT with stale If-Match" "$T/before.snap"
req GET "/Patient/$PID1"
expect_header ETag '^W/"3"$' "after the stale PUT, read"
expect_jq "after the stale PUT the resource is version 3 unchanged" \
    '. == $v[0]' --slurpfile v "$T/v3.json"

# --- vread ----------------------------------------------------------------
for v in 1 2 3; do
    req GET "/Patient/$PID1/_history/$v"
    expect_status 200 "vread version $v"
    expect_header ETag "^W/\"$v\"\$" "vread version $v"
    expect_jq "vread version $v: meta.versionId $v" \
        '.meta.versionId == $v and .id == $id' --arg v "$v" --arg id "$PID1"
done
req GET "/Patient/$PID1/_history/1"
expect_jq "vread 1 is the created resource" '. == $c[0]' \
    --slurpfile c "$T/created1.json"
req GET "/Patient/$PID1/_history/2"
expect_jq "vread 2 has the version 2 content" '.gender == "other"'
req GET "/Patient/$PID1/_history/9"
expect_status 404 "vread of a version that does not exist"
expect_outcome "vread of a version that does not exist"

# --- delete ---------------------------------------------------------------
req DELETE "/Patient/$PID1"
expect_status 204 "DELETE"
req GET "/Patient/$PID1"
expect_status 410 "read after delete"
expect_outcome "read after delete"
req GET "/Patient/$PID1/_history/3"
expect_status 200 "vread of an old version after delete"
expect_jq "vread after delete: the version 3 content" '. == $v[0]' \
    --slurpfile v "$T/v3.json"

# --- history --------------------------------------------------------------
req GET "/Patient/$PID1/_history"
expect_status 200 "history"
expect_header Content-Type '^application/fhir\+json' "history"
expect_jq "history: a history Bundle of 4 versions (total 4)" \
    '.resourceType == "Bundle" and .type == "history" and .total == 4 and
     (.entry | length == 4)'
expect_jq "history: versions 1..4, one entry each, the delete included" \
    '[.entry[].response.etag] | sort == ["W/\"1\"","W/\"2\"","W/\"3\"","W/\"4\""]'
expect_jq "history: the delete has no resource and request DELETE" \
    '[.entry[] | select(.request.method == "DELETE")] | length == 1 and
     (.[0].resource == null) and .[0].response.etag == "W/\"4\""'
expect_jq "history: the reason sent with X-Reason, and the author" \
    '[.entry[] | select(.response.etag == "W/\"3\"") | .request.extension[] |
      select(.url == "urn:medrec:reason") | .valueString] ==
     ["patient called \u2014 new phone"] and
     ([.entry[0].request.extension[] | select(.url == "urn:medrec:author")]
      | length == 1)'
expect_jq "history: live versions carry their resource" \
    '[.entry[] | select(.request.method != "DELETE") |
      .resource.meta.versionId == (.response.etag | ltrimstr("W/\"") |
                                   rtrimstr("\""))] | all'

# Instance history a page at a time: _count and the next link.
req GET "/Patient/$PID1/_history?_count=3"
expect_jq "instance history _count=3: 3 newest entries, total 4, a next link" \
    '.total == 4 and ([.entry[].response.etag] ==
     ["W/\"4\"","W/\"3\"","W/\"2\""]) and
     ([.link[] | select(.relation == "next")] | length == 1)'
req GET "$(jqb '.link[] | select(.relation == "next") | .url')"
expect_jq "instance history next page: version 1 and no further link" \
    '([.entry[].response.etag] == ["W/\"1\""]) and
     ([.link[] | select(.relation == "next")] | length == 0)'
req GET "/Patient/$PID1/_history?_since=3000-01-01T00:00:00Z"
expect_jq "instance history _since in the future: empty, total 0" \
    '.total == 0 and (.entry | length == 0)'
expect_error 404 "history of a resource that never existed" \
    GET /Patient/nosuchid123/_history
expect_error 400 "history with a malformed cursor" \
    GET "/Patient/$PID1/_history?_page_after=x"

# --- conditional create ---------------------------------------------------
SSN2=$(jq -r '.identifier[0].value' "$T/p/001.json")
COND="identifier=urn:example:synthetic-ssn|$SSN2"
post_json /Patient "$T/p/001.json" -H "If-None-Exist: $COND"
expect_status 201 "conditional create, no match"
PID2=$(jqb .id)
post_json /Patient "$T/p/001.json" -H "If-None-Exist: $COND"
expect_status 200 "conditional create, one match"
expect_eq "conditional create, one match: the existing id" "$PID2" "$(jqb .id)"
req GET "/Patient?identifier=urn:example:synthetic-ssn|$SSN2"
expect_jq "conditional create stored one resource" '.total == 1'

# --- update as create -----------------------------------------------------
jq -c '.id = "upsert-h5-1"' "$T/p/002.json" >"$T/upsert.json"
put_json /Patient/upsert-h5-1 "$T/upsert.json"
expect_status 201 "PUT of a new id (update as create)"
expect_header ETag '^W/"1"$' "update as create"
expect_header Location '/Patient/upsert-h5-1/_history/1$' "update as create"
expect_jq "update as create: id kept, versionId 1" \
    '.id == "upsert-h5-1" and .meta.versionId == "1"'
req GET /Patient/upsert-h5-1
expect_status 200 "read the update-as-create resource"

# --- errors: each an OperationOutcome, nothing changed --------------------
# expect_error STATUS MSG METHOD PATH [CURL_ARGS...]
expect_error()
{
    local want=$1 msg=$2
    shift 2
    snapshot "$T/before.snap"
    req "$@"
    expect_status "$want" "$msg"
    expect_header Content-Type '^application/fhir\+json' "$msg"
    expect_outcome "$msg"
    expect_same_store "$msg" "$T/before.snap"
}

expect_error 409 "POST a duplicate patient (same name, birthDate, gender)" \
    POST /Patient -H "$JSON" --data-binary @"$T/p/001.json"
printf '{"resourceType":"Patient","name":[{"family":"Broken"' >"$T/bad1.json"
expect_error 400 "POST malformed JSON" \
    POST /Patient -H "$JSON" --data-binary @"$T/bad1.json"
expect_error 400 "POST an Observation to /Patient" \
    POST /Patient -H "$JSON" --data-binary @<(jq -c \
    '.resourceType = "Observation"' "$T/p/003.json")
expect_error 400 "POST a Patient with an unknown element" \
    POST /Patient -H "$JSON" --data-binary @<(jq -c \
    '.favouriteColour = "blue"' "$T/p/003.json")
expect_error 400 "POST a Patient with a bad birthDate" \
    POST /Patient -H "$JSON" --data-binary @<(jq -c \
    '.birthDate = "1970-02-30"' "$T/p/003.json")
expect_error 400 "PUT whose body id differs from the URL" \
    PUT "/Patient/$PID2" -H "$JSON" --data-binary @<(jq -c \
    '.id = "someoneelse"' "$T/p/001.json")
expect_error 415 "POST with Content-Type text/plain" \
    POST /Patient -H 'Content-Type: text/plain' \
    --data-binary @"$T/p/003.json"
expect_error 415 "PUT with Content-Type application/xml" \
    PUT "/Patient/$PID2" -H 'Content-Type: application/xml' \
    --data-binary @"$T/p/001.json"
# 33 MiB: over the 32 MiB limit.
{
    printf '{"resourceType":"Patient","name":[{"family":"'
    head -c $((33 << 20)) /dev/zero | tr '\0' x
    printf '"}]}'
} >"$T/huge.json"
expect_error 413 "POST a 33 MiB body" \
    POST /Patient -H "$JSON" --data-binary @"$T/huge.json"
rm -f "$T/huge.json"
expect_error 404 "GET an unknown resource type" GET /Spaceship/abc
expect_error 404 "POST to an unknown resource type" \
    POST /Spaceship -H "$JSON" --data-binary '{"resourceType":"Spaceship"}'
expect_error 400 "search with a bad date" GET "/Patient?birthdate=notadate"
expect_error 400 "search with an unknown parameter under handling=strict" \
    GET "/Patient?favouritecolour=blue" -H "Prefer: handling=strict"
expect_error 400 "search with a bad _count" GET "/Patient?_count=-3"
expect_error 400 "Observation search with a bad date prefix" \
    GET "/Observation?date=zz2020-01-01"

# --- many concurrent clients ----------------------------------------------
"$MR_SYNTH" patients 50 --seed 11 --start 20000 >"$T/many.ndjson"
split -l 1 -d -a 3 --additional-suffix=.json "$T/many.ndjson" "$T/c/"
(cd "$T/c" && ls ./*.json | xargs -P 50 -I{} \
    curl -s -o {}.resp -w '%{http_code}\n' -X POST -H "$JSON" -H "$AUTH" \
    --data-binary @{} "$URL/Patient") >"$T/many.status"
expect_eq "50 parallel creates: 50 answers of 201" "50" \
    "$(grep -c '^201$' "$T/many.status")"
expect_eq "50 parallel creates: 50 distinct ids" "50" \
    "$(cat "$T"/c/*.resp | jq -r .id | sort -u | grep -c .)"
snapshot "$T/all.snap"
expect_eq "50 parallel creates: each stored exactly once" "$(jq -r \
    '.identifier[0].value' "$T/many.ndjson" | sort)" "$(jq -r \
    'select(.resourceType == "Patient") | .identifier[] |
     select(.system == "urn:example:synthetic-ssn") | .value' "$T/all.snap" |
    grep -Fx -f <(jq -r '.identifier[0].value' "$T/many.ndjson") | sort)"
expect_eq "50 parallel creates: stored ids are the answered ids" \
    "$(cat "$T"/c/*.resp | jq -r .id | sort)" \
    "$(jq -r 'select(.identifier[]?.value == $s[]) | .id' \
        --slurpfile s <(jq '.identifier[0].value' "$T/many.ndjson") \
        "$T/all.snap" | sort -u)"

# --- Patient search, against the exported store as the oracle -------------
jq -c 'select(.resourceType == "Patient")' "$T/all.snap" >"$T/patients.ndjson"
NPAT=$(grep -c . "$T/patients.ndjson")


# expect_search MSG QUERY JQ_SELECT: the search matches exactly the
# exported patients for which JQ_SELECT holds.
expect_search()
{
    local msg=$1 q=$2 sel=$3 got want
    req GET "/Patient?${q:+$q&}_count=1000"
    got=$(jqb '.entry[]?.resource.id' | sort)
    if [ "$STATUS" != 200 ]; then
        fail "search $q: status $STATUS -- $(_bodyhead)"
        return
    fi
    want=$(jq -r "select($sel) | .id" "$T/patients.ndjson" | sort)
    if [ "$got" = "$want" ] && [ "$(jqb .total)" = "$(grep -c . <<<"$want")" ]
    then
        pass "search $msg ($q): $(grep -c . <<<"$want") matches"
    else
        fail "search $msg ($q): want [$(echo $want)] total" \
             "$(grep -c . <<<"$want"), got [$(echo $got)] total $(jqb .total)"
    fi
}

P=$(sed -n 7p "$T/patients.ndjson")
FAM=$(jq -r '.name[0].family' <<<"$P")
GIV=$(jq -r '.name[0].given[0]' <<<"$P")
BD=$(jq -r .birthDate <<<"$P")
CITY=$(jq -r .address[0].city <<<"$P")
MRN=$(jq -r '.identifier[] | select(.system == "urn:medrec:mrn") | .value' \
    <<<"$P")
SSN=$(jq -r '.identifier[] | select(.system == "urn:example:synthetic-ssn") |
    .value' <<<"$P")
PID=$(jq -r .id <<<"$P")
PRE=$(echo "${FAM:0:3}" | tr 'A-Z' 'a-z')
fam_is() { echo "any(.name[]?.family // \"\"; ascii_downcase | startswith(\"$1\"))"; }

expect_search "by family" "family=$FAM" \
    "$(fam_is "$(echo "$FAM" | tr 'A-Z' 'a-z')")"
expect_search "by family prefix, any case" "family=$PRE" "$(fam_is "$PRE")"
expect_search "by given" "given=$GIV" \
    "any(.name[]?.given[]?; ascii_downcase | startswith(\"$(echo "$GIV" |
        tr 'A-Z' 'a-z')\"))"
expect_search "by name" "name=$FAM" "$(fam_is "$(echo "$FAM" |
    tr 'A-Z' 'a-z')") or any(.name[]?.given[]?; ascii_downcase |
    startswith(\"$(echo "$FAM" | tr 'A-Z' 'a-z')\"))"
expect_search "by gender" "gender=female" '.gender == "female"'
expect_search "by gender, either of two" "gender=male,other" \
    '.gender == "male" or .gender == "other"'
expect_search "by birthdate" "birthdate=$BD" ".birthDate == \"$BD\""
expect_search "by birthdate ge" "birthdate=ge1960-01-01" \
    '.birthDate >= "1960-01-01"'
expect_search "by birthdate lt" "birthdate=lt1940-01-01" \
    '.birthDate < "1940-01-01"'
expect_search "by birthdate range" "birthdate=ge1950-01-01&birthdate=le1979-12-31" \
    '.birthDate >= "1950-01-01" and .birthDate <= "1979-12-31"'
expect_search "by gender and birthdate" "gender=female&birthdate=ge1960-01-01" \
    '.gender == "female" and .birthDate >= "1960-01-01"'
expect_search "by MRN" "identifier=urn:medrec:mrn|$MRN" ".id == \"$PID\""
expect_search "by SSN identifier" "identifier=urn:example:synthetic-ssn|$SSN" \
    ".id == \"$PID\""
expect_search "by identifier value alone" "identifier=$SSN" ".id == \"$PID\""
expect_search "by _id" "_id=$PID" ".id == \"$PID\""
expect_search "by address-city" "address-city=$CITY" \
    "any(.address[]?.city // \"\"; ascii_downcase | startswith(\"$(echo \
    "$CITY" | tr 'A-Z' 'a-z')\"))"
expect_search "with no parameters: every patient" "" 'true'

# POST _search with a form body gives the same answer as GET.
req POST /Patient/_search -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "gender=female&birthdate=ge1960-01-01&_count=1000"
expect_status 200 "POST /Patient/_search"
expect_eq "POST _search matches GET" \
    "$(jq -r 'select(.gender == "female" and .birthDate >= "1960-01-01") |
        .id' "$T/patients.ndjson" | sort)" "$(jqb '.entry[].resource.id' |
    sort)"

# --- paging ---------------------------------------------------------------
# walk_pages QUERY COUNT: follow next links from the first page; checks
# every page and prints the ids seen, in order.
walk_pages()
{
    local url="$URL/Patient?${1:+$1&}_count=$2" n=0 total= t
    : >"$T/pages.ids"
    while [ -n "$url" ] && [ "$n" -lt 200 ]; do
        req GET "$url"
        if [ "$STATUS" != 200 ]; then
            fail "paging $1: page $n: status $STATUS -- $(_bodyhead)"
            return
        fi
        t=$(jqb .total)
        [ -z "$total" ] && total=$t
        [ "$t" = "$total" ] || fail "paging $1: page $n total $t, first $total"
        [ "$(jqb '.entry | length')" -le "$2" ] ||
            fail "paging $1: page $n has more than $2 entries"
        if [ "$n" -gt 0 ]; then
            [ -n "$(jqb '.link[] | select(.relation == "previous") | .url')" ] ||
                fail "paging $1: page $n has no previous link"
        else
            [ -z "$(jqb '.link[] | select(.relation == "previous") | .url')" ] ||
                fail "paging $1: the first page has a previous link"
        fi
        jqb '.entry[].resource.id' >>"$T/pages.ids"
        url=$(jqb '.link[] | select(.relation == "next") | .url')
        n=$((n + 1))
    done
    PAGES=$n
    PAGED_TOTAL=$total
}
PAGES=0
PAGED_TOTAL=

walk_pages "" 7
expect_eq "paging all patients by 7: each visited once" \
    "$(jq -r .id "$T/patients.ndjson" | sort)" "$(sort "$T/pages.ids")"
expect_eq "paging all patients by 7: no id twice" "" \
    "$(sort "$T/pages.ids" | uniq -d)"
expect_eq "paging all patients by 7: total" "$NPAT" "$PAGED_TOTAL"
expect_eq "paging all patients by 7: page count" \
    "$(((NPAT + 6) / 7))" "$PAGES"
walk_pages "gender=female" 4
expect_eq "paging female patients by 4: each visited once" \
    "$(jq -r 'select(.gender == "female") | .id' "$T/patients.ndjson" |
        sort)" "$(sort "$T/pages.ids" | uniq)"
expect_eq "paging female patients by 4: no id twice" "" \
    "$(sort "$T/pages.ids" | uniq -d)"

walk_pages "_sort=birthdate" 9
expect_eq "paging sorted by birthdate (offsets): each visited once" \
    "$(jq -r .id "$T/patients.ndjson" | sort)" "$(sort "$T/pages.ids")"

# Links stay stable while data changes: read page 1, delete a patient on
# it and add a new one, then follow next and previous. Nobody is skipped
# or shown twice (an offset would now skip one), the new patient comes at
# the end, and previous gives page 1 again without the deleted one.
req GET "/Patient?gender=female&_count=4"
page1=$(jqb '.entry[].resource.id')
next=$(jqb '.link[] | select(.relation == "next") | .url')
expect_jq "creation-order paging uses a cursor, not an offset" \
    '[.link[] | select(.relation == "next") | .url |
      test("_page_after=[0-9]+$")] == [true]'
gone=$(echo "$page1" | sed -n 2p)
req DELETE "/Patient/$gone"
expect_status 204 "paging: delete a patient of page 1"
cat >"$T/newf.json" <<'JSON'
{"resourceType":"Patient","name":[{"family":"Pagingnew","given":["Zoe"]}],
 "gender":"female","birthDate":"2001-02-03"}
JSON
post_json /Patient "$T/newf.json"
newid=$(jqb .id)
expect_status 201 "paging: create a patient meanwhile"
seen=$page1
url=$next
n=0
while [ -n "$url" ] && [ $n -lt 100 ]; do
    req GET "$url"
    [ $n = 0 ] && prev=$(jqb '.link[] | select(.relation == "previous") | .url')
    seen=$(printf '%s\n%s' "$seen" "$(jqb '.entry[].resource.id')")
    url=$(jqb '.link[] | select(.relation == "next") | .url')
    n=$((n + 1))
done
expect_eq "stable paging: every female patient once, the new one last" \
    "$( (jq -r 'select(.gender == "female") | .id' "$T/patients.ndjson";
         echo "$newid") | sort)" "$(echo "$seen" | grep . | sort)"
expect_eq "stable paging: the new patient comes last" "$newid" \
    "$(echo "$seen" | grep . | tail -n 1)"
req GET "$prev"
expect_eq "stable paging: previous is page 1 without the deleted patient" \
    "$(echo "$page1" | grep -v "^$gone\$")" "$(jqb '.entry[].resource.id')"
expect_jq "stable paging: page 1 (reached by previous) has no previous link" \
    '[.link[] | select(.relation == "previous")] | length == 0'
req GET "/Patient?_count=2&_page_after=1&_sort=birthdate"
expect_status 400 "a cursor with _sort is refused"
req GET "/Patient?_page_after=abc"
expect_status 400 "a malformed cursor is refused"

# --- Observations ---------------------------------------------------------
PA=$(sed -n 1p "$T/patients.ndjson" | jq -r .id)
PB=$(sed -n 2p "$T/patients.ndjson" | jq -r .id)
LOINC=http://loinc.org
# obs PATIENT CODE DATE VALUE: create one; its id in $OBS_ID.
obs()
{
    jq -nc --arg p "Patient/$1" --arg c "$2" --arg d "$3" --argjson v "$4" \
        '{resourceType: "Observation", status: "final",
          code: {coding: [{system: "http://loinc.org", code: $c}]},
          subject: {reference: $p}, effectiveDateTime: $d,
          valueQuantity: {value: $v, unit: "cm",
                          system: "http://unitsofmeasure.org", code: "cm"}}' \
        >"$T/obs.json"
    post_json /Observation "$T/obs.json"
    expect_status 201 "POST /Observation $2 $3"
    OBS_ID=$(jqb .id)
}
obs "$PA" 8302-2 2019-03-01T08:00:00Z 150.5
O1=$OBS_ID
obs "$PA" 8302-2 2021-06-15T09:30:00Z 171.25
O2=$OBS_ID
obs "$PA" 29463-7 2022-01-10 70.125
O3=$OBS_ID
obs "$PB" 8302-2 2020-02-02 180
O4=$OBS_ID
req GET "/Observation/$O2"
expect_jq "Observation stored with its decimal as sent" \
    '.valueQuantity.value == 171.25 and .subject.reference == $p' \
    --arg p "Patient/$PA"
grep -q '"value":171.25' "$BODY" && pass "Observation decimal 171.25 kept" ||
    fail "Observation decimal 171.25 not kept: $(_bodyhead)"

# expect_obs MSG QUERY IDS...: the Observation search matches exactly IDS.
expect_obs()
{
    local msg=$1 q=$2 got want
    shift 2
    want=$(printf '%s\n' "$@" | grep . | sort)
    req GET "/Observation?$q&_count=1000"
    got=$(jqb '.entry[]?.resource.id' | sort)
    if [ "$STATUS" = 200 ] && [ "$got" = "$want" ] &&
        [ "$(jqb .total)" = "$#" ]; then
        pass "Observation search $msg ($q): $# matches"
    else
        fail "Observation search $msg ($q): status $STATUS, want" \
             "[$(echo $want)], got [$(echo $got)] total $(jqb .total)"
    fi
}
expect_obs "by patient" "patient=Patient/$PA" "$O1" "$O2" "$O3"
expect_obs "by patient, bare id" "patient=$PA" "$O1" "$O2" "$O3"
expect_obs "by subject" "subject=Patient/$PB" "$O4"
expect_obs "by code system|code" "code=$LOINC|8302-2" "$O1" "$O2" "$O4"
expect_obs "by code alone" "code=29463-7" "$O3"
expect_obs "by code with another system" "code=http://snomed.info/sct|8302-2"
expect_obs "by date ge" "date=ge2020-01-01" "$O2" "$O3" "$O4"
expect_obs "by date lt" "date=lt2020-01-01" "$O1"
expect_obs "by day" "date=2021-06-15" "$O2"
expect_obs "by date range" "date=ge2020-01-01&date=lt2022-01-01" "$O2" "$O4"
expect_obs "by patient, code and date" \
    "patient=Patient/$PA&code=$LOINC|8302-2&date=ge2020-01-01" "$O2"
expect_obs "by value-quantity" "value-quantity=gt170" "$O2" "$O4"

# A possible duplicate registered anyway, once a clerk has checked that it
# is a different person: the header says so, the reason stays.
post_json /Patient "$T/p/001.json"
expect_status 409 "a possible duplicate is refused"
expect_jq "the refusal says how to override" \
    '.issue[0].diagnostics | test("X-Duplicate-Checked")'
post_json /Patient "$T/p/001.json" -H 'X-Duplicate-Checked: different-person' \
    -H 'X-Reason: twin%20sister%2C%20checked%20ID'
expect_status 201 "X-Duplicate-Checked: different-person registers it"

# --- the access log -------------------------------------------------------
snapshot "$T/final.snap"
if [ -s "$ACCESS_LOG" ]; then
    pass "the access log has lines ($(grep -c . "$ACCESS_LOG"))"
else
    fail "the access log is empty"
fi
if jq -e . "$ACCESS_LOG" >/dev/null 2>&1; then
    pass "every access log line is JSON"
else
    fail "the access log is not JSON lines: $(head -n 1 "$ACCESS_LOG")"
fi
expect_eq "access log statuses include 201 404 409 410 412 413 415" \
    "201 404 409 410 412 413 415" "$(jq -r .status "$ACCESS_LOG" |
    grep -xE '201|404|409|410|412|413|415' | sort -u | tr '\n' ' ' |
    sed 's/ $//')"
if grep -q '?' "$ACCESS_LOG" || grep -qF 'family=' "$ACCESS_LOG" ||
    grep -qF '_count' "$ACCESS_LOG"; then
    fail "access log holds a query string: $(grep -m1 -e '?' -e family= \
        -e _count "$ACCESS_LOG")"
else
    pass "access log: no query strings"
fi
{
    jq -r .id "$T/final.snap"
    echo "$PID1"
    echo upsert-h5-1
} | sort -u >"$T/ids.txt"
found=$(grep -oFf "$T/ids.txt" "$ACCESS_LOG" | head -n 3 | tr '\n' ' ')
expect_eq "access log: no resource ids ($(grep -c . "$T/ids.txt") checked)" \
    "" "$found"
jq -r 'select(.resourceType == "Patient") | .name[]? |
    (.family // empty), (.given[]? // empty)' "$T/final.snap" "$T/created1.json" |
    awk 'length($0) >= 3' | sort -u >"$T/names.txt"
jq -r '.identifier[]?.value' "$T/final.snap" | sort -u >>"$T/names.txt"
found=$(grep -oFf "$T/names.txt" "$ACCESS_LOG" | head -n 3 | tr '\n' ' ')
expect_eq "access log: no names or identifiers ($(grep -c . \
    "$T/names.txt") checked)" "" "$found"

http_stop
summary
