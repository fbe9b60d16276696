#!/usr/bin/env bash
# The MLLP transport of `medrec serve --mllp` (docs/hl7.md): ACKs in order
# with their own MSA-2 when frames are pipelined and when many connections
# send at once; half frames time out (logged, nothing applied); frames
# above the limit get AR and the connection is closed; bytes between
# frames are ignored; unknown senders get AR and are audited; MLLP over
# TLS with client certificates (openssl makes a throwaway CA); SIGTERM
# stops the server cleanly. Synthetic people only.
. "$(dirname "$0")/lib.sh"
need_cmd openssl jq timeout

DB=$T/feed.db
expect_exit 0 "$MEDREC" init --db "$DB"
expect_exit 0 "$MEDREC" hl7 sender add --db "$DB" --app REG --facility HOSP \
    --role registration-system
expect_exit 0 "$MEDREC" hl7 sender add --db "$DB" --app LAB --facility HOSP \
    --role lab-technician
expect_exit 0 "$MEDREC" hl7 sender add --db "$DB" --app SECURE --role \
    registration-system --tls-client secure-reg

# a04 CTRL MRN FAMILY: one ADT^A04 registering a made-up patient.
a04()
{
    printf 'MSH|^~\\&|%s|HOSP|MEDREC|HOSP|20261127100000+0100||ADT^A04^ADT_A01|%s|P|2.5.1\rEVN|A04|20261127100000+0100\rPID|1||%s^^^HOSP^MR||%s^Test||19800101|F\rPV1|1|O|CLINIC\r' \
        "${4:-REG}" "$1" "$2" "$3"
}

# serve NAME [OPTIONS...]: start the server, set $PORT (MLLP) and $SPID.
serve()
{
    local name=$1 i
    shift
    "$MEDREC" serve --db "$DB" --http 127.0.0.1:0 --mllp 127.0.0.1:0 "$@" \
        >"$T/$name.out" 2>"$T/$name.err" &
    SPID=$!
    _BG_PIDS+=("$SPID")
    for i in $(seq 1 100); do
        PORT=$(sed -n 's/^mllp listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
            "$T/$name.out")
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    fail "$name: server did not start: $(cat "$T/$name.err")"
    return 1
}

# msa FILE: the "code ctrl" pairs of the ACKs printed by hl7 send.
msa() { sed -n 's/^MSA|\([A-Z]*\)|\([^|]*\).*/\1 \2/p' "$1"; }

serve plain --mllp-frame-timeout 1 --mllp-max-frame 2048 || summary

# --- pipelining: three frames in one write, ACKs in order -------------
{
    printf '\v'; a04 P1 MRN-P1 Alpha; printf '\034\r'
    printf '\v'; a04 P2 MRN-P2 Bravo; printf '\034\r'
    printf '\v'; a04 P3 MRN-P3 Charlie; printf '\034\r'
} >"$T/pipe.bin"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$T/pipe.bin" >&3
acks=""
for i in 1 2 3; do
    IFS= read -r -t 10 -d $'\034' frame <&3 || break
    read -r -t 5 -n 1 _cr <&3
    acks="$acks$(printf '%s' "$frame" | tr '\r' '\n' |
        sed -n 's/^MSA|\([A-Z]*\)|\(.*\)/\1:\2/p') "
done
exec 3<&- 3>&-
expect_eq "pipelined frames: each ACK answers its own message, in order" \
    "AA:P1 AA:P2 AA:P3 " "$acks"

# --- many connections at once ----------------------------------------
for c in 1 2 3 4 5 6 7 8; do
    : >"$T/conc$c.hl7"
    for n in $(seq 1 15); do
        a04 "C$c-$n" "MRN-C$c-$n" "Conc$c" >>"$T/conc$c.hl7"
        printf '\r' >>"$T/conc$c.hl7"
    done
done
pids=()
for c in 1 2 3 4 5 6 7 8; do
    "$MEDREC" hl7 send --to "127.0.0.1:$PORT" "$T/conc$c.hl7" \
        >"$T/conc$c.out" 2>"$T/conc$c.err" &
    pids+=($!)
