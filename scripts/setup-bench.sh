#!/usr/bin/env bash
# Install Debian's wrk, the HTTP load generator benchmarks/serve.py uses (it falls back to a slower Python one).
# Idempotent: does nothing when /usr/bin/wrk is there. Runs apt-get update only when the
# package lists have never been fetched or the install fails on a stale list.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-bench: wrk is missing and this is not root; install it with: apt-get install wrk" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial || true)" ]; then
  apt-get update -qq
fi
if ! apt-get install -y -qq --no-install-recommends wrk >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
echo "setup-bench: wrk installed" >&2
