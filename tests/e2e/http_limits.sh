#!/usr/bin/env bash
# The server under awkward clients: a slow client is cut off at the stated
# time-out without holding up others, oversized headers are refused, and
# many connections at once are all answered.
. "$(dirname "$0")/http_lib.sh"

http_start --timeout 2
port=${URL#http://127.0.0.1:}
port=${port%%/*}

# --- a slow client: half a request line, then silence ----------------------
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n' >&3
# Others are served while it dawdles.
req GET /metadata
expect_status 200 "metadata answered while a slow client holds a connection"
t0=$(date +%s)
# The server must close the slow connection by itself (read sees EOF).
if timeout 20 cat <&3 >/dev/null; then
    t1=$(date +%s)
    if [ $((t1 - t0)) -le 15 ]; then
        pass "slow client cut off after $((t1 - t0)) s (time-out 2 s)"
    else
        fail "slow client held for $((t1 - t0)) s"
    fi
else
    fail "slow client connection still open after 20 s"
fi
exec 3<&- 3>&-

# --- headers over the stated limit (16 KiB) --------------------------------
big=$(head -c 20000 /dev/zero | tr '\0' 'a')
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" \
    "$URL/metadata")
case "$code" in
4*) pass "20 KB of headers refused with $code" ;;
*) fail "20 KB of headers: want a 4xx, got $code" ;;
esac
req GET /metadata
expect_status 200 "server still answers after the oversized request"

# --- many connections at once -----------------------------------------------
# A server with the default time-out: with 2 s, on a loaded machine (or
# under the sanitizers) a connection may fairly be cut while queued.
http_stop
http_start
seq 1 300 | xargs -P 100 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
    "$URL/metadata" >codes.txt
ok=$(grep -c '^200$' codes.txt)
expect_eq "300 requests over 100 parallel connections all answered 200" \
    300 "$ok"
seq 1 100 | xargs -P 50 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
    -X POST -H 'Content-Type: application/fhir+json' -H "$AUTH" \
    --data '{"resourceType":"Observation","status":"final","code":{"text":"limit test {}"}}' \
    "$URL/Observation" >codes2.txt
ok=$(grep -c '^201$' codes2.txt)
expect_eq "100 creates over 50 parallel connections all 201" 100 "$ok"
stored=$("$MEDREC" export --db "$DB" 2>/dev/null | grep -c '"limit test')
expect_eq "all 100 are stored" 100 "$stored"

http_stop
summary
