#!/usr/bin/env bash
# Who may see what, over a real server: sign-in (passwords, TOTP checked
# by oathtool, lockout that new connections do not reset, logout), roles
# and minimum necessary (types, hidden elements, sensitive labels, results
# held until released to the patient, the patient's own chart only),
# break-the-glass with its audit entries, the CLI under a registered
# user's role, the policy refusing bad edits, and TLS.
. "$(dirname "$0")/http_lib.sh"

need_cmd curl jq sqlite3 oathtool openssl

# run CMD...: $RC and $T/.err for the checks below.
run()
{
    RC=0
    "$@" >"$T/.out" 2>"$T/.err" || RC=$?
}
expect_stderr_contains()
{
    if grep -qi -- "$1" "$T/.err"; then
        pass "the message mentions \"$1\""
    else
        fail "the message should mention \"$1\": $(head -c 200 "$T/.err")"
    fi
}

http_start
M() { "$MEDREC" "$@" --db "$DB"; }
PW=Test-Passphrase-8841
for u in tech:records-technician clerk:admission-clerk lab:lab-technician \
    coder:coder aud:auditor doc:clinician adm:admin victim:clerk-x; do
    name=${u%%:*}
    role=${u#*:}
    [ "$role" = clerk-x ] && role=admission-clerk
    echo "$PW" | M user add "$name" --role "$role" --password-stdin \
        2>>"$T/users.err" || fail "user add $name: $(tail -n 1 "$T/users.err")"
done

# The chart of Pat Securi (pat-x) and one other patient; everything
# synthetic. Loaded with the command line (the file owner's rights).
S=http://terminology.hl7.org/CodeSystem/v3-ActCode
cat >"$T/chart.ndjson" <<JSON
{"resourceType":"Patient","id":"pat-x","name":[{"family":"Securi","given":["Pat"]}],"gender":"female","birthDate":"1970-01-01","photo":[{"contentType":"image/png","data":"AAAA"}]}
{"resourceType":"Patient","id":"pat-y","name":[{"family":"Other","given":["Oz"]}],"gender":"male","birthDate":"1971-02-02"}
{"resourceType":"Observation","id":"obs-held","status":"final","code":{"text":"potassium"},"subject":{"reference":"Patient/pat-x"},"valueQuantity":{"value":5.9,"unit":"mmol/L"}}
{"resourceType":"Observation","id":"obs-released","meta":{"tag":[{"system":"urn:medrec:release","code":"released"}]},"status":"final","code":{"text":"sodium"},"subject":{"reference":"Patient/pat-x"},"valueQuantity":{"value":140,"unit":"mmol/L"}}
{"resourceType":"Observation","id":"obs-y","meta":{"tag":[{"system":"urn:medrec:release","code":"released"}]},"status":"final","code":{"text":"sodium"},"subject":{"reference":"Patient/pat-y"}}
{"resourceType":"Condition","id":"cond-hiv","meta":{"security":[{"system":"$S","code":"HIV"}]},"subject":{"reference":"Patient/pat-x"},"code":{"text":"HIV infection"}}
{"resourceType":"Condition","id":"cond-plain","subject":{"reference":"Patient/pat-x"},"code":{"text":"hypertension"}}
{"resourceType":"DocumentReference","id":"note-1","status":"current","subject":{"reference":"Patient/pat-x"},"content":[{"attachment":{"contentType":"text/plain","data":"bm90ZQ=="}}]}
{"resourceType":"Encounter","id":"enc-1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/pat-x"},"reasonCode":[{"text":"chest pain"}]}
JSON
M import "$T/chart.ndjson" >/dev/null 2>"$T/imp.err" ||
    fail "import the chart: $(head -c 200 "$T/imp.err")"
echo "$PW" | M user add pat --role patient --patient Patient/pat-x \
    --password-stdin 2>>"$T/users.err" || fail "user add pat"

