#!/usr/bin/env bash
# Quantum ESPRESSO for the DFT hand-off tests (idempotent): Debian's `quantum-espresso`
# (pw.x) and `quantum-espresso-data` (real UPF pseudopotentials in /usr/share/espresso/pseudo).
# The Python side (aiida-quantumespresso, aiida-pseudo) is the `qe` extra that `make test`
# installs. The pseudopotentials are read from the system package at run time, never copied.
#
# Exit codes: 0 `pw.x` and /usr/share/espresso/pseudo/C.pbe-rrkjus.UPF are there; 1 a step
# failed (the reason is printed); 3 not root and not installed.
set -uo pipefail
say() { echo "qe.sh: $*"; }
PSEUDO=/usr/share/espresso/pseudo/C.pbe-rrkjus.UPF

if command -v pw.x >/dev/null && [ -s "$PSEUDO" ]; then
    say "pw.x: $(command -v pw.x); pseudopotentials: $(dirname "$PSEUDO")"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    say "not root and pw.x or the pseudopotentials are missing: apt-get install quantum-espresso quantum-espresso-data"
    exit 3
fi
say "installing quantum-espresso quantum-espresso-data (apt-get)"
apt-get update -qq >/dev/null || { say "apt-get update failed"; exit 1; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq quantum-espresso quantum-espresso-data >/tmp/crystinv-qe-apt.log 2>&1 \
    || { tail -20 /tmp/crystinv-qe-apt.log >&2; say "apt-get install failed (log: /tmp/crystinv-qe-apt.log)"; exit 1; }
command -v pw.x >/dev/null && [ -s "$PSEUDO" ] || { say "installed, but pw.x or $PSEUDO is missing"; exit 1; }
say "pw.x: $(command -v pw.x); pseudopotentials: $(dirname "$PSEUDO")"
