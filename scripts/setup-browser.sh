#!/usr/bin/env bash
# Install Debian's chromium for the hub's web UI test (Playwright drives it; no browser download).
# Idempotent: does nothing when /usr/bin/chromium is there. Runs apt-get update only when the
# package lists have never been fetched or the install fails on a stale list.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-browser: chromium is missing and this is not root; install it with: apt-get install chromium" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial || true)" ]; then
  apt-get update -qq
fi
if ! apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
echo "setup-browser: $(chromium --version 2>/dev/null || echo 'chromium installed')" >&2
