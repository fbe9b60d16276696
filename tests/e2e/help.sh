#!/usr/bin/env bash
# Every command and subcommand answers --help: exit 0, a usage text on
# stdout naming the command, nothing on stderr, no database needed or made.
. "$(dirname "$0")/lib.sh"

# "words of the command" then "text the help must contain".
cases=(
    "|usage: medrec"
    "init|usage: medrec init"
    "patient|usage: medrec patient"
    "patient add|medrec patient add"
    "patient show|medrec patient show"
    "patient search|medrec patient search"
    "patient update|medrec patient update"
    "history|usage: medrec history"
    "export|usage: medrec export"
    "import|usage: medrec import"
    "check|usage: medrec check"
    "serve|usage: medrec serve"
)

for c in "${cases[@]}"; do
    words=${c%%|*}
    want=${c#*|}
    # shellcheck disable=SC2086
    expect_exit 0 "$MEDREC" $words --help
    expect_stdout_contains "$want"
    check "'medrec $words --help' writes nothing on stderr" \
        test ! -s "$T/.err"
    # shellcheck disable=SC2086
    run "$MEDREC" $words --help --db "$T/none.db"
    check "'medrec $words --help --db FILE' exits 0 without a database" \
        test "$RC" = 0
done

# The top-level help lists every command.
run "$MEDREC" --help
for c in init patient history export import check; do
    check "medrec --help lists $c" grep -qE "^ +$c " "$T/.out"
done

# --help wins over other arguments, wherever it is.
expect_exit 0 "$MEDREC" patient add --family X --help
expect_stdout_contains "usage"
expect_exit 0 "$MEDREC" import --batch 5 --help
expect_stdout_contains "usage: medrec import"
expect_exit 0 "$MEDREC" history --help Patient/x
expect_stdout_contains "usage: medrec history"

check "no database was created by any --help" \
    test -z "$(find "$T" -name '*.db*')"

# Bad usage is exit 2 and points at --help.
expect_exit 2 "$MEDREC" nosuchcommand
expect_exit 2 "$MEDREC" patient nosuchsub
expect_stderr_contains "--help"
expect_exit 2 "$MEDREC" import --nosuchoption
expect_stderr_contains "--help"

summary
