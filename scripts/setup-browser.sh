#!/usr/bin/env bash
# Install Debian's chromium for the hub's web UI test (Playwright drives it; no browser download).
# Idempotent: does nothing when chromium is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" setup-browser chromium fonts-dejavu-core
if command -v chromium >/dev/null 2>&1; then
  echo "setup-browser: $(chromium --version 2>/dev/null || echo 'chromium installed')" >&2
fi
