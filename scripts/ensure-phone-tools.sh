#!/usr/bin/env bash
# Installs what the emulated phone runs on, when missing: Android's shell and toolbox as
# Debian packages them (mksh, toybox), busybox-static for the commands Android's toybox has
# and Debian's build lacks (tr, dd, expr...), bubblewrap for the sandbox, and e2fsprogs for
# the phone's /data image (qwenchat/emulator/hostlend.py and storage.py say why each).
set -euo pipefail
missing=()
command -v mksh >/dev/null 2>&1 || missing+=(mksh)
command -v toybox >/dev/null 2>&1 || missing+=(toybox)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing the emulated phone's tools: ${missing[*]}..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
