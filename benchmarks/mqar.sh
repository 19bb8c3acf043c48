#!/usr/bin/env bash
# Multi-query associative recall (MQAR, Zoology) sweep; run it alone.
#   bash benchmarks/mqar.sh                    # CPU tier, about an hour on 2 cores
#   bash benchmarks/mqar.sh --full --device cuda   # Zoology's data sizes, every cell (a GPU)
#   bash benchmarks/mqar.sh --only gated --lrs 0.001   # extend: these models at another lr
# A run keeps the cells and runs already in its results folder (same tier and device).
# Writes benchmarks/results/mqar[-full]/mqar.json and mqar.png, then the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TIER=cpu; DEVICE=cpu; EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --full) TIER=full ;;
    --device) DEVICE=${2:?--device needs cpu or cuda}; shift ;;
    --only) EXTRA+=(--only "${2:?--only needs a name}"); shift ;;
    --lrs) EXTRA+=(--lrs "${2:?--lrs needs a comma list}"); shift ;;
    *) echo "mqar.sh: unknown argument $1 (expected --full, --device cpu|cuda, --only NAME, --lrs LR,LR)" >&2; exit 2 ;;
  esac
  shift
done
OUT=benchmarks/results/mqar$([ $TIER = full ] && echo -full || true)
$PY -m specmix.app.bench.mqar run --tier $TIER --device $DEVICE --out $OUT "${EXTRA[@]}"
$PY benchmarks/update_readme.py
