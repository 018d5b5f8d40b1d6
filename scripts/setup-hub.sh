#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the hub's tests (the test fixture runs its own
# throw-away cluster with initdb/pg_ctl on 127.0.0.1; nothing is started here).
# Idempotent: does nothing when initdb is there (scripts/apt-install.sh does the installing).
set -euo pipefail
installed() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; }
if installed; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  # postgresql-common would create and start a system cluster; the tests need neither
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/mlpack-no-main.conf
fi
bash "$(dirname "$0")/apt-install.sh" "setup-hub: PostgreSQL" postgresql
if installed; then
  echo "setup-hub: $(ls -d /usr/lib/postgresql/*/bin | head -1) installed" >&2
fi
