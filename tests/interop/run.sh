#!/usr/bin/env bash
# Interop tests: medrec's FHIR API driven by real third-party clients and
# checked against the official R4 JSON schema (see interop.test.mjs).
# Installs the pinned npm packages (package-lock.json) on first run; skips
# (exit 77) when Node.js or npm is not installed.
set -u
cd "$(dirname "$0")" || exit 1

for c in node npm; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "interop: SKIP: needs $c (Node.js) to run the interop tests"
        exit 77
    fi
done
export MEDREC=${MEDREC:-$PWD/../../build/medrec}
if [ ! -x "$MEDREC" ]; then
    echo "interop: SKIP: $MEDREC is not built"
    exit 77
fi
if [ ! -d node_modules ]; then
    echo "interop: installing npm packages (npm ci)"
    if ! npm ci --no-audit --no-fund; then
        echo "interop: npm ci failed"
        exit 1
    fi
fi
exec node --test interop.test.mjs
