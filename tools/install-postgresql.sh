#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the ledger-on-PostgreSQL tests
# (tests/test_mlflow_server.py) when it is missing and we may install
# packages; otherwise those tests skip, saying why.
set -u
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && exit 0
command -v pg_ctl >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "note: could not install postgresql; the PostgreSQL ledger tests will skip"
else
  echo "note: postgresql missing and not root; the PostgreSQL ledger tests will skip"
fi
exit 0
