#!/usr/bin/env bash
# Exit 0 when FiftyOne can start (or reach) its database.
set -u
python_bin="$1"
dbdir="$(mktemp -d)"
trap 'rm -rf "$dbdir"' EXIT
FIFTYONE_DATABASE_DIR="$dbdir" FIFTYONE_DO_NOT_TRACK=true \
FIFTYONE_DATABASE_VALIDATION=false \
    timeout 180 "$python_bin" -c "import fiftyone as fo; fo.Dataset(); print('setup: FiftyOne database OK')" \
    >/dev/null 2>&1
