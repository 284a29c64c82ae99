#!/usr/bin/env bash
# Exit 0 when FiftyOne can find and run its OWN mongod (the one it starts
# when FIFTYONE_DATABASE_URI is unset). Connecting to whatever database
# answers would not do: a database service of another FiftyOne
# environment may be running, and the user's datasets would go there.
set -u
python_bin="$1"
FIFTYONE_DO_NOT_TRACK=true timeout 180 "$python_bin" - <<'PY' >/dev/null 2>&1
import subprocess
import sys

import fiftyone.core.service as fos

mongod = fos.DatabaseService.find_mongod()  # raises when it is missing
result = subprocess.run([mongod, "--version"], capture_output=True, timeout=60)
sys.exit(result.returncode)
PY
