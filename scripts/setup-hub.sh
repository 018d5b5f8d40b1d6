#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the hub's tests (the test fixture runs its own
# throw-away cluster with initdb/pg_ctl on 127.0.0.1; nothing is started here).
# Idempotent: does nothing when initdb is there; apt-get update only when the lists are empty
# or an install fails on a stale list.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-hub: PostgreSQL is missing and this is not root; install it with: apt-get install postgresql" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial || true)" ]; then
  apt-get update -qq
fi
# postgresql-common would create and start a system cluster; the tests need neither
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/mlpack-no-main.conf
if ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
echo "setup-hub: $(ls -d /usr/lib/postgresql/*/bin | head -1) installed" >&2
