# Shared helpers for the end-to-end tests: source it first thing.
#
#   . "$(dirname "$0")/lib.sh"
#
# Gives: $MEDREC and $MR_SYNTH (the programs under test; CTest sets them,
# else the default build dir is used), $MEDREC_SHARED_DATA, $T (a fresh
# temporary directory, the working directory, removed on exit), and
#
#   pass MSG / fail MSG           record one check (one line each)
#   check MSG CMD...              pass if CMD exits 0
#   run CMD...                    run CMD; $RC, $OUT, $ERR (also files
#                                 $T/.out and $T/.err) hold its results
#   expect_exit CODE CMD...       run CMD and check its exit status
#   expect_stderr_contains TEXT   last run's stderr contains TEXT (no case)
#   expect_stdout_contains TEXT   last run's stdout contains TEXT (no case)
#   expect_stdout_matches ERE     some line of last stdout matches ERE
#   expect_stdout_empty           last run printed nothing on stdout
#   expect_one_line_error         last stderr is exactly one "medrec: " line
#   expect_eq MSG WANT GOT        compare two strings
#   bg CMD...                     start CMD in the background; killed on exit
#   need_cmd NAME...              skip (exit 77) unless the commands exist
#   skip MSG                      skip the whole test (exit 77)
#   summary                       print "<test>: N passed, M failed"; exit
#
# Nothing here reads /work/shared or real patient data: use $MR_SYNTH.

set -u

TEST_NAME=$(basename "$0" .sh)
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_default_build="${MEDREC_SOURCE_DIR:-$LIB_DIR/../..}/build"
MEDREC=${MEDREC:-$_default_build/medrec}
MR_SYNTH=${MR_SYNTH:-$_default_build/mr-synth}
MEDREC_SHARED_DATA=${MEDREC_SHARED_DATA:-}
export MEDREC MR_SYNTH MEDREC_SHARED_DATA

# Tests must not be steered by the caller's environment.
unset MEDREC_DB MEDREC_BUSY_TIMEOUT_MS

PASS=0
FAIL=0
RC=0
OUT=
ERR=
_BG_PIDS=()
_SUMMARY_DONE=0

skip()
{
    echo "$TEST_NAME: SKIP: $*"
    _SUMMARY_DONE=1
    exit 77
}

for _p in "$MEDREC" "$MR_SYNTH"; do
    [ -x "$_p" ] || skip "$_p is not built"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/medrec-e2e-$TEST_NAME.XXXXXX") ||
    { echo "$TEST_NAME: cannot create a temporary directory"; exit 1; }

_cleanup()
{
    local rc=$? pid

    for pid in "${_BG_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    cd / && rm -rf "$T"
    if [ "$_SUMMARY_DONE" = 0 ]; then
        echo "$TEST_NAME: aborted (exit $rc) after $PASS passed," \
             "$FAIL failed"
        [ "$rc" = 0 ] && rc=1
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

cd "$T" || exit 1

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

check()
{
    local msg=$1
    shift
    if "$@"; then
        pass "$msg"
    else
        fail "$msg"
    fi
}

run()
{
    "$@" >"$T/.out" 2>"$T/.err"
    RC=$?
    # shellcheck disable=SC2034 # for the tests that source this file
    OUT=$(cat "$T/.out")
    # shellcheck disable=SC2034
    ERR=$(cat "$T/.err")
    return 0
}

# A command line for messages: the program's base name and its arguments.
_cmdline()
{
    local first=${1##*/}
    shift
    echo "$first $*" | cut -c 1-120
}

# The first line of stderr, to show in failure messages.
_err1()
{
    head -n 1 "$T/.err" | cut -c 1-200
}

expect_exit()
{
    local want=$1
    shift
    run "$@"
    if [ "$RC" = "$want" ]; then
        pass "exit $want: $(_cmdline "$@")"
        return 0
    fi
    fail "exit $want (got $RC): $(_cmdline "$@") -- stderr: $(_err1)"
    return 1
}

expect_stderr_contains()
{
    if grep -qiF -- "$1" "$T/.err"; then
        pass "stderr mentions '$1'"
    else
        fail "stderr should mention '$1' -- got: $(_err1)"
    fi
}

expect_stdout_contains()
{
    if grep -qiF -- "$1" "$T/.out"; then
        pass "stdout mentions '$1'"
    else
        fail "stdout should mention '$1' -- got: $(head -c 200 "$T/.out")"
    fi
}

expect_stdout_matches()
{
    if grep -qE -- "$1" "$T/.out"; then
        pass "stdout matches /$1/"
    else
        fail "stdout should match /$1/ -- got: $(head -c 200 "$T/.out")"
    fi
}

expect_stdout_empty()
{
    if [ ! -s "$T/.out" ]; then
        pass "nothing on stdout"
    else
        fail "stdout should be empty -- got: $(head -c 200 "$T/.out")"
    fi
}

expect_one_line_error()
{
    local n
    n=$(wc -l <"$T/.err")
    if [ "$n" = 1 ] && grep -q '^medrec' "$T/.err"; then
        pass "one-line error: $(_err1)"
    else
        fail "want one 'medrec...' line on stderr, got $n: $(_err1)"
    fi
}

expect_eq()
{
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1: want '$2', got '$3'"
    fi
}

bg()
{
    "$@" &
    _BG_PIDS+=($!)
}

need_cmd()
{
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "needs $c"
    done
}

summary()
{
    echo "$TEST_NAME: $PASS passed, $FAIL failed"
    _SUMMARY_DONE=1
    [ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ] && exit 0
    exit 1
}
