#!/usr/bin/env bash
# Regenerates the README's comparison tables (about 15 minutes on 2 cores):
#   bash benchmarks/compare.sh
# 1. nanoGPT's CPU configuration (4 layers, 4 heads, d=128, context 64, batch 12, 2000 steps,
#    lr 1e-3 cosine to 1e-4, warmup 100, no dropout), one run per mixer stack.
# 2. the same model sizes at context 256: tokens/s per variant (short runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
R=benchmarks/results
VARIANTS=(attention spectral-gated spectral "spectral-gated,spectral-gated,local:64,spectral-gated")
COMMON=(--data "$DATA" --n-layers 4 --n-heads 4 --d-model 128 --batch-size 12 --lr 1e-3
        --min-lr-ratio 0.1 --warmup 100 --dropout 0 --device cpu)
$PY -m specmix compare --overwrite --mixers "${VARIANTS[@]}" "${COMMON[@]}" --context 64 --steps 2000 \
    --eval-every 250 --eval-batches 20 --out $R/compare
$PY -m specmix compare --overwrite --mixers "${VARIANTS[@]}" "${COMMON[@]}" --context 256 --steps 150 \
    --eval-every 150 --eval-batches 4 --out $R/compare-ctx256
$PY benchmarks/update_readme.py
