#!/usr/bin/env bash
# The whole test suite, in passes (each pytest process loads one AiiDA profile):
#   1. everything, AiiDA on SQLite (and the daemon tests on the bundled ZeroMQ broker);
#   2. the storage-heavy tests again on PostgreSQL 127.0.0.1:5432;
# pytest's exit code 5 ("no tests collected") is a failure in every pass.
set -uo pipefail
PY=${1:-python}
cd "$(dirname "$0")/.."
status=0
run() {
    echo "=== pytest $* ==="
    "$PY" -m pytest "$@"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "pass failed with exit code $rc (5 means no tests ran)"
        status=1
    fi
}
run -q tests
exit $status
