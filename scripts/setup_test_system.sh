#!/usr/bin/env bash
# What the tests need beyond .venv: Debian's chromium for the App tests in
# a real browser. Installed with apt-get when missing and running as root
# (as CI does); otherwise the browser tests are skipped, with the reason,
# unless JINA_V4_REQUIRE_BROWSER=1 (CI sets it) makes them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's chromium for the App tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: /usr/bin/chromium missing (not root): App browser tests will be skipped" >&2
    fi
fi
