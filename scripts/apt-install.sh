#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: install Debian packages for a set-up script (WHO names it in
# messages). Not root: one line saying what to install, and exit 0. Runs apt-get update only
# when the package lists have never been fetched or the install fails on a stale list.
set -euo pipefail
who=$1
shift
if [ "$(id -u)" != 0 ]; then
  echo "$who: missing, and this is not root; install it with: apt-get install $*" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial || true)" ]; then
  apt-get update -qq
fi
if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
fi
