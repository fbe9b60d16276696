#!/usr/bin/env bash
# Crash safety of the HL7 v2 MLLP feed: SIGKILL `medrec serve --mllp` at
# random points while 3-4 clients (`medrec hl7 send`) feed it ADT^A04
# registrations and ORU^R01 results, and record every AA they receive. The
# next round resends what was not acknowledged (as a real sender would),
# two messages that were, one message on two connections at once, and new
# ones. Then:
#   - every acknowledged message has exactly one row in the interface log,
#     status applied, and its effects exactly once (one Patient per A04
#     identifier, one DiagnosticReport per OBR-3, one Observation per OBX,
#     each at the version the log says its message wrote); a message never
#     acknowledged is there at most once, and wholly or not at all;
#   - `repeats` lies between the AAs received for a message minus one and
#     the times it was sent minus one;
#   - ACKs come back in order, one per message sent;
#   - after a clean restart the backlog is accepted and every message is
#     then there exactly once (FHIR identifier search and export agree);
#   - `medrec check` and `medrec audit verify` pass; no sanitizer reports.
# No timing is judged. All data is made up here.
#
#   HL7_KILL_SEED=N        reproduce a run (the seed is printed)
#   HL7_KILL_ROUNDS=N      kill points (default 22, at least 20 checked)
#   HL7_KILL_PER_CLIENT=N  messages per client per round (default 25)
#   HL7_KILL_KEEP=DIR      on failure, copy the work directory to DIR
. "$(dirname "$0")/lib.sh"

need_cmd jq curl

ROUNDS=${HL7_KILL_ROUNDS:-22}
PER_CLIENT=${HL7_KILL_PER_CLIENT:-25}
SEED=${HL7_KILL_SEED:-$(($(date +%s) % 32768))}
RANDOM=$SEED
echo "$TEST_NAME: seed $SEED (HL7_KILL_SEED=$SEED to repeat), $ROUNDS" \
     "rounds, $PER_CLIENT messages per client"

DB=$T/feed.db
expect_exit 0 "$MEDREC" init --db "$DB"
expect_exit 0 "$MEDREC" hl7 sender add --db "$DB" --app REG --facility HOSP \
    --role registration-system
expect_exit 0 "$MEDREC" hl7 sender add --db "$DB" --app LAB --facility HOSP \
    --role lab-technician
run "$MEDREC" token create hl7-kill --role records-technician --db "$DB"
TOKEN=$OUT
if [ "$RC" != 0 ] || [ -z "$TOKEN" ]; then
    fail "token create: $(_err1)"
fi
[ "$FAIL" = 0 ] || summary

mkdir -p msgs logs q
start_all=$(date +%s)
NOW=$(date -u +%Y%m%d%H%M%S)

# ---------------------------------------------------------------- messages
# Every message is a file msgs/<control id>; meta.tsv describes them:
#   A04 <ctl> <PID-3 value>
#   ORU <ctl> <PID-3 value> <glucose> <potassium> <OBR-3 filler number>
# Control ids are unique over both senders; each ORU's two values are
# unique among all ORUs, so its Observations can be told apart.
declare -A KIND ACKED AAS SENT GIVEN DOB SEX
ALL=()        # every control id, in the order made
ACKED_IDS=()  # control ids with at least one AA, in the order acked
REGISTERED=() # PID-3 values whose A04 was acknowledged in an earlier round
NA04=0
NORU=0
: >meta.tsv

# Three lower-case letters for n: distinct names for distinct patients.
letters()
{
    local a=abcdefghijklmnopqrstuvwxyz n=$1
    echo "${a:$((n / 676 % 26)):1}${a:$((n / 26 % 26)):1}${a:$((n % 26)):1}"
}

new_a04()
{
    local n=$((++NA04)) ctl pv
    printf -v ctl 'ADM%05d' "$n"
    printf -v pv 'KT%05d' "$n"
    GIVEN[$pv]=Pat$(letters "$n")
    printf -v "DOB[$pv]" '%04d%02d%02d' $((1940 + n % 60)) \
        $((1 + n / 60 % 12)) $((1 + n % 28))
    SEX[$pv]=$([ $((n % 2)) = 0 ] && echo F || echo M)
    printf '%s\r' \
        "MSH|^~\\&|REG|HOSP|MEDREC|MEDREC|$NOW||ADT^A04^ADT_A01|$ctl|P|2.5.1" \
        "EVN|A04|$NOW" \
        "PID|1||$pv^^^HOSP^MR||Killtest^${GIVEN[$pv]}^^^^^L||${DOB[$pv]}|${SEX[$pv]}|||$n Test Street^^Springfield^IL^62701" \
        "PV1|1|O" >"msgs/$ctl"
    KIND[$ctl]=A04
    ALL+=("$ctl")
    printf 'A04\t%s\t%s\n' "$ctl" "$pv" >>meta.tsv
}

