#!/usr/bin/env bash
# float32 vs bfloat16 autocast training, the same command per dtype (about 5 minutes on 2 cores,
# run it alone):
#   bash benchmarks/train_speed.sh
# The probe's shape: 4 layers, d_model 128, context 1024, batch 4, spectral-gated, 200 steps,
# evaluated every 50 steps on the same fixed batches. Each dtype runs twice, in the order
# float32, bfloat16, bfloat16, float32, so that a machine whose speed drifts during the
# script weighs on both dtypes alike; the speed ratio in docs/benchmarks.md is over both runs of each.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
R=benchmarks/results
for run in float32 bfloat16 bfloat16-2 float32-2; do
  dtype=${run%-2}
  $PY -m specmix train --overwrite --data "$DATA" --mixers spectral-gated --n-layers 4 --d-model 128 \
      --context 1024 --batch-size 4 --steps 200 --warmup 20 --lr 2e-3 --eval-every 50 \
      --eval-batches 4 --dtype $dtype --device cpu --out $R/train-dtype/$run
done
$PY benchmarks/update_readme.py
