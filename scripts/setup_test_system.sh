#!/usr/bin/env bash
# What the tests need beyond .venv, from Debian's packages:
# - chromium, for the App tests in a real browser (installed with apt-get
#   when missing and running as root, as CI does);
# - real PDFs that no one here wrote, for the PDF import tests: the
#   manuals shipped in libtasn1-doc and shared-mime-info, fetched with
#   `apt-get download` and extracted (not installed) under tests/.cache.
# Without them those tests are skipped, with the reason, unless
# JINA_V4_CI=1 (CI sets it) makes them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=tests/.cache/debian-pdfs
PDF_PACKAGES="libtasn1-doc shared-mime-info"
updated=0

apt_update() {
    if [ "$updated" = 0 ] && [ "$(id -u)" = "0" ]; then
        apt-get update -qq
        updated=1
    fi
}

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's chromium for the App tests"
        apt_update
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: /usr/bin/chromium missing (not root): App browser tests will be skipped" >&2
    fi
fi

if [ ! -f "$CACHE/.done" ] && command -v apt-get >/dev/null; then
    echo "setup: fetching PDFs from Debian packages ($PDF_PACKAGES)"
    mkdir -p "$CACHE/debs" "$CACHE/root"
    apt_update
    if (cd "$CACHE/debs" && apt-get download $PDF_PACKAGES >/dev/null 2>&1); then
        for deb in "$CACHE"/debs/*.deb; do
            dpkg-deb -x "$deb" "$CACHE/root"
        done
        touch "$CACHE/.done"
    else
        echo "setup: apt-get download failed: PDF tests will use installed copies or be skipped" >&2
    fi
fi