new_oru()
{
    local n=$((++NORU)) ctl pv glu k
    printf -v ctl 'LAB%05d' "$n"
    pv=${REGISTERED[RANDOM % ${#REGISTERED[@]}]}
    glu=$((70 + n / 10)).$((n % 10))
    printf -v k '%d.%03d' $((3 + (500 + n) / 1000)) $(((500 + n) % 1000))
    printf '%s\r' \
        "MSH|^~\\&|LAB|HOSP|MEDREC|MEDREC|$NOW||ORU^R01^ORU_R01|$ctl|P|2.5.1" \
        "PID|1||$pv^^^HOSP^MR||Killtest^${GIVEN[$pv]}^^^^^L||${DOB[$pv]}|${SEX[$pv]}" \
        "OBR|1||FIL$n^HOSP|24320-4^Basic metabolic panel^LN|||$NOW|||||||||||||||$NOW|||F" \
        "OBX|1|NM|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||$glu|mg/dL^mg/dL^UCUM|70-99||||F|||$NOW" \
        "OBX|2|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||$k|mmol/L^mmol/L^UCUM|3.5-5.1||||F|||$NOW" \
        >"msgs/$ctl"
    KIND[$ctl]=ORU
    ALL+=("$ctl")
    printf 'ORU\t%s\t%s\t%s\t%s\tFIL%s\n' "$ctl" "$pv" "$glu" "$k" "$n" \
        >>meta.tsv
}

# ------------------------------------------------------------ processes
# Whether process $1 runs (a zombie does not).
alive()
{
    local s
    s=$(ps -o stat= -p "$1" 2>/dev/null)
    [ -n "$s" ] && [ "${s#Z}" = "$s" ]
}

# Sleep a random time in [lo, hi] milliseconds.
rsleep()
{
    local ms=$(($1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1)))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}

# start_server NAME: serve $DB on free ports; logs/NAME.out and .err. Sets
# SRV_PID, PORT (MLLP) and URL (FHIR base). Returns 1 if it did not come up.
start_server()
{
    local out=logs/$1.out err=logs/$1.err line i
    : >"$out"
    "$MEDREC" serve --db "$DB" --http 127.0.0.1:0 --mllp 127.0.0.1:0 \
        --access-log "" >"$out" 2>"$err" &
    SRV_PID=$!
    _BG_PIDS+=("$SRV_PID")
    line=
    # Generous: only bounds a hang (recovery under ASan can take a while).
    for ((i = 0; i < 6000; i++)); do
        line=$(grep -m 1 'mllp listening on' "$out")
        [ -n "$line" ] && break
        if ! alive "$SRV_PID"; then
            wait "$SRV_PID"
            fail "$1: server exited ($?) before listening:" \
                 "$(head -c 300 "$err")"
            return 1
        fi
        sleep 0.02
    done
    PORT=$(sed -n 's/.*mllp listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
        <<<"$line")
    URL=$(grep -m 1 -o 'https\?://127\.0\.0\.1:[0-9]*/fhir' "$out")
    if [ -z "$PORT" ] || [ "$PORT" = 0 ]; then
        fail "$1: no 'mllp listening on 127.0.0.1:PORT' line: $(head -c 300 \
"$out")"
        kill -KILL "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
        return 1
    fi
    return 0
}

# wait_pids SECONDS PID...: wait for them to exit (killing any still
# running after SECONDS); their exit statuses in WAIT_RC (same order).
# Returns 1 if one had to be killed.
wait_pids()
{
    local limit=$(($1 * 50)) i pid hung=0
    shift
    WAIT_RC=()
    for pid in "$@"; do
        for ((i = 0; i < limit; i++)); do
            alive "$pid" || break
            sleep 0.02
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null
            hung=1
        fi
        wait "$pid" 2>/dev/null
        WAIT_RC+=("$?")
    done
    return "$hung"
}

# --------------------------------------------------------------- ACKs
# parse_acks NAME NCLIENTS: read logs/NAME.c<i>.out, check each client's
# ACKs answer its messages in order, and record the AAs.
NON_AA=0
parse_acks()
{
    local name=$1 nc=$2 i code ctl sent got bad
    for ((i = 0; i < nc; i++)); do
        tr -d '\r' <"logs/$name.c$i.out" |
            sed -n 's/^MSA|\([^|]*\)|\([^|]*\).*/\1 \2/p' >"logs/$name.c$i.msa"
        # The control ids ACKed, in order, must be the first ones sent.
        got=$(cut -d' ' -f2 "logs/$name.c$i.msa")
        sent=$(head -n "$(wc -l <"logs/$name.c$i.msa")" "logs/$name.c$i.ids")
        if [ "$got" != "$sent" ]; then
            fail "$name client $i: the ACKs do not answer the messages in" \
                 "order: sent $(echo "$sent" | head -n 5 | tr '\n' ' ')..." \
                 "acked $(echo "$got" | head -n 5 | tr '\n' ' ')..."
        fi
        # Every ACK is one block: segments, then an empty line.
        bad=$(grep -c '^MSA|' "logs/$name.c$i.out")
        if [ "$bad" != "$(grep -c '^$' "logs/$name.c$i.out")" ]; then
            fail "$name client $i: $bad MSA segments but" \
                 "$(grep -c '^$' "logs/$name.c$i.out") empty lines"
        fi
        while read -r code ctl; do
            if [ "$code" = AA ]; then
                if [ -z "${ACKED[$ctl]:-}" ]; then
                    ACKED[$ctl]=1
                    ACKED_IDS+=("$ctl")
                fi
                AAS[$ctl]=$((${AAS[$ctl]:-0} + 1))
            else
                NON_AA=$((NON_AA + 1))
                fail "$name client $i: $code for $ctl (want AA): $(tr -d '\r' \
<"logs/$name.c$i.out" | grep -A 3 "^MSA|$code|$ctl" | grep '^ERR' |
                    head -n 1 | cut -c 1-200)"
            fi
        done <"logs/$name.c$i.msa"
    done
}

# run_clients NAME NCLIENTS: start `hl7 send` for logs/NAME.c<i>.hl7 in
# the background; their pids in CLIENT_PIDS.
run_clients()
{
    local i
    CLIENT_PIDS=()
    for ((i = 0; i < $2; i++)); do
        : >"logs/$1.c$i.out"
        "$MEDREC" hl7 send --to "127.0.0.1:$PORT" "logs/$1.c$i.hl7" \
            >"logs/$1.c$i.out" 2>"logs/$1.c$i.err" &
        CLIENT_PIDS+=("$!")
        _BG_PIDS+=("$!")
    done
}

# ---------------------------------------------------------------- rounds
KILLS=0
MIDSTREAM=0 # kills with at least one message sent but not acknowledged
UNSEEN=0    # applied messages whose AA no client received
DUPS_SENT=0

for ((r = 1; r <= ROUNDS; r++)); do
    name=r$(printf '%02d' "$r")
    nc=$((3 + RANDOM % 2))
    # What this round sends: every message not yet acknowledged, two that
    # were (a sender that missed the ACK), then new ones.
    list=()
    for ctl in "${ALL[@]}"; do
        [ -z "${ACKED[$ctl]:-}" ] && list+=("$ctl")
    done
    if [ "${#ACKED_IDS[@]}" -gt 0 ]; then
        for k in 1 2; do
            list+=("${ACKED_IDS[RANDOM % ${#ACKED_IDS[@]}]}")
            DUPS_SENT=$((DUPS_SENT + 1))
        done
    fi
    for ((k = ${#list[@]}; k < nc * PER_CLIENT; k++)); do
        if [ "${#REGISTERED[@]}" -gt 0 ] && [ $((RANDOM % 2)) = 0 ]; then
            new_oru
        else
            new_a04
        fi
        list+=("${ALL[-1]}")
    done
    # Shuffle, deal to the clients, and send one message from two clients
    # at once (a sender retrying on a new connection).
    for ((k = ${#list[@]} - 1; k > 0; k--)); do
        j=$((RANDOM % (k + 1)))
        tmp=${list[k]} list[k]=${list[j]} list[j]=$tmp
    done
    for ((i = 0; i < nc; i++)); do : >"logs/$name.c$i.ids"; done
    for ((k = 0; k < ${#list[@]}; k++)); do
        echo "${list[k]}" >>"logs/$name.c$((k % nc)).ids"
    done
    # The copy goes at the same place in another client's stream, so that
    # both connections tend to send it at about the same time.
    k=$((RANDOM % ${#list[@]}))
    dup=${list[k]}
    i=$(((k % nc + 1 + RANDOM % (nc - 1)) % nc))
    pos=$((k / nc + 1))
    if [ "$pos" -le "$(wc -l <"logs/$name.c$i.ids")" ]; then
        sed -i "${pos}i $dup" "logs/$name.c$i.ids"
    else
        echo "$dup" >>"logs/$name.c$i.ids"
    fi
    for ((i = 0; i < nc; i++)); do
        while read -r ctl; do
            cat "msgs/$ctl"
            SENT[$ctl]=$((${SENT[$ctl]:-0} + 1))
        done <"logs/$name.c$i.ids" >"logs/$name.c$i.hl7"
    done

    start_server "$name" || break
    run_clients "$name" "$nc"
    # Kill after a random delay, or (every other round) just after the K-th
    # AA for a random K, so that kills land mid-stream however fast or
    # slow (ASan) the build is.
    if [ $((r % 2)) = 1 ]; then
        rsleep 50 800
    else
        want=$((1 + RANDOM % (${#list[@]} * 4 / 5 + 1)))
        for ((i = 0; i < 6000; i++)); do
            [ "$(cat "logs/$name".c*.out | grep -c '^MSA|AA|')" -ge "$want" ] &&
                break
            any=0
            for pid in "${CLIENT_PIDS[@]}"; do
                alive "$pid" && any=1
            done
            [ "$any" = 0 ] && break
            sleep 0.02
        done
        rsleep 0 100
    fi
    if alive "$SRV_PID"; then
        kill -KILL "$SRV_PID"
        wait "$SRV_PID" 2>/dev/null
        KILLS=$((KILLS + 1))
    else
        wait "$SRV_PID"
        fail "$name: the server exited by itself (status $?) before the kill:" \
             "$(tail -n 3 "logs/$name.err" | tr '\n' ' ' | cut -c 1-300)"
    fi
    wait_pids 60 "${CLIENT_PIDS[@]}" ||
        fail "$name: a client still ran 60 s after the server was killed"
    for ((i = 0; i < nc; i++)); do
        # 0: all AA; 1: the connection closed early. Anything else (usage,
        # a crash, a sanitizer's exit code) is wrong.
        case ${WAIT_RC[i]} in
        0 | 1) ;;
        *) fail "$name client $i: exit ${WAIT_RC[i]}:" \
                "$(head -n 2 "logs/$name.c$i.err" | tr '\n' ' ' | cut -c 1-200)" ;;
        esac
    done
    _BG_PIDS=()
    before=${#ACKED_IDS[@]}
    parse_acks "$name" "$nc"
    acked=0
    unacked=0
    for ((i = 0; i < nc; i++)); do
        acked=$((acked + $(wc -l <"logs/$name.c$i.msa")))
        unacked=$((unacked + $(wc -l <"logs/$name.c$i.ids") -
            $(wc -l <"logs/$name.c$i.msa")))
    done
    if [ "$unacked" -gt 0 ]; then
        MIDSTREAM=$((MIDSTREAM + 1))
    elif [ "$PER_CLIENT" -lt 60 ]; then
        # Everything was through before the kill: longer streams.
        PER_CLIENT=$((PER_CLIENT * 3 / 2))
    fi
    # Patients acknowledged up to now may get results from the next round.
    for ((k = before; k < ${#ACKED_IDS[@]}; k++)); do
        ctl=${ACKED_IDS[k]}
        [ "${KIND[$ctl]}" = A04 ] && REGISTERED+=("KT${ctl#ADM}")
    done
    echo "  $name: $nc clients, ${#list[@]}+1 messages, $acked ACKs," \
         "$unacked not acknowledged, kill $KILLS"
done

check "at least 20 kill points ($KILLS)" test "$KILLS" -ge 20
check "$MIDSTREAM of $KILLS kills hit a client mid-stream (want a third)" \
    test $((MIDSTREAM * 3)) -ge "$KILLS"

# ------------------------------------------------------------ checking
# acked.tsv: each control id, whether it had an AA, how many AAs, and how
# many times it was sent.
acked_table()
{
    local ctl
    for ctl in "${ALL[@]}"; do
        printf '%s\t%s\t%s\t%s\n' "$ctl" "${ACKED[$ctl]:-0}" "${AAS[$ctl]:-0}" \
            "${SENT[$ctl]:-0}"
    done >acked.tsv
}

# report LABEL FILE: one check from a file of problems (empty = pass).
report()
{
    local n label=${1//$'\n'/ }
    n=$(wc -l <"$2")
    if [ "$n" = 0 ]; then
        pass "$label"
    else
        fail "$label: $n problems, e.g.: $(head -n 3 "$2" | tr '\n' ';' |
            cut -c 1-400)"
    fi
}

# verify_store LABEL FINAL: the interface log and the stored resources
# against what was acknowledged. FINAL=1: every message must be there.
verify_store()
{
    local label=$1 final=$2
    acked_table
    if ! "$MEDREC" hl7 messages --db "$DB" --json --limit 1000000 \
        >log.ndjson 2>log.err; then
        fail "$label: hl7 messages: $(head -c 200 log.err)"
        return
    fi
    if ! "$MEDREC" export --db "$DB" >export.ndjson 2>export.err; then
        fail "$label: export: $(head -c 200 export.err)"
        return
    fi
    jq -r '[.control_id, .status, .ack, (.repeats // 0), .sender,
            (.type // "")] | @tsv' log.ndjson >log.tsv
    jq -r 'select(.resourceType == "Patient") | .id as $id |
           .identifier[]? | select(.system == "urn:medrec:aa:HOSP") |
           [.value, $id] | @tsv' export.ndjson >pat.tsv
    jq -r 'select(.resourceType == "Observation") |
           [(.code.coding[]? | select(.system == "http://loinc.org") | .code)
              // "", (.valueQuantity.value // .valueString // "" | tostring),
            (.subject.reference // "")] | @tsv' export.ndjson >obs.tsv
    jq -r 'select(.resourceType == "DiagnosticReport") |
           [(.identifier[]?.value // ""), (.subject.reference // "")] | @tsv' \
        export.ndjson >dr.tsv

    # One line per problem.
    awk -F '\t' -v final="$final" '
        function num(v) { return sprintf("%.3f", v + 0) }
        FILENAME == "acked.tsv" { acked[$1] = $2; aas[$1] = $3; sent[$1] = $4; next }
        FILENAME == "log.tsv" {
            rows[$1]++; status[$1] = $2; ack[$1] = $3; rep[$1] = $4
            sender[$1] = $5; next
        }
        FILENAME == "pat.tsv" { pats[$1]++; pid[$1] = $2; next }
        FILENAME == "obs.tsv" {
            k = $1 "|" num($2); obs[k]++; subj[k] = $3; next
        }
        FILENAME == "dr.tsv" { drs[$1]++; drsubj[$1] = $2; next }
        {
            ctl = $2; pv = $3
            must = acked[ctl] == 1 || final
            n = rows[ctl] + 0
            if (n > 1) print ctl ": " n " rows in the interface log"
            if (n == 1 && status[ctl] != "applied")
                print ctl ": status " status[ctl] " (" ack[ctl] "), want applied"
            if (n == 1 && ack[ctl] != "AA") print ctl ": ack " ack[ctl]
            if (must && n == 0)
                print ctl ": acknowledged but not in the interface log"
            if (n == 1 && rep[ctl] + 0 > sent[ctl] - 1)
                print ctl ": repeats " rep[ctl] " but sent " sent[ctl] " times"
            if (n == 1 && rep[ctl] + 0 < aas[ctl] - 1)
                print ctl ": repeats " rep[ctl] " but acknowledged " aas[ctl] \
                      " times (each AA after the first is a repeat)"
            if ($1 == "A04") {
                np = pats[pv] + 0
                if (np > 1) print ctl ": " np " Patients with identifier " pv
                if (must && np != 1)
                    print ctl ": " np " Patients with identifier " pv ", want 1"
                if ((np == 1) != (n == 1 && status[ctl] == "applied"))
                    print ctl ": " np " Patients but " n " log rows (" \
                          status[ctl] "): not all or nothing"
                if (n == 1 && sender[ctl] !~ /^REG/)
                    print ctl ": sender " sender[ctl]
            } else {
                k1 = "2345-7|" num($4); k2 = "2823-3|" num($5)
                o1 = obs[k1] + 0; o2 = obs[k2] + 0
                if (o1 > 1 || o2 > 1)
                    print ctl ": Observations filed " o1 " and " o2 " times"
                if (must && (o1 != 1 || o2 != 1))
                    print ctl ": Observations filed " o1 " and " o2 \
                          " times, want 1 each"
                if (o1 != o2 || (o1 == 1) != (n == 1 && status[ctl] == "applied"))
                    print ctl ": Observations " o1 "/" o2 " but " n \
                          " log rows (" status[ctl] "): not all or nothing"
                if (o1 == 1 && subj[k1] != "Patient/" pid[pv])
                    print ctl ": glucose subject " subj[k1] ", want Patient/" \
                          pid[pv] " (" pv ")"
                if (o2 == 1 && subj[k2] != "Patient/" pid[pv])
                    print ctl ": potassium subject " subj[k2] ", want Patient/" \
                          pid[pv] " (" pv ")"
                nd = drs[$6] + 0
                if (nd > 1 || (must && nd != 1) || (nd == 1) != (o1 == 1))
                    print ctl ": " nd " DiagnosticReports for " $6 \
                          " with " o1 " Observations"
                if (nd == 1 && drsubj[$6] != "Patient/" pid[pv])
                    print ctl ": report subject " drsubj[$6] ", want Patient/" \
                          pid[pv] " (" pv ")"
                if (n == 1 && sender[ctl] !~ /^LAB/)
                    print ctl ": sender " sender[ctl]
            }
        }' acked.tsv log.tsv pat.tsv obs.tsv dr.tsv meta.tsv >problems.txt
    report "$label: every acknowledged message applied exactly once, the
others at most once and wholly or not at all" problems.txt

    # Nothing in the log or the store that was not sent.
    awk -F '\t' 'FILENAME == "meta.tsv" { known[$2] = 1; next }
                 !($1 in known) { print "log row for unknown " $1 }' \
        meta.tsv log.tsv >problems.txt
    awk -F '\t' 'FILENAME == "meta.tsv" { if ($1 == "A04") known[$3] = 1; next }
                 !($1 in known) { print "Patient with unknown identifier " $1 }' \
        meta.tsv pat.tsv >>problems.txt
    report "$label: nothing in the log or the store that was not sent" \
           problems.txt

    # Resources get stable ids (a message applied twice would write a
    # second version rather than a copy): each resource's current version
    # must be the last one an applied log row says it wrote, and every
    # stored resource must have been written by one.
    jq -r 'select(.status == "applied") | .control_id as $c |
           .resources[]? | [$c, .] | @tsv' log.ndjson >written.tsv
    jq -r '[.resourceType + "/" + .id, .meta.versionId] | @tsv' \
        export.ndjson >current.tsv
    awk -F '\t' '
        FILENAME == "written.tsv" {
            i = index($2, "/_history/")
            if (!i) { print $1 ": resource " $2 " has no version"; next }
            r = substr($2, 1, i - 1); v = substr($2, i + 10) + 0
            if (!(r in maxv) || v > maxv[r]) { maxv[r] = v; by[r] = $1 }
            next
        }
        {
            cur[$1] = $2
            if (!($1 in maxv))
                print $1 " (version " $2 ") was written by no applied message"
            else if ($2 + 0 != maxv[$1])
                print $1 " is at version " $2 " but the log says " by[$1] \
                      " wrote version " maxv[$1] " last"
        }
        END {
            for (r in maxv)
                if (!(r in cur))
                    print r ": written by " by[r] " but not in the export"
        }' written.tsv current.tsv >problems.txt
    report "$label: every resource is at the version its message wrote" \
           problems.txt

    # The audit trail commits with the message: one "applied" receipt per
    # applied row, one per counted repeat, and one create/update per
    # version the row lists; none for a message not applied.
    if ! "$MEDREC" audit search --db "$DB" --json >audit.ndjson 2>audit.err
    then
        fail "$label: audit search: $(head -c 200 audit.err)"
        return
    fi
    jq -r 'select(.status == "applied") |
           [.control_id, .id, (.repeats // 0), (.resources | length)] | @tsv' \
        log.ndjson >applied.tsv
    jq -r 'select(.outcome == "ok") |
           if (.action == "create" or .action == "update") and
              (.detail // "" | startswith("HL7 ")) then
             ["W", (.detail | split(" ")[2]), .type + "/" + .id]
           elif .action == "hl7-receive" then ["R", .id, (.detail // "")]
           else empty end | @tsv' audit.ndjson >audited.tsv
    awk -F '\t' '
        FILENAME == "audited.tsv" {
            if ($1 == "W") w[$2]++
            else if ($3 ~ /^repeat:/) rep[$2]++
            else if ($3 ~ /: applied$/) app[$2]++
            next
        }
        {
            ok[$1] = 1
            if (w[$1] + 0 != $4)
                print $1 ": " w[$1] + 0 " audited writes, " $4 " versions logged"
            if (app[$2] + 0 != 1)
                print $1 " (row " $2 "): " app[$2] + 0 " audited receipts"
            if (rep[$2] + 0 != $3)
                print $1 " (row " $2 "): " rep[$2] + 0 \
                      " audited repeats, " $3 " counted"
        }
        END {
            for (c in w)
                if (!(c in ok))
                    print c ": " w[c] " audited writes but not applied"
        }' audited.tsv applied.tsv >problems.txt
    report "$label: the audit trail shows each applied message, its writes
and its repeats once" problems.txt
    # Applied, but the kill came before the client had the ACK: the resend
    # must find them (informational).
    UNSEEN=$(awk -F '\t' 'FILENAME == "acked.tsv" { a[$1] = $2; next }
                          $2 == "applied" && a[$1] == 0 { n++ }
                          END { print n + 0 }' acked.tsv log.tsv)
    echo "  $label: $(wc -l <log.tsv) log rows, $(wc -l <pat.tsv) patients," \
         "$(wc -l <obs.tsv) observations stored; $UNSEEN applied without" \
         "an AA received"
}

# search_patients LABEL FILE FINAL: GET /Patient?identifier=... for each
# A04 control id in FILE: exactly 1 match if acknowledged (or FINAL), at
# most 1 otherwise. One curl process for all of them.
search_patients()
{
    local label=$1 ids=$2 final=$3 ctl pv n out
    : >q.cfg
    while read -r ctl; do
        pv=KT${ctl#ADM}
        printf 'url = "%s/Patient?identifier=urn:medrec:aa:HOSP%%7C%s"\n' \
            "$URL" "$pv"
        printf 'output = "q/%s.json"\n' "$pv"
    done <"$ids" >q.cfg
    rm -f q/*.json
    curl -s -S -H "Authorization: Bearer $TOKEN" -K q.cfg 2>curl.err ||
        fail "$label: curl: $(head -n 1 curl.err)"
    # The matches in each answer: one jq over all files (one per file if
    # some answer is not JSON).
    # shellcheck disable=SC2016 # a jq program
    local count='(input_filename | sub("^q/"; "") | sub("[.]json$"; "")) as $v |
        (if .resourceType == "Bundle" then
           [.entry[]? | select(.resource.resourceType == "Patient")
            | select(any(.resource.identifier[]?;
                .system == "urn:medrec:aa:HOSP" and .value == $v))] | length
         else "not a Bundle: \(tostring | .[0:100])" end) as $n |
        [$v, $n] | @tsv'
    declare -A N=()
    if ! jq -r "$count" q/*.json >counts.tsv 2>/dev/null; then
        for out in q/*.json; do
            jq -r "$count" "$out" 2>/dev/null ||
                printf '%s\tnot JSON\n' "$(basename "$out" .json)"
        done >counts.tsv
    fi
    while IFS=$'\t' read -r pv n; do
        N[$pv]=$n
    done <counts.tsv
    : >problems.txt
    while read -r ctl; do
        pv=KT${ctl#ADM}
        n=${N[$pv]:-no answer}
        if [ "${ACKED[$ctl]:-}" = 1 ] || [ "$final" = 1 ]; then
            [ "$n" = 1 ] || echo "$pv ($ctl): $n matches, want 1"
        else
            [ "$n" = 0 ] || [ "$n" = 1 ] ||
                echo "$pv ($ctl, not acknowledged): $n matches, want 0 or 1"
        fi
    done <"$ids" >>problems.txt
    report "$label: Patient?identifier=urn:medrec:aa:HOSP|... finds each
acknowledged patient exactly once ($(wc -l <"$ids") searched)" problems.txt
}

# The database as the kills left it, read by the command line.
acked_n=${#ACKED_IDS[@]}
verify_store "after $KILLS kills" 0
unseen=$UNSEEN
expect_exit 0 "$MEDREC" check --db "$DB"

# A clean restart: search, then the sender's backlog, then search again.
for ctl in "${ALL[@]}"; do
    [ "${KIND[$ctl]}" = A04 ] && echo "$ctl"
done >a04.txt
if start_server final; then
    FINAL_PID=$SRV_PID
    if [ -z "$URL" ]; then
        fail "final: the server printed no FHIR base URL"
    else
        search_patients "after $KILLS kills" a04.txt 0
    fi
    # The backlog, and two acknowledged messages again, on two connections.
    : >logs/final.c0.ids
    : >logs/final.c1.ids
    k=0
    for ctl in "${ALL[@]}"; do
        if [ -z "${ACKED[$ctl]:-}" ]; then
            echo "$ctl" >>"logs/final.c$((k % 2)).ids"
            k=$((k + 1))
        fi
    done
    backlog=$k
    for k in 0 1; do
        [ "${#ACKED_IDS[@]}" -gt 0 ] &&
            echo "${ACKED_IDS[RANDOM % ${#ACKED_IDS[@]}]}" >>"logs/final.c$k.ids"
    done
    for i in 0 1; do
        while read -r ctl; do
            cat "msgs/$ctl"
            SENT[$ctl]=$((${SENT[$ctl]:-0} + 1))
        done <"logs/final.c$i.ids" >"logs/final.c$i.hl7"
    done
    run_clients final 2
    wait_pids 300 "${CLIENT_PIDS[@]}" ||
        fail "final: the clients did not finish within 300 s"
    expect_eq "final: both clients get AA for everything (exit 0)" "0 0" \
        "${WAIT_RC[*]}"
    _BG_PIDS=("$FINAL_PID")
    parse_acks final 2
    left=0
    for ctl in "${ALL[@]}"; do
        [ -z "${ACKED[$ctl]:-}" ] && left=$((left + 1))
    done
    expect_eq "final: the backlog of $backlog is acknowledged" 0 "$left"
    if [ -n "$URL" ]; then
        grep -hx 'ADM[0-9]*' logs/final.c0.ids logs/final.c1.ids |
            sort -u >backlog_a04.txt
        search_patients "after the backlog" backlog_a04.txt 1
    fi
    kill -TERM "$FINAL_PID"
    if wait_pids 60 "$FINAL_PID"; then
        expect_eq "final: the server stops on SIGTERM with exit 0" 0 \
            "${WAIT_RC[0]}"
    else
        fail "final: the server did not stop within 60 s of SIGTERM"
    fi
    _BG_PIDS=()
fi

verify_store "after the backlog" 1
expect_exit 0 "$MEDREC" check --db "$DB"
expect_exit 0 "$MEDREC" audit verify --db "$DB"

# No sanitizer report from any server or client (a SIGKILLed server has
# none to give, the others exit normally).
grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|Sanitizer:DEADLYSIGNAL' \
    logs/*.err >sanitizer.txt 2>/dev/null
report "no sanitizer reports (servers and clients)" sanitizer.txt

repeats=$(jq -s '[.[].repeats // 0] | add // 0' log.ndjson 2>/dev/null)
echo "$TEST_NAME: $KILLS kill points ($MIDSTREAM mid-stream); $acked_n of" \
     "${#ALL[@]} messages acknowledged before the clean restart" \
     "($NA04 ADT^A04, $NORU ORU^R01; $unseen more applied but their AA" \
     "lost in a kill; $NON_AA non-AA ACKs; $DUPS_SENT" \
     "deliberate resends of acknowledged messages; $repeats repeats" \
     "logged); $(($(date +%s) - start_all)) s"
if [ "$FAIL" != 0 ] && [ -n "${HL7_KILL_KEEP:-}" ]; then
    mkdir -p "$HL7_KILL_KEEP" && cp -a "$T/." "$HL7_KILL_KEEP/" &&
        echo "$TEST_NAME: work directory copied to $HL7_KILL_KEEP"
fi
summary