# login USER [CODE]: sets SES to the session token (empty on failure).
login()
{
    local body
    body=$(jq -nc --arg u "$1" --arg p "${PW_OVERRIDE:-$PW}" --arg c "${2:-}" \
        '{username: $u, password: $p} + (if $c == "" then {} else {code: $c} end)')
    NOAUTH=1 req POST "${URL%/fhir}/auth/login" -H 'Content-Type: application/json' \
        --data "$body"
    SES=$(jqb '.token // ""')
}
# as USER METHOD PATH [curl args]: a request with USER's session.
declare -A TOK
as()
{
    local u=$1
    shift
    AUTH="Authorization: Bearer ${TOK[$u]}" req "$@"
}

# --- signing in -----------------------------------------------------------
NOAUTH=1 req GET /Patient/pat-x
expect_status 401 "no credentials: 401"
expect_header WWW-Authenticate '^Bearer' "401 names the scheme"
NOAUTH=1 req GET /metadata
expect_status 200 "the CapabilityStatement needs no sign-in"
for u in tech clerk lab coder aud doc adm pat; do
    login "$u"
    TOK[$u]=$SES
    [ -n "$SES" ] || fail "login $u: $STATUS $(_bodyhead)"
done
login tech
expect_header Set-Cookie '^__Host-medrec=mrs_[^;]+; Path=/; Secure; HttpOnly; SameSite=Strict' \
    "the session cookie"
PW_OVERRIDE=wrong-password-123 login tech
expect_status 403 "a wrong password is refused"
expect_jq "the refusal does not say which part was wrong" \
    '.message == "invalid username, password or code"'
login nosuchuser
expect_status 403 "an unknown user gets the same answer"
expect_jq "same message for an unknown user" \
    '.message == "invalid username or password"'

# Lockout: each attempt on a new connection; five failures hold the
# account, and then even the right password is refused.
for i in 1 2 3 4 5; do PW_OVERRIDE=wrong-password-$i login victim; done
login victim
expect_status 429 "after 5 failures the right password is held back"
expect_jq "the hold says when to try again" '.message | test("try again in")'
M user unlock victim 2>/dev/null
login victim
expect_status 200 "an administrator's unlock ends the hold"

# Logout ends the session for good.
login tech
t2=$SES
AUTH="Authorization: Bearer $t2" req POST "${URL%/fhir}/auth/logout"
expect_status 204 "logout"
AUTH="Authorization: Bearer $t2" req GET /Patient/pat-x
expect_status 401 "a logged-out session is refused"
AUTH="Authorization: Bearer mrs_notarealsessiontoken0000000000000000000000" \
    req GET /Patient/pat-x
expect_status 401 "a made-up session is refused"

# --- TOTP (codes made by oathtool, an independent implementation) ---------
echo "$PW" | M user add mfa1 --role records-technician --password-stdin \
    2>/dev/null
uri=$(M user mfa enable mfa1 2>/dev/null)
secret=$(echo "$uri" | sed -n 's/.*secret=\([A-Z2-7]*\).*/\1/p')
[ -n "$secret" ] && pass "mfa enable prints an otpauth URI" ||
    fail "mfa enable: no secret in '$uri'"
login mfa1
expect_status 403 "with MFA on, a password alone is refused"
code=$(oathtool --totp -b "$secret")
login mfa1 "$code"
expect_status 200 "password and TOTP code sign in"
login mfa1 "$code"
expect_status 403 "the same code cannot be used twice"
login mfa1 000000
expect_status 403 "a wrong code is refused"

# --- roles: resource types ----------------------------------------------
as clerk GET /Patient/pat-x
expect_status 200 "admission clerk reads demographics"
as clerk GET /Observation/obs-released
expect_status 403 "admission clerk does not read results"
as clerk GET "/Observation?subject=Patient/pat-x"
expect_status 403 "admission clerk cannot search results"
as clerk GET /DocumentReference/note-1
expect_status 403 "admission clerk does not read notes"
as lab GET /Observation/obs-held
expect_status 200 "lab technician reads results"
as lab GET /DocumentReference/note-1
expect_status 403 "lab technician does not read notes"
as coder GET /DocumentReference/note-1
expect_status 200 "coder reads notes"
as coder GET /Observation/obs-held
expect_status 403 "coder does not read unrelated results"
as aud GET /Patient/pat-x
expect_status 403 "auditor sees no clinical content"
as adm GET /Patient/pat-x
expect_status 403 "admin sees no patient data"
as lab DELETE /Observation/obs-held
expect_status 403 "lab technician may not delete"
as tech GET /Observation/obs-held
expect_status 200 "records technician reads the whole chart"

