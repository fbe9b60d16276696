#!/usr/bin/env bash
# Shared helpers for the HTTP (FHIR API) end-to-end tests: source it first.
#
#   . "$(dirname "$0")/http_lib.sh"
#
# Run by itself (CTest does, as e2e/http_lib) it checks its own helpers:
# a server starts, answers /metadata and stops cleanly.
#
# Gives: $MEDREC and $MR_SYNTH (programs under test, set by CTest, else the
# default build dir), $MEDREC_SHARED_DATA, $T (a fresh temporary directory,
# the working directory, removed on exit), and
#
#   http_start [ARGS...]      init $T/<n>.db and serve it on 127.0.0.1:0
#                             with ARGS; sets $URL (.../fhir), $DB, $SRV_PID
#   http_stop                 SIGTERM the server; checks it exits 0 and
#                             stops (servers still running at exit get
#                             the same, then SIGKILL if they hang)
#   req METHOD PATH [CURL_ARGS...]
#                             one request; PATH is relative to $URL or a
#                             full URL; sets $STATUS, $BODY (file) and
#                             $HDRS (file, CR stripped)
#   post_json PATH FILE [CURL_ARGS...] / put_json PATH FILE [...]
#                             POST/PUT FILE as application/fhir+json
#   hdr NAME                  a header of the last response ("" if none)
#   jqb FILTER [JQ_ARGS...]   jq -r FILTER over the last body
#   expect_status WANT MSG    the last status is WANT
#   expect_header NAME ERE MSG
#   expect_jq MSG FILTER [JQ_ARGS...]   jq -e FILTER holds for the body
#   expect_outcome MSG        body is an OperationOutcome with an error issue
#   expect_eq MSG WANT GOT    compare two strings
#   snapshot FILE             `medrec export` of $DB, one sorted line per
#                             resource (works while the server runs)
#   expect_same_store MSG BEFORE   store equals the snapshot BEFORE
#   pass / fail / skip MSG    record one check / skip the test (exit 77)
#   need_cmd NAME...          skip unless the commands exist
#   summary                   stop servers, print "<test>: N passed,
#                             M failed", exit 0 only if all passed
#
# Test data is synthetic ($MR_SYNTH) or read from $MEDREC_SHARED_DATA.

set -u

TEST_NAME=$(basename "$0" .sh)
HTTP_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_http_build="${MEDREC_SOURCE_DIR:-$HTTP_LIB_DIR/../..}/build"
MEDREC=${MEDREC:-$_http_build/medrec}
MR_SYNTH=${MR_SYNTH:-$_http_build/mr-synth}
MEDREC_SHARED_DATA=${MEDREC_SHARED_DATA:-}
export MEDREC MR_SYNTH MEDREC_SHARED_DATA
unset MEDREC_DB MEDREC_BUSY_TIMEOUT_MS

PASS=0
FAIL=0
STATUS=
URL=
DB=
SRV_PID=
_SRV_PIDS=()
_SRV_N=0
_SUMMARY_DONE=0

skip()
{
    echo "$TEST_NAME: SKIP: $*"
    _SUMMARY_DONE=1
    exit 77
}

pass()
{
    PASS=$((PASS + 1))
    echo "ok   $*"
}

fail()
{
    FAIL=$((FAIL + 1))
    echo "FAIL $*"
}

need_cmd()
{
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "needs $c"
    done
}

need_cmd curl jq
for _p in "$MEDREC" "$MR_SYNTH"; do
    [ -x "$_p" ] || skip "$_p is not built"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/medrec-$TEST_NAME.XXXXXX") ||
    { echo "$TEST_NAME: cannot create a temporary directory"; exit 1; }
BODY=$T/.body
HDRS=$T/.hdrs

# Whether process $1 runs (a zombie does not).
_alive()
{
    local s
    s=$(ps -o stat= -p "$1" 2>/dev/null)
    [ -n "$s" ] && [ "${s#Z}" = "$s" ]
}

