#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet (the
# Makefile's stamps call it; nothing happens when everything is present).
set -euo pipefail
what=$1; shift
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages for $what: ${missing[*]}"
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