# --- hidden elements ------------------------------------------------------
as clerk GET /Encounter/enc-1
expect_jq "admission clerk sees the encounter without its reason" \
    '.id == "enc-1" and (.reasonCode == null) and .status == "finished"'
jqb 'del(.meta) | .status = "finished"' >"$T/enc.json"
as clerk PUT /Encounter/enc-1 -H 'Content-Type: application/fhir+json' \
    --data-binary @"$T/enc.json"
expect_status 200 "admission clerk updates the encounter"
as tech GET /Encounter/enc-1
expect_jq "the reason the clerk could not see is kept" \
    '.reasonCode[0].text == "chest pain" and .meta.versionId == "2"'
jq '.reasonCode = [{"text": "made up"}]' "$T/enc.json" >"$T/enc2.json"
as clerk PUT /Encounter/enc-1 -H 'Content-Type: application/fhir+json' \
    --data-binary @"$T/enc2.json"
expect_status 403 "admission clerk cannot set an element hidden from them"
as coder GET /Patient/pat-x
expect_jq "coder reads the patient without the photo" '.photo == null'

# --- sensitive labels and break-the-glass --------------------------------
as tech GET /Condition/cond-hiv
expect_status 200 "records technician holds the HIV label"
as doc GET /Condition/cond-hiv
expect_status 403 "clinician: an HIV-labelled condition is restricted"
expect_jq "the refusal offers emergency access" \
    '.issue[0].diagnostics | test("emergency access")'
# A conditional write is searched as the writer: a record the clinician
# may not see is no match (no 403 that would reveal it), and stays as it was.
jq -nc '{resourceType: "Bundle", type: "transaction", entry: [
  {resource: {resourceType: "Condition", subject: {reference: "Patient/pat-x"},
              code: {text: "probe"}},
   request: {method: "PUT", url: "Condition?_id=cond-hiv"}}]}' >"$T/probe.json"
as doc POST "" -H 'Content-Type: application/fhir+json' \
    --data-binary @"$T/probe.json"
expect_jq "a conditional PUT does not find a restricted record" \
    '.entry[0].response.status == "201 Created"'
as tech GET /Condition/cond-hiv
expect_jq "and the restricted record is unchanged" \
    '.meta.versionId == "1" and .code.text == "HIV infection"'
as doc GET "/Condition?subject=Patient/pat-x"
expect_jq "restricted resources are not even counted in a search" \
    '.total == (.entry | length) and .total >= 1 and
     ([.entry[].resource.id] | index("cond-hiv") == null)'
as doc GET "/Patient?_id=pat-x&_revinclude=Condition:subject"
expect_jq "nor included" \
    '[.entry[].resource.id] | index("cond-hiv") == null'
as doc POST "${URL%/fhir}/auth/break-glass" -H 'Content-Type: application/json' \
    --data '{"patient":"Patient/pat-x","reason":"x"}'
expect_status 400 "break-the-glass needs a real reason"
as lab POST "${URL%/fhir}/auth/break-glass" -H 'Content-Type: application/json' \
    --data '{"patient":"Patient/pat-x","reason":"unconscious in the ED, no history"}'
expect_status 403 "only clinicians may break the glass"
as doc POST "${URL%/fhir}/auth/break-glass" -H 'Content-Type: application/json' \
    --data '{"patient":"Patient/pat-x","reason":"unconscious in the ED, no history"}'
expect_status 200 "clinician breaks the glass with a reason"
expect_jq "for a limited time" '.until > 0'
as doc GET /Condition/cond-hiv
expect_status 200 "clinician reads the restricted record in the emergency"
as doc GET /Patient/pat-x/\$everything
expect_jq "\$everything shows it too" \
    '[.entry[].resource.id] | index("cond-hiv") != null'
