#!/bin/sh
# Installs every package Sol needs to build and test on Debian/Ubuntu.
# Idempotent: when everything is present it only checks (dpkg-query) and exits.
set -eu

PACKAGES="build-essential cmake pkg-config liblmdb-dev libev-dev libcmocka-dev libssl-dev \
clang libclang-rt-14-dev lmdb-utils mosquitto mosquitto-clients python3 python3-paho-mqtt \
openssl jq lcov libmicrohttpd-dev scdoc groff-base man-db curl \
libwslay-dev libhttp-parser-dev liburing-dev chromium"

# node and npm run MQTT.js in test_websockets.py (which npm-installs it into
# the build tree). A machine may already have them (e.g. nodesource's nodejs,
# which bundles npm and conflicts with Debian's npm package): only what is
# missing is installed from Debian.
if ! command -v node >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs"
fi
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES npm"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root: apt-get install -y$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
