#!/usr/bin/env bash
# The whole test suite, in passes (each pytest process loads one AiiDA profile):
#   1. everything: pure tests, and every AiiDA test on SQLite, the daemon tests on the
#      ZeroMQ broker bundled with aiida-core;
#   2. the storage-heavy AiiDA tests (marker `postgres`) again on the PostgreSQL server at
#      127.0.0.1:5432 (user postgres, trust auth; a temporary database, dropped afterwards);
#   3. the daemon tests (marker `daemon`) on PostgreSQL with RabbitMQ at 127.0.0.1:5672.
# Before them, ruff and mypy (configured in pyproject.toml) must be clean.
# The services are chosen by CRYSTINV_TEST_STORAGE / CRYSTINV_TEST_BROKER (tests/aiida/conftest.py).
# A missing service skips its tests with the reason, except with CI=true, where it fails them.
# pytest's exit code 5 ("no tests collected") is a failure in every pass.
set -uo pipefail
PY=${1:-python}
cd "$(dirname "$0")/.."
# the daemon starts `verdi`: use the one next to this interpreter
export PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"
status=0
run() {
    echo "=== ${PASS_NAME}: pytest $* ==="
    "$PY" -m pytest "$@"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "pass '${PASS_NAME}' failed with exit code $rc (5 means no tests ran)"
        status=1
    fi
}
echo "=== lint: ruff check, mypy (configured in pyproject.toml) ==="
if ! "$PY" -m ruff check aiida_crystinv tests benchmarks examples; then echo "ruff failed"; status=1; fi
if ! "$PY" -m mypy; then echo "mypy failed"; status=1; fi
echo "=== services: SLURM and sshd for the scheduler/transport tests (tests/services/setup.sh) ==="
bash tests/services/setup.sh || true
PASS_NAME="sqlite + zeromq" CRYSTINV_TEST_STORAGE=sqlite CRYSTINV_TEST_BROKER=zeromq run -q tests
PASS_NAME="postgresql" CRYSTINV_TEST_STORAGE=psql CRYSTINV_TEST_BROKER=zeromq run -q -m postgres tests/aiida
PASS_NAME="postgresql + rabbitmq daemon" CRYSTINV_TEST_STORAGE=psql CRYSTINV_TEST_BROKER=rabbitmq run -q -m daemon tests/aiida
exit $status
