#!/usr/bin/env bash
# Install Debian's wrk, the HTTP load generator benchmarks/serve.py uses (it falls back to a
# slower Python one). Idempotent: does nothing when wrk is there.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" setup-bench wrk
command -v wrk >/dev/null 2>&1 && echo "setup-bench: wrk installed" >&2 || true
