#!/usr/bin/env bash
# Installs one of Debian's packages that some tests need, when it is missing
# and we may install packages; otherwise those tests skip, saying why.
#   tools/install-if-missing.sh PACKAGE "WHAT SKIPS WITHOUT IT" PROBE
# PROBE is a shell command that succeeds when the package is already there.
set -u
package=$1 what=$2 probe=$3
bash -c "$probe" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null) \
    || echo "note: could not install $package; $what will skip"
else
  echo "note: $package missing and not root; $what will skip"
fi
exit 0