done
ok=0
for c in 1 2 3 4 5 6 7 8; do
    wait "${pids[$((c - 1))]}" && ok=$((ok + 1))
    want=$(for n in $(seq 1 15); do echo "AA C$c-$n"; done)
    got=$(msa "$T/conc$c.out")
    [ "$want" = "$got" ] || fail "connection $c: ACKs $got"
done
expect_eq "8 connections x 15 messages: every send exits 0" 8 "$ok"
pass "8 connections x 15 messages: every ACK is AA and names its own message, in order"
run "$MEDREC" hl7 messages --db "$DB" --json --status applied --limit 100000
expect_eq "120 + 3 messages applied once each" 123 \
    "$(grep -c '"status":"applied"' "$T/.out")"

# --- the same message twice: acknowledged again, applied once ---------
a04 DUP1 MRN-DUP Delta >"$T/dup.hl7"
run "$MEDREC" hl7 send --to "127.0.0.1:$PORT" "$T/dup.hl7" "$T/dup.hl7"
expect_eq "a repeated control id is acknowledged twice" "AA DUP1
AA DUP1" "$(msa "$T/.out")"
run "$MEDREC" hl7 messages --db "$DB" --json
expect_eq "... and logged once with repeats 1" "1" \
    "$(jq -s '[.[] | select(.control_id == "DUP1")] | length' "$T/.out")"
expect_eq "... repeats" "1" \
    "$(jq -s '.[] | select(.control_id == "DUP1") | .repeats' "$T/.out")"

# --- a half frame times out -------------------------------------------
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
{ printf '\v'; a04 HALF1 MRN-HALF Echo; } >&3
if IFS= read -r -t 10 -d $'\034' frame <&3; then
    fail "a half frame was answered: $frame"
else
    pass "a half frame gets no ACK and the server closes the connection"
fi
exec 3<&- 3>&-
sleep 0.2
check "the time-out is logged" grep -q "partial frame of" "$T/plain.err"
run "$MEDREC" hl7 messages --db "$DB" --json
expect_eq "the half message was not applied" 0 \
    "$(grep -c '"HALF1"' "$T/.out")"

# --- a frame above --mllp-max-frame -----------------------------------
{
    printf '\v'
    a04 BIG1 MRN-BIG Foxtrot
    head -c 3000 /dev/zero | tr '\0' 'x' | sed 's/^/NTE|1||/'
    printf '\r\034\r'
} >"$T/big.bin"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$T/big.bin" >&3 2>/dev/null
frame=""
IFS= read -r -t 10 -d $'\034' frame <&3
exec 3<&- 3>&-
case "$frame" in
*"MSA|AR|"*"larger than the limit of 2048 bytes"*)
    pass "a frame above --mllp-max-frame gets AR naming the limit" ;;
*) fail "oversize frame answered with: $(printf '%s' "$frame" | tr '\r' ' ')" ;;
esac
check "the refusal is logged" grep -q "frame larger than 2048" "$T/plain.err"

# --- bytes outside frames are ignored, the next frame is answered ------
{ printf 'noise\r\n'; printf '\v'; a04 NOISE1 MRN-NOISE Golf; printf '\034\r'; } \
    >"$T/noise.bin"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$T/noise.bin" >&3
frame=""
IFS= read -r -t 10 -d $'\034' frame <&3
exec 3<&- 3>&-
case "$frame" in
*"MSA|AA|NOISE1"*) pass "bytes before a frame are skipped; the frame is acknowledged" ;;
*) fail "after noise: $(printf '%s' "$frame" | tr '\r' ' ')" ;;
esac
check "the stray bytes are logged" grep -q "bytes outside a frame" "$T/plain.err"

