#!/bin/sh
# Installs the Debian 12 packages medrec needs to build, test and run.
# Used by the README's set-up commands, `make demo` and .ci/run.
set -eu
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libsqlite3-dev sqlite3 libjansson-dev libsodium-dev libmicrohttpd-dev
libcmocka-dev libpq-dev libgnutls28-dev zlib1g-dev bc jq curl wrk
oathtool openssl chromium"
# Node and npm (interop and browser tests) from Debian unless some Node is
# already installed: Debian's npm conflicts with NodeSource's nodejs.
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
