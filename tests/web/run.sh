#!/usr/bin/env bash
# Web UI tests: the records workspace in Debian's Chromium, driven by
# playwright-core (see web.test.mjs) against a real `medrec serve`.
# Installs the pinned npm package (package-lock.json) on first run, never a
# browser of its own; skips (exit 77) when Node.js, npm or Chromium is not
# installed.
set -u
cd "$(dirname "$0")" || exit 1

for c in node npm; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "web: SKIP: needs $c (Node.js) to run the web tests"
        exit 77
    fi
done
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "web: SKIP: needs Chromium at $CHROMIUM (Debian package chromium)"
    exit 77
fi
export MEDREC=${MEDREC:-$PWD/../../build/medrec}
export MR_SYNTH=${MR_SYNTH:-$PWD/../../build/mr-synth}
for p in "$MEDREC" "$MR_SYNTH"; do
    if [ ! -x "$p" ]; then
        echo "web: SKIP: $p is not built"
        exit 77
    fi
done
if [ ! -d node_modules/playwright-core ]; then
    echo "web: installing npm packages (npm ci)"
    if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund; then
        echo "web: npm ci failed"
        exit 1
    fi
fi
exec node --test --test-concurrency=1 web.test.mjs