# --- unknown senders --------------------------------------------------
a04 UNK1 MRN-UNK Hotel STRANGER >"$T/unk.hl7"
run "$MEDREC" hl7 send --to "127.0.0.1:$PORT" "$T/unk.hl7"
expect_eq "an unregistered sender gets AR" "AR UNK1" "$(msa "$T/.out")"
expect_stdout_contains "is not registered"
expect_eq "... and hl7 send exits 1" 1 "$RC"
run "$MEDREC" audit search --db "$DB" --action hl7-receive --json
check "... and the refusal is audited" \
    jq -e -s 'any(.[]; .outcome != "ok" and (.detail | test("STRANGER")))' -c \
    "$T/.out"
run "$MEDREC" hl7 messages --db "$DB" --status rejected --json
expect_eq "... logged as rejected, without its bytes" "null" \
    "$(jq -s '.[] | select(.control_id == "UNK1") | .message' "$T/.out")"

# A sender registered with --tls-client cannot send over plain MLLP.
a04 SEC1 MRN-SEC India SECURE >"$T/sec.hl7"
run "$MEDREC" hl7 send --to "127.0.0.1:$PORT" "$T/sec.hl7"
expect_eq "a sender bound to a client certificate is refused over plain MLLP" \
    "AR SEC1" "$(msa "$T/.out")"

kill -TERM "$SPID"
wait "$SPID"
expect_eq "SIGTERM stops the server with status 0" 0 "$?"

# --- MLLP over TLS with client certificates ---------------------------
P=$T/pki
mkdir -p "$P"
(
    cd "$P" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj "/CN=medrec test CA"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout srv.key -out srv.csr -subj "/CN=localhost"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >srv.ext
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out srv.pem -days 2 -extfile srv.ext
    for cn in secure-reg someone-else; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$cn.key" -out "$cn.csr" -subj "/CN=$cn"
        openssl x509 -req -in "$cn.csr" -CA ca.pem -CAkey ca.key \
            -CAcreateserial -out "$cn.pem" -days 2
    done
) >/dev/null 2>&1 || fail "openssl could not make the test certificates"

serve tls --mllp-tls-cert "$P/srv.pem" --mllp-tls-key "$P/srv.key" \
    --mllp-client-ca "$P/ca.pem" || summary
a04 SEC2 MRN-SEC2 Juliet SECURE >"$T/sec2.hl7"
run "$MEDREC" hl7 send --to "127.0.0.1:$PORT" --tls-ca "$P/ca.pem" \
    --tls-cert "$P/secure-reg.pem" --tls-key "$P/secure-reg.key" "$T/sec2.hl7"
expect_eq "TLS with the sender's client certificate: AA" "AA SEC2" \
    "$(msa "$T/.out")"
a04 SEC3 MRN-SEC3 Kilo SECURE >"$T/sec3.hl7"
run "$MEDREC" hl7 send --to "127.0.0.1:$PORT" --tls-ca "$P/ca.pem" \
    --tls-cert "$P/someone-else.pem" --tls-key "$P/someone-else.key" \
    "$T/sec3.hl7"
expect_eq "TLS with another client's certificate: AR" "AR SEC3" \
    "$(msa "$T/.out")"
run "$MEDREC" hl7 send --to "127.0.0.1:$PORT" --tls-ca "$P/ca.pem" \
    "$T/sec3.hl7"
expect_eq "TLS without a client certificate: no ACK, exit 1" "1" "$RC"
run timeout 20 "$MEDREC" hl7 send --to "127.0.0.1:$PORT" --timeout 3 \
    "$T/sec3.hl7"
expect_eq "plain MLLP to the TLS port: no ACK, exit 1" "1" "$RC"
check "a failed handshake is logged" grep -q "TLS handshake failed" \
    "$T/tls.err"
kill -TERM "$SPID"
wait "$SPID"

# Beyond loopback only with TLS.
run "$MEDREC" serve --db "$DB" --http 127.0.0.1:0 --mllp 0.0.0.0:0
expect_eq "plain MLLP on a non-loopback address is refused" 1 "$RC"
expect_stderr_contains "need TLS"

summary