# Waits up to $2 seconds for process $1 to exit; its status in $_RC.
_wait_exit()
{
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        if ! _alive "$pid"; then
            wait "$pid" 2>/dev/null
            _RC=$?
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Stops one server: SIGTERM, then SIGKILL if it has not gone after 30 s
# (a hang, not slowness: a clean stop takes milliseconds).
_stop_pid()
{
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    if _wait_exit "$pid" 30; then
        return "$_RC"
    fi
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
}

_http_cleanup()
{
    local rc=$? pid
    for pid in "${_SRV_PIDS[@]}"; do
        _stop_pid "$pid"
    done
    cd / && rm -rf "$T"
    if [ "$_SUMMARY_DONE" = 0 ]; then
        echo "$TEST_NAME: aborted (exit $rc) after $PASS passed," \
             "$FAIL failed"
        [ "$rc" = 0 ] && rc=1
    fi
    exit "$rc"
}
trap _http_cleanup EXIT
trap 'exit 130' INT TERM

cd "$T" || exit 1

http_start()
{
    local out i
    _SRV_N=$((_SRV_N + 1))
    DB=$T/srv$_SRV_N.db
    out=$T/srv$_SRV_N.out
    if ! "$MEDREC" init --db "$DB" >/dev/null 2>"$T/srv$_SRV_N.init"; then
        fail "medrec init: $(head -c 200 "$T/srv$_SRV_N.init")"
        exit 1
    fi
    # Every request is signed in: an API token with the role the test
    # asks for (records technicians keep the whole chart). req, post_json
    # and put_json send it; raw curl calls add -H "$AUTH".
    TOKEN=$("$MEDREC" token create "test$_SRV_N" --db "$DB" \
        --role "${HTTP_ROLE:-records-technician}" 2>"$T/srv$_SRV_N.init") || {
        fail "medrec token create: $(head -c 200 "$T/srv$_SRV_N.init")"
        exit 1
    }
    AUTH="Authorization: Bearer $TOKEN"
    "$MEDREC" serve --db "$DB" --http 127.0.0.1:0 "$@" \
        >"$out" 2>"$T/srv$_SRV_N.err" &
    SRV_PID=$!
    _SRV_PIDS+=("$SRV_PID")
    URL=
    # Generous limits: they only bound a hang, never judge speed.
    for ((i = 0; i < 600; i++)); do
        URL=$(head -n 1 "$out" 2>/dev/null)
        [ -n "$URL" ] && break
        if ! _alive "$SRV_PID"; then
            fail "server exited before listening:" \
                 "$(head -c 300 "$T/srv$_SRV_N.err")"
            exit 1
        fi
        sleep 0.1
    done
    if ! [[ $URL =~ ^http://127\.0\.0\.1:[0-9]+/fhir$ ]]; then
        fail "server printed no base URL (got '$URL')"
        exit 1
    fi
    for ((i = 0; i < 300; i++)); do
        curl -s -o /dev/null "$URL/metadata" && return 0
        sleep 0.1
    done
    fail "server at $URL does not answer"
    exit 1
}

http_stop()
{
    local pid=$SRV_PID rc i
    _stop_pid "$pid"
    rc=$?
    for i in "${!_SRV_PIDS[@]}"; do
        [ "${_SRV_PIDS[$i]}" = "$pid" ] && unset '_SRV_PIDS[i]'
    done
    if [ "$rc" = 0 ]; then
        pass "server stops on SIGTERM with exit 0"
    else
        fail "server on SIGTERM: exit $rc (want 0)" \
             "-- stderr: $(tail -n 2 "$T/srv$_SRV_N.err" | tr '\n' ' ')"
    fi
}

req()
{
    local method=$1 path=$2 url
    shift 2
    case $path in
    http://*) url=$path ;;
    *) url=$URL$path ;;
    esac
    # NOAUTH=1 req ... sends no credentials.
    local auth=()
    [ -z "${NOAUTH:-}" ] && [ -n "${AUTH:-}" ] && auth=(-H "$AUTH")
    STATUS=$(curl -s -S -X "$method" -o "$BODY" -D "$HDRS.raw" \
        -w '%{http_code}' "${auth[@]}" "$@" "$url" 2>"$T/.curlerr")
    [ -n "$STATUS" ] || STATUS=000
    if [ "$STATUS" = 000 ] && [ -n "$SRV_PID" ] && ! _alive "$SRV_PID"; then
        fail "$method $path: no answer: the server has exited --" \
             "$(tail -n 2 "$T/srv$_SRV_N.err" | tr '\n' ' ')"
        echo "$TEST_NAME: the server is gone; stopping" >&2
        exit 1
    fi
    tr -d '\r' <"$HDRS.raw" >"$HDRS" 2>/dev/null
    return 0
}

post_json()
{
    local path=$1 file=$2
    shift 2
    req POST "$path" -H 'Content-Type: application/fhir+json' \
        --data-binary "@$file" "$@"
}

put_json()
{
    local path=$1 file=$2
    shift 2
    req PUT "$path" -H 'Content-Type: application/fhir+json' \
        --data-binary "@$file" "$@"
}

hdr()
{
    # The last header block wins (curl writes one per response).
    awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" '
        /^HTTP\// { v = "" }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) {
              v = substr($0, i + 1); sub(/^[ \t]+/, "", v) } }
        END { print v }' "$HDRS"
}