as doc GET /Condition/cond-plain
expect_eq "emergency accesses are audited as such, with the reason" yes \
    "$(sqlite3 "$DB" "SELECT CASE WHEN count(*) >= 2 THEN 'yes' ELSE 'no' END
        FROM audit WHERE actor = 'doc' AND detail LIKE
        'emergency: unconscious in the ED%'")"
expect_eq "the break-the-glass itself is audited" 1 \
    "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE actor = 'doc' AND
        action = 'break-glass' AND outcome = 'ok'")"
expect_eq "refusals are audited too" yes \
    "$(sqlite3 "$DB" "SELECT CASE WHEN count(*) > 0 THEN 'yes' ELSE 'no' END
        FROM audit WHERE actor = 'clerk' AND outcome = 'DENIED'")"

# --- the trail as FHIR AuditEvent (auditors only) --------------------------
as lab GET "/AuditEvent?patient=Patient/pat-x"
expect_status 403 "a lab technician does not read the audit trail"
as tech GET "/AuditEvent?patient=Patient/pat-x&_count=1"
expect_status 200 "a records technician sees who looked at a chart"
as aud GET "/AuditEvent?patient=Patient/pat-x&type=emergency"
expect_status 200 "the auditor lists emergency accesses to the chart"
expect_jq "as AuditEvents naming the clinician, the reason and the patient" \
    '.total >= 2 and (.entry | all(.resource.resourceType == "AuditEvent" and
      .resource.agent[0].who.display == "doc" and
      .resource.purposeOfEvent[0].coding[0].code == "ETREAT" and
      (.resource.entity | any(.what.reference == "Patient/pat-x"))))'
as aud GET "/AuditEvent?agent=clerk&_sort=-date&_count=3"
expect_jq "filtered by user, newest first, paged" \
    '(.entry | length) <= 3 and (.entry | all(.resource.agent[0].who.display == "clerk"))
     and ([.entry[].resource.recorded] | . == (sort | reverse))'
as aud GET "/AuditEvent?agent=clerk&_sort=outcome"
expect_jq "sortable by another field" \
    '[.entry[].resource.outcomeDesc] | . == sort'
as aud GET "/AuditEvent?agent=doc&action=read&date=ge2099-01-01"
expect_jq "no entries after a future date: an empty searchset" \
    '.total == 0 and (.entry | length == 0)'
M disclose Patient/pat-x --to "Synthetic Insurance Co" --purpose "claim review" \
    --what "discharge summary" >/dev/null 2>&1
as aud GET "/AuditEvent?patient=Patient/pat-x&type=disclosure"
expect_jq "disclosures as AuditEvents" \
    '.total == 1 and .entry[0].resource.type.code == "disclose"'

# --- the patient: own chart, released results only ----------------------
as pat GET /Patient/pat-x
expect_status 200 "patient reads their own record"
as pat GET /Patient/pat-y
expect_status 404 "another patient's record does not exist for them"
as pat GET /Observation/obs-held
expect_status 404 "a result not yet released is not shown"
as pat GET /Observation/obs-released
expect_status 200 "a released result is shown"
as pat GET /Observation
expect_jq "a patient's search: their released results only" \
    '.total == 1 and [.entry[].resource.id] == ["obs-released"]'
as pat GET /Patient
expect_jq "a patient's Patient search: only themselves" \
    '.total == 1 and .entry[0].resource.id == "pat-x"'
as pat GET /Patient/pat-y/\$everything
expect_status 404 "no \$everything of someone else"

# --- the command line -----------------------------------------------------
run "$MEDREC" patient show Patient/pat-x --db "$DB" --as aud
expect_eq "CLI as a registered auditor: refused like over HTTP" 1 "$RC"
expect_stderr_contains "may not read Patient"
run "$MEDREC" patient show Patient/pat-x --db "$DB" --as clerk
expect_eq "CLI as a registered admission clerk: allowed" 0 "$RC"
run "$MEDREC" user add eve --role admin --password-stdin --db "$DB" --as clerk \
    <<<"$PW"
expect_eq "a clerk may not add users" 1 "$RC"
run "$MEDREC" token create x1 --role clinician --db "$DB"
expect_eq "system tokens cannot carry the clinician role" 1 "$RC"
run "$MEDREC" user add weak1 --role coder --password-stdin --db "$DB" \
    <<<"password1234"
