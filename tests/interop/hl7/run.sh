#!/usr/bin/env bash
# HL7 interop test: medrec's MLLP feed (`medrec serve --mllp`) driven by a
# real third-party MLLP client, node-hl7-client from npm (see
# hl7.test.mjs). Installs the pinned npm package (package-lock.json) on
# first run; skips (exit 77) when Node.js or npm is not installed or
# $MEDREC is not built.
set -u
cd "$(dirname "$0")" || exit 1

for c in node npm; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "interop/hl7: SKIP: needs $c (Node.js) to run the HL7 interop test"
        exit 77
    fi
done
# node-hl7-client 3.2.0 declares node >= 20.15 (node:test is needed too).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
              process.exit(a > 20 || (a === 20 && b >= 15) ? 0 : 1)'; then
    echo "interop/hl7: SKIP: needs Node.js 20.15 or later, found $(node --version)"
    exit 77
fi
export MEDREC=${MEDREC:-$PWD/../../../build/medrec}
if [ ! -x "$MEDREC" ]; then
    echo "interop/hl7: SKIP: $MEDREC is not built"
    exit 77
fi
if [ ! -d node_modules ]; then
    echo "interop/hl7: installing npm packages (npm ci)"
    if ! npm ci --no-audit --no-fund; then
        echo "interop/hl7: npm ci failed"
        exit 1
    fi
fi
exec node --test hl7.test.mjs
