#!/usr/bin/env bash
# A command-line session on data the project generates itself (no downloads).
# Uses the default AiiDA profile, or creates the embedded SQLite profile 'crystinv'.
set -euo pipefail
out=${1:-crystinv-session}

crystinv demo --n 100 --seed 1 --output "$out"            # generate, import, AMD, PDD, kNN, duplicates
dataset=$(crystinv list --limit 1 | awk 'NR==3 {print $1}') # the newest dataset
crystinv show "$dataset"
crystinv export "$dataset" --ids "$(crystinv show "$dataset" | awk -F': ' '/^Records/ {split($2, a, ", "); print a[1]}')" -o "$out/first.cif" --force
crystinv invariants "$dataset" --descriptor amd -p k=50
amd=$(crystinv list --what invariants --limit 1 | awk 'NR==3 {print $1}')
crystinv neighbours "$amd" -k 3 --limit 5
crystinv duplicates "$amd" --threshold 0.03
crystinv neighbours "$amd" -k 3 --format csv > "$out/neighbours.csv"  # every edge; the messages go to stderr
head -3 "$out/neighbours.csv"
crystinv duplicates "$amd" --threshold 0.03 --pairs -o "$out/pairs.json" --force
crystinv export "$dataset" -o "$out/all.csv" --force              # id, formula, cif, targets [unit]
crystinv import "$out/all.csv" --label "from-csv"                  # the same values and units back
crystinv import "$out/ewald_landscape_n100_seed1.json" --id-column id \
    --target ewald_energy_per_atom:eV/atom --label "again" --group crystinv-session
crystinv list --group crystinv-session
