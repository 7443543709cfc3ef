#!/usr/bin/env bash
# The real services of the tests: a one-node SLURM cluster, an sshd and Quantum ESPRESSO
# on 127.0.0.1 (see README.md here). Each script is run even if the other fails; the exit
# code is 0 only when all are ready (the tests of a missing service skip, or fail with CI=true).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
status=0
for service in slurm ssh qe; do
    bash "$here/$service.sh"
    rc=$?
    case $rc in
        0) ;;
        3) echo "setup.sh: $service not set up (not root and not installed); its tests will skip"; status=1 ;;
        *) echo "setup.sh: $service failed (exit code $rc); its tests will skip"; status=1 ;;
    esac
done
exit $status