jqb()
{
    local f=$1
    shift
    jq -r "$@" "$f" "$BODY" 2>/dev/null
}

_bodyhead()
{
    head -c 300 "$BODY" 2>/dev/null | tr '\n' ' '
}

expect_status()
{
    if [ "$STATUS" = "$1" ]; then
        pass "$2: status $1"
    else
        fail "$2: want status $1, got $STATUS -- $(_bodyhead)"
    fi
}

expect_header()
{
    local v
    v=$(hdr "$1")
    if [[ $v =~ $2 ]]; then
        pass "$3: $1 matches /$2/"
    else
        fail "$3: $1 should match /$2/, got '$v'"
    fi
}

expect_jq()
{
    local msg=$1 f=$2
    shift 2
    if jq -e "$@" "$f" "$BODY" >/dev/null 2>&1; then
        pass "$msg"
    else
        fail "$msg: jq '$f' does not hold for: $(_bodyhead)"
    fi
}

expect_outcome()
{
    expect_jq "$1: OperationOutcome with an error issue" \
        '.resourceType == "OperationOutcome" and
         (.issue | length > 0) and
         (.issue[0].severity == "error" or .issue[0].severity == "fatal")
         and (.issue[0].code | type == "string")'
}

expect_eq()
{
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1: want '$2', got '$3'"
    fi
}

snapshot()
{
    "$MEDREC" export --db "$DB" 2>"$T/.exporterr" | jq -cS . | sort >"$1"
    return "${PIPESTATUS[0]}"
}

expect_same_store()
{
    local after=$T/.snap.after
    if ! snapshot "$after"; then
        fail "$1: medrec export failed: $(head -c 200 "$T/.exporterr")"
    elif cmp -s "$2" "$after"; then
        pass "$1: store unchanged"
    else
        fail "$1: store changed: $(diff "$2" "$after" | head -n 3 |
            cut -c 1-200 | tr '\n' ' ')"
    fi
}

summary()
{
    local pid
    for pid in "${_SRV_PIDS[@]}"; do
        SRV_PID=$pid
        http_stop
    done
    echo "$TEST_NAME: $PASS passed, $FAIL failed"
    _SUMMARY_DONE=1
    [ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ] && exit 0
    exit 1
}

# Run by itself: check the helpers against a real server.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    http_start
    pass "server listens at $URL"
    req GET /metadata
    expect_status 200 "GET /metadata"
    expect_header Content-Type '^application/fhir\+json' "GET /metadata"
    expect_jq "metadata is a CapabilityStatement for FHIR 4.0.1" \
        '.resourceType == "CapabilityStatement" and .fhirVersion == "4.0.1"'
    req GET /Nosuchtype/1
    expect_status 404 "GET /Nosuchtype/1"
    expect_outcome "GET /Nosuchtype/1"
    snapshot "$T/empty.snap"
    expect_eq "a new database exports nothing" 0 "$(wc -l <"$T/empty.snap")"
    summary
fi
