#!/usr/bin/env bash
# The web UI compiled into medrec: src/server/gen/web_assets.inc is what
# tools/embed/embed-web.sh makes from web/ today (else: rerun it and commit
# both), the generator refuses what it must not embed, and `medrec serve`
# answers every file of web/ byte for byte, with its type and the browser
# security headers, GET and HEAD only, without a sign-in.
. "$(dirname "$0")/http_lib.sh"

SRC=${MEDREC_SOURCE_DIR:-$HTTP_LIB_DIR/../..}
GEN=$SRC/tools/embed/embed-web.sh
INC=$SRC/src/server/gen/web_assets.inc

# --- the committed table is up to date --------------------------------------
if sh "$GEN" "$SRC/web" "$T/web_assets.inc" 2>"$T/gen.err"; then
    pass "embed-web.sh runs"
else
    fail "embed-web.sh: $(head -c 300 "$T/gen.err")"
fi
if cmp -s "$T/web_assets.inc" "$INC"; then
    pass "src/server/gen/web_assets.inc matches web/"
else
    fail "src/server/gen/web_assets.inc is stale: run tools/embed/embed-web.sh" \
         "and commit it -- $(diff "$INC" "$T/web_assets.inc" | head -n 4 |
             cut -c 1-120 | tr '\n' ' ')"
fi
sh "$GEN" "$SRC/web" "$T/again.inc" 2>/dev/null
expect_eq "the generator is deterministic" "$(cksum <"$T/web_assets.inc")" \
    "$(cksum <"$T/again.inc")"

# --- it refuses what it must not embed ---------------------------------------
refuses()
{
    local what=$1
    shift
    rm -rf "$T/bad" && mkdir "$T/bad" && printf 'ok\n' >"$T/bad/index.html"
    "$@"
    if sh "$GEN" "$T/bad" "$T/bad.inc" 2>"$T/bad.err"; then
        fail "embed-web.sh accepted $what"
    elif [ -e "$T/bad.inc" ]; then
        fail "embed-web.sh left an output after refusing $what"
    else
        pass "embed-web.sh refuses $what: $(head -n 1 "$T/bad.err" | cut -c 1-90)"
    fi
}
refuses "an unknown file type" touch "$T/bad/x.exe"
refuses "a file without a final newline" sh -c "printf 'x' >'$T/bad/a.js'"
refuses "a binary file" sh -c "printf 'a\\000b\\n' >'$T/bad/b.js'"
refuses "a name with a space" sh -c "printf 'x\\n' >'$T/bad/a b.js'"
refuses "a hidden file" sh -c "printf 'x\\n' >'$T/bad/.x.js'"

# Escapes survive the round trip: quotes, backslashes, trigraphs, tabs.
mkdir -p "$T/esc"
printf 'a "q" \\ \\n ??= ??/\ttab\r\n\xc3\xa9 é\n' >"$T/esc/index.html"
sh "$GEN" "$T/esc" "$T/esc.inc"
cat >"$T/esc.c" <<EOF
#include <stdio.h>
#include <string.h>
struct web_asset { const char *path, *content_type, *bytes; size_t len; };
#include "$T/esc.inc"
int main(void)
{
    fwrite(web_assets[0].bytes, 1, web_assets[0].len, stdout);
    return !(strlen(web_assets[0].bytes) == web_assets[0].len);
}
EOF
if command -v cc >/dev/null 2>&1; then
    if cc -std=c11 -Wall -Werror -o "$T/esc.bin" "$T/esc.c" 2>"$T/cc.err" &&
        "$T/esc.bin" >"$T/esc.out" && cmp -s "$T/esc.out" "$T/esc/index.html"; then
        pass "escaped bytes compile back to the original"
    else
        fail "escape round trip: $(head -c 200 "$T/cc.err")"
    fi
fi

# --- served by medrec --------------------------------------------------------
http_start
ORIGIN=${URL%/fhir}
n=0
for f in "$SRC"/web/*; do
    name=${f##*/}
    NOAUTH=1 req GET "$ORIGIN/$name"
    if [ "$STATUS" = 200 ] && cmp -s "$BODY" "$f"; then
        n=$((n + 1))
    else
        fail "GET /$name: status $STATUS or bytes differ from web/$name"
    fi
    case $name in
    *.js) want='^text/javascript' ;;
    *.css) want='^text/css' ;;
    *.html) want='^text/html' ;;
    *) want=. ;;
    esac
    [[ $(hdr Content-Type) =~ $want ]] ||
        fail "GET /$name: Content-Type $(hdr Content-Type)"
done
[ "$n" -gt 0 ] && pass "all $n files of web/ served as they are, without a sign-in"

NOAUTH=1 req GET "$ORIGIN/"
expect_status 200 "GET /"
cmp -s "$BODY" "$SRC/web/index.html" && pass "/ is index.html" ||
    fail "/ is not index.html"
expect_header Content-Security-Policy "script-src 'self'" "GET /"
expect_header X-Frame-Options '^DENY$' "GET /"
expect_header X-Content-Type-Options '^nosniff$' "GET /"
expect_header Referrer-Policy '^no-referrer$' "GET /"
expect_header Cache-Control '^no-store$' "GET /"
head_out=$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' \
    "$ORIGIN/app.js")
expect_eq "HEAD /app.js: 200 and no body" "200 0" "$head_out"
NOAUTH=1 req POST "$ORIGIN/" --data x
expect_status 405 "POST /"
for p in /nope.js /index.htm /web/app.js /..%2fCMakeLists.txt /app.js/ /.x; do
    NOAUTH=1 req GET "$ORIGIN$p"
    expect_status 404 "GET $p"
done
summary
