#!/usr/bin/env bash
# System packages the test suite needs: Debian's Chromium for the end-to-end browser tests.
# Installs only what is missing, and only where it can (root + apt-get); elsewhere the
# browser tests skip with a message naming this script.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: ${need[*]} missing and cannot be installed here (needs root + apt-get); browser tests will be skipped." >&2
  exit 0
fi
echo ">> installing ${need[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
