#!/usr/bin/env bash
# Installs Debian's headless Chromium for the leaderboard page test when it
# is missing and we may install packages; otherwise that test skips.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the browser test will skip"
else
  echo "note: chromium missing and not root; the browser test will skip"
fi
exit 0
