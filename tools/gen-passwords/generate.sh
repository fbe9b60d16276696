#!/bin/sh
# Regenerate src/security/gen/common_passwords.c from the pinned zxcvbn
# (its "passwords" frequency list). Needs Node 20+ and npm; installs into
# tools/gen-passwords/node_modules (git-ignored). Building medrec itself
# needs none of this.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund
fi
exec node generate.mjs "$here/../../src/security/gen"