expect_eq "a breached password is refused" 1 "$RC"
expect_stderr_contains "password"
run "$MEDREC" user add short1 --role coder --password-stdin --db "$DB" \
    <<<"short-pw-1"
expect_eq "a short password is refused" 1 "$RC"

# --- the policy -----------------------------------------------------------
M policy show >"$T/policy.json" 2>/dev/null
jq '.roles.coder.allow[0].types[0] = "Obsrvation"' "$T/policy.json" \
    >"$T/bad.json"
run "$MEDREC" policy set "$T/bad.json" --db "$DB"
expect_eq "a policy naming an unknown type is refused" 1 "$RC"
expect_stderr_contains "Obsrvation"
run "$MEDREC" policy set "$T/policy.json" --db "$DB" --as clerk
expect_eq "a clerk may not change the policy" 1 "$RC"
run "$MEDREC" policy set "$T/policy.json" --db "$DB"
expect_eq "the policy file owner may replace it" 0 "$RC"
expect_eq "policy changes are audited" 1 \
    "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE action =
        'policy-change' AND outcome = 'ok'")"

# --- the network: TLS, or loopback only -----------------------------------
run "$MEDREC" serve --db "$DB" --http 0.0.0.0:0
expect_eq "beyond loopback without TLS: refused" 1 "$RC"
expect_stderr_contains "tls"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" \
    -out "$T/cert.pem" -days 1 -subj /CN=127.0.0.1 >/dev/null 2>&1
"$MEDREC" serve --db "$DB" --http 127.0.0.1:0 --tls-cert "$T/cert.pem" \
    --tls-key "$T/key.pem" --access-log "" >"$T/tls.out" 2>"$T/tls.err" &
tls_pid=$!
_SRV_PIDS+=("$tls_pid")
for ((i = 0; i < 100; i++)); do
    turl=$(head -n 1 "$T/tls.out" 2>/dev/null)
    [ -n "$turl" ] && break
    sleep 0.1
done
expect_eq "with TLS the server prints an https URL" yes \
    "$([[ $turl =~ ^https://127\.0\.0\.1:[0-9]+/fhir$ ]] && echo yes)"
code=$(curl -s -o "$T/tls.body" -w '%{http_code}' --cacert "$T/cert.pem" \
    -H "Authorization: Bearer ${TOK[tech]}" "$turl/metadata")
expect_eq "HTTPS answers with the certificate" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" \
    --tlsv1.1 --tls-max 1.1 "$turl/metadata")
[ "$code" != 200 ] && pass "TLS 1.1 is refused" ||
    fail "TLS 1.1 was accepted"
code=$(curl -s -o /dev/null -w '%{http_code}' "${turl/https/http}/metadata")
[ "$code" != 200 ] && pass "plain HTTP on the TLS port gets no answer" ||
    fail "plain HTTP on the TLS port answered 200"

# --- idle sessions end ----------------------------------------------------
"$MEDREC" serve --db "$DB" --http 127.0.0.1:0 --idle-timeout 2s \
    --access-log "" >"$T/idle.out" 2>"$T/idle.err" &
_SRV_PIDS+=("$!")
for ((i = 0; i < 100; i++)); do
    iurl=$(head -n 1 "$T/idle.out" 2>/dev/null)
    [ -n "$iurl" ] && break
    sleep 0.1
done
isess=$(curl -s -X POST -d "{\"username\":\"tech\",\"password\":\"$PW\"}" \
    "${iurl%/fhir}/auth/login" | jq -r .token)
code=$(curl -s -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $isess" "$iurl/Patient/pat-x")
expect_eq "a fresh session works" 200 "$code"
sleep 3
code=$(curl -s -o "$T/idle.body" -w '%{http_code}' \
    -H "Authorization: Bearer $isess" "$iurl/Patient/pat-x")
expect_eq "a session idle past the time-out gets 401" 401 "$code"
expect_eq "and is told so" yes \
    "$(jq -r '.issue[0].diagnostics | test("expired") | if . then "yes"
        else "no" end' "$T/idle.body")"

summary
