#!/usr/bin/env bash
# Crash safety of `medrec import`: SIGKILL it at many points and check that
# the database is intact, that every batch it reported as committed is
# there, and that no batch is there in part.
#
#   CRASH_SEED=N   reproduce a run (the seed is printed)
#   CRASH_ROUNDS=N kill points per phase (default 8; 3 phases)
. "$(dirname "$0")/lib.sh"

BATCH=2000
TOTAL=200000
ROUNDS=${CRASH_ROUNDS:-8}
SEED=${CRASH_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
echo "crash_import: seed $SEED (CRASH_SEED=$SEED to repeat), $ROUNDS rounds" \
     "per phase, batch $BATCH"

"$MR_SYNTH" patients "$TOTAL" --seed 17 >input.ndjson
check "mr-synth wrote $TOTAL patients" \
    test "$(wc -l <input.ndjson)" = "$TOTAL"

KILLS=0
MIN_N=
MAX_N=0
MAX_STORED=0
start_all=$(date +%s)

# Sleep a random time in [lo, hi] milliseconds.
rsleep()
{
    local ms=$(($1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1)))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}

# The last "committed N" on stdout file $1 (0 if none). Also checks that
# every line is a "committed" line with a growing multiple of the batch.
last_committed()
{
    awk -v b="$BATCH" '
        /^committed [0-9]+$/ {
            n = $2 + 0
            if (n <= prev || (n % b) != 0) bad = 1
            prev = n
            next
        }
        { bad = 1 }
        END { if (bad) print "BAD"; else print prev + 0 }' "$1"
}

# The Patient ids in the database, sorted.
stored_ids()
{
    "$MEDREC" export --db "$1" 2>/dev/null |
        grep -o '^{"resourceType":"Patient","id":"p[0-9]*"' | cut -d'"' -f8 |
        sort
}

# verify DB N: after a kill at N reported records, the database must pass
# check, hold exactly ids p0..p(M-1) for some M that is N or N+BATCH (a
# commit can land just before its line is written), and nothing else.
verify()
{
    local db=$1 n=$2 label=$3 m want
    run "$MEDREC" check --db "$db"
    if [ "$RC" != 0 ]; then
        fail "$label: check exit $RC: $OUT $ERR"
        return
    fi
    pass "$label: check ok"
    stored_ids "$db" >ids.txt
    m=$(wc -l <ids.txt)
    if [ "${4:-}" = exact ]; then
        expect_eq "$label: all $n records stored" "$n" "$m"
    elif [ "$m" -ge "$n" ] && [ $((m % BATCH)) = 0 ] &&
       [ "$m" -le $((n + BATCH)) ]; then
        pass "$label: $m stored, $n reported committed: whole batches only"
    else
        fail "$label: $m stored with $n reported committed (batch $BATCH):" \
             "want a multiple of $BATCH in [$n, $((n + BATCH))]"
    fi
    if [ "$m" -gt 0 ]; then
        seq -f 'p%08g' 0 $((m - 1)) >want.txt
    else
        : >want.txt
    fi
    if cmp -s ids.txt want.txt; then
        pass "$label: the stored ids are exactly p00000000..$(tail -n 1 \
want.txt 2>/dev/null)"
    else
        want=$(diff want.txt ids.txt | grep -c '^[<>]')
        fail "$label: stored ids differ from the first $m input ids" \
             "($want lines differ; first: $(diff want.txt ids.txt |
             grep '^[<>]' | head -n 1))"
    fi
    [ "$m" -gt "$MAX_STORED" ] && MAX_STORED=$m
    STORED=$m
}

# kill_import DB OUT FROM delay LO HI
# kill_import DB OUT FROM after K LO HI
# Import input.ndjson from line FROM+1 into DB in the background, wait LO..HI
# ms (after the K-th "committed" line for "after"), then SIGKILL it. Sets N
# to the last count it reported as committed.
kill_import()
{
    local db=$1 out=$2 from=$3 mode=$4 pid i
    shift 4
    # Empty it first: the background job truncates it only once it runs,
    # and the wait below must not read the previous round's lines.
    : >"$out"
    "$MEDREC" import --db "$db" --batch "$BATCH" - \
        < <(tail -n +"$((from + 1))" input.ndjson) >"$out" 2>"$out.err" &
    pid=$!
    _BG_PIDS+=("$pid")
    if [ "$mode" = after ]; then
        for ((i = 0; i < 6000; i++)); do  # up to 5 min: slow under ASan
            [ "$(grep -c committed "$out")" -ge "$1" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        shift
    fi
    rsleep "$1" "$2"
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        KILLS=$((KILLS + 1))
    else
        wait "$pid"
        fail "import (from $from) ended before the kill: exit $?:" \
             "$(head -n 1 "$out.err")"
    fi
    N=$(last_committed "$out")
    if [ "$N" = BAD ]; then
        fail "stdout of a killed import is not only growing" \
             "'committed <multiple of $BATCH>' lines: $(tr '\n' '|' <"$out")"
        N=$(grep -o '[0-9]*' "$out" | tail -n 1)
        N=${N:-0}
    fi
    if [ -z "$MIN_N" ] || [ "$N" -lt "$MIN_N" ]; then
        MIN_N=$N
    fi
    [ "$N" -gt "$MAX_N" ] && MAX_N=$N
}

# --- phase 1: fresh database, killed after a random 0.05-1.5 s --------------
for ((r = 1; r <= ROUNDS; r++)); do
    rm -f p1.db p1.db-wal p1.db-shm
    "$MEDREC" init --db p1.db 2>/dev/null
    kill_import p1.db p1.out 0 delay 50 1500
    verify p1.db "$N" "fresh db, random delay, kill $KILLS"
done

# --- phase 2: fresh database, killed after the K-th commit plus 0-1 s -------
for ((r = 1; r <= ROUNDS; r++)); do
    rm -f p2.db p2.db-wal p2.db-shm
    "$MEDREC" init --db p2.db 2>/dev/null
    k=$((1 + RANDOM % 3))
    kill_import p2.db p2.out 0 after "$k" 0 1000
    verify p2.db "$N" "fresh db, after commit $k, kill $KILLS"
    if [ "$N" -lt $((k * BATCH)) ]; then
        fail "kill $KILLS: waited for commit $k but only $N reported"
    fi
done

# --- phase 3: one database, each import resumes after the last one --------
rm -f p3.db p3.db-wal p3.db-shm
"$MEDREC" init --db p3.db 2>/dev/null
STORED=0
for ((r = 1; r <= ROUNDS; r++)); do
    from=$STORED
    kill_import p3.db p3.out "$from" delay 50 3000
    verify p3.db $((from + N)) "same db from $from, kill $KILLS"
done
# The database takes further imports normally after all those crashes.
from=$STORED
tail -n +"$((from + 1))" input.ndjson | head -n 4500 >rest.ndjson
expect_exit 0 "$MEDREC" import --db p3.db --batch "$BATCH" rest.ndjson
expect_eq "a clean import after the crashes reports all its commits" \
    "committed 2000 committed 4000 committed 4500" "${OUT//$'\n'/ }"
verify p3.db $((from + 4500)) "same db after a clean import" exact
expect_eq "every record of the clean import is there" $((from + 4500)) \
    "$STORED"

check "at least 20 kill points ($KILLS)" test "$KILLS" -ge 20
echo "crash_import: $KILLS kill points; committed counts reported at a" \
     "kill ranged ${MIN_N:-0}..$MAX_N; at most $MAX_STORED stored;" \
     "$(($(date +%s) - start_all)) s"
summary
