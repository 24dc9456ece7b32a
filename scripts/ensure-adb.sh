#!/usr/bin/env bash
# Installs Debian's `adb` (Google's client) when it is missing: the tests drive the emulated
# phone with it as well as with adb-shell.
set -euo pipefail
if command -v adb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian's adb (needed by the tests)..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq adb >/dev/null
