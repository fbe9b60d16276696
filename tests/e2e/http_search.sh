#!/usr/bin/env bash
# Search features over HTTP against a real server: _sort, _include and
# _revinclude, _summary=count and _elements, chained parameters, type and
# system history, Patient/$everything, Prefer: handling (lenient by default, strict on request), and
# injection attempts that must leave the store intact.
. "$(dirname "$0")/http_lib.sh"

need_cmd curl jq
data=${MEDREC_SHARED_DATA:-}/fhir/synthea
ls "$data"/*.json >/dev/null 2>&1 || skip "no Synthea data in $data"
files=$(ls "$data"/*.json | head -n 3)

http_start
# shellcheck disable=SC2086
"$MEDREC" import --db "$DB" $files >/dev/null 2>"$T/import.err" ||
    { fail "import: $(head -c 200 "$T/import.err")"; summary; }
before=$T/before.ndjson
snapshot "$before"

# -- _sort ---------------------------------------------------------------
req GET "/Patient?_sort=-birthdate"
expect_status 200 "_sort=-birthdate"
expect_jq "_sort=-birthdate is newest first" \
    '[.entry[].resource.birthDate] | . == (sort | reverse) and length == 3'
req GET "/Patient?_sort=birthdate,_id"
expect_jq "_sort=birthdate is oldest first" \
    '[.entry[].resource.birthDate] | . == sort'
req GET "/Patient?_sort=link"
expect_status 400 "_sort on a reference parameter is refused"
req GET "/Patient?_sort=nosuch" -H "Prefer: handling=strict"
expect_status 400 "_sort on an unknown parameter is refused (strict)"
req GET "/Patient?_sort=nosuch"
expect_status 400 "_sort on an unknown parameter is refused even when lenient"


# -- _include / _revinclude ----------------------------------------------
req GET "/Observation?_count=3&_include=Observation:subject"
expect_status 200 "_include"
expect_jq "_include adds the Patient once, mode include" \
    '[.entry[] | select(.search.mode == "include")] |
     length == 1 and .[0].resource.resourceType == "Patient"'
expect_jq "_include keeps the page size" \
    '[.entry[] | select(.search.mode == "match")] | length == 3'
req GET "/Patient?_count=1&_revinclude=Encounter:subject"
expect_jq "_revinclude adds Encounters of the patient" \
    '[.entry[] | select(.search.mode == "include") |
      .resource.resourceType] | length > 0 and all(. == "Encounter")'
req GET "/Observation?_include:iterate=Observation:subject"
expect_status 400 "_include:iterate is refused"
expect_outcome "_include:iterate gives an OperationOutcome"

# -- _total ----------------------------------------------------------------
req GET "/Observation?_total=none&_count=2&_sort=date"
expect_jq "_total=none: no total, a next link all the same" \
    '(has("total") | not) and (.entry | length == 2) and
     ([.link[] | select(.relation == "next")] | length == 1)'
req GET "/Observation?_total=accurate&_count=2"
expect_jq "_total=accurate: the total" '.total > 2'
req GET "/Observation?_total=maybe"
expect_status 400 "_total takes none, estimate or accurate"

# -- _summary=count, _elements -------------------------------------------
req GET "/Observation?_summary=count"
expect_jq "_summary=count: total, no entries" '.total > 0 and (has("entry") | not)'
req GET "/Patient?_elements=birthDate"
expect_jq "_elements keeps only the asked elements" \
    '.entry | all(.resource | has("birthDate") and (has("name") | not)
                 and has("id") and has("meta"))'
expect_jq "_elements tags SUBSETTED" \
    '.entry | all(.resource.meta.tag | any(.code == "SUBSETTED"))'
req GET "/Patient?_summary=true"
expect_status 400 "_summary=true is refused"

# -- chained parameters --------------------------------------------------
family=$(jq -r 'select(.resourceType == "Patient") | .name[0].family' \
    "$before" | head -n 1)
req GET "/Observation?subject:Patient.family=$family&_summary=count"
n_chain=$(jqb .total)
pid=$(jq -r --arg f "$family" 'select(.resourceType == "Patient" and
      .name[0].family == $f) | .id' "$before" | head -n 1)
req GET "/Observation?subject=Patient/$pid&_summary=count"
expect_eq "chain subject:Patient.family = subject=Patient/id" \
    "$(jqb .total)" "$n_chain"
req GET "/Observation?patient.family=$family&_summary=count"
expect_eq "chain patient.family (single target)" "$(jqb .total)" "$n_chain"
req GET "/Patient?general-practitioner.name=x"
expect_status 400 "an ambiguous chain is refused"
req GET "/Observation?subject.name.family=x"
expect_status 400 "two levels of chaining are refused"

# -- history -------------------------------------------------------------
req GET "/Patient/_history?_count=2"
expect_status 200 "type history"
expect_jq "type history: history Bundle of Patients, 2 entries" \
    '.type == "history" and (.entry | length == 2) and
     all(.entry[]; .resource.resourceType == "Patient" and
                   .response.status == "201")'
req GET "/_history?_since=2000-01-01T00:00:00Z&_count=5"
expect_jq "system history: newest first" \
    '[.entry[].response.lastModified] | . == (sort | reverse) and
     length == 5'
req GET "/_history?_since=3000-01-01T00:00:00Z"
expect_jq "_since in the future: nothing" '.total == 0'
req GET "/_history?_since=yesterday"
expect_status 400 "_since must be an instant"

# -- $everything ---------------------------------------------------------
req GET "/Patient/$pid/\$everything"
expect_status 200 "\$everything"
expect_jq "\$everything starts with the Patient" \
    '.entry[0].resource.resourceType == "Patient"'
want=$(jq -r --arg p "Patient/$pid" 'select(.subject.reference == $p or
       .patient.reference == $p) | .id' "$before" | wc -l)
expect_jq "\$everything holds the compartment" \
    '(.entry | length) > $w' --argjson w "$want"
expect_jq "\$everything has no duplicates" \
    '[.entry[].fullUrl] | length == (unique | length)'
req GET "/Patient/nosuchpatient/\$everything"
expect_status 404 "\$everything of a missing patient"

# -- Prefer: handling ----------------------------------------------------
req GET "/Patient?nosuch=1&gender=female"
expect_status 200 "unknown parameter ignored by default (lenient)"
expect_jq "default: an outcome entry warns of the ignored parameter" \
    '[.entry[] | select(.search.mode == "outcome")] | length == 1 and
     (.[0].resource.issue[0].severity == "warning") and
     (.[0].resource.issue[0].diagnostics | contains("nosuch"))'
expect_jq "default: the known parameter still filters" \
    '[.entry[] | select(.search.mode == "match") | .resource.gender] |
     all(. == "female")' 
req GET "/Patient?nosuch=1" -H "Prefer: handling=strict"
expect_status 400 "handling=strict refuses unknown parameters"
req GET "/Patient?nosuch=1&gender=female" -H "Prefer: handling=lenient"
expect_status 200 "handling=lenient ignores unknown parameters"
expect_jq "lenient: an outcome entry names the ignored parameter" \
    '.entry | any(.search.mode == "outcome" and
      (.resource.issue[0].diagnostics | contains("nosuch")))'

# -- injection -----------------------------------------------------------
req GET "/Patient?_sort=name;DROP%20TABLE%20resource" -H "Prefer: handling=strict"
expect_status 400 "_sort with SQL is refused"
req GET "/Patient?_sort=name;DROP%20TABLE%20resource"
expect_status 400 "_sort with SQL is refused when lenient too"
req GET "/Patient?_sort=name%27--" -H "Prefer: handling=strict"
expect_status 400 "_sort with a quote is refused"
req GET "/Patient?name=%27%20OR%201=1--&_summary=count"
expect_jq "a quote in a value matches nothing" '.total == 0'
req GET "/Observation?subject:Patient.name=x%27);DROP%20TABLE%20version;--"
expect_jq "a quote in a chained value matches nothing" '.total == 0'
req GET "/Patient?_elements=name,%27--"
expect_status 400 "_elements with a quote is refused"
expect_same_store "store intact after injection attempts" "$before"

summary
