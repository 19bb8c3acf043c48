#!/usr/bin/env bash
# The 30-minute quality table, second round (run it alone; 30 minutes per recipe on 2 cores):
#   bash benchmarks/quality_round2.sh                  # every recipe
#   RECIPES=spectral bash benchmarks/quality_round2.sh # one; the others' runs in $R are kept
# The spectral recipe is the best of the short-budget search (benchmarks/quality_search.sh,
# docs/benchmarks.md): spectral-gated, implicit filter, 6 layers x d_model 128, dropout 0.2,
# Muon on the hidden matrices (AdamW on the rest), warmup-stable-decay with a cooldown of half
# the budget, lr 2e-3. Attention gets the same shape, optimizer and schedule with rotary
# positions. Each run decays over its --time-limit; then quality.json, quality.png, the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
MINUTES=${MINUTES:-30}
R=benchmarks/results/quality-round2
COMMON=(--n-layers 6 --d-model 128 --n-heads 4 --context 256 --batch-size 32 --lr 2e-3 --min-lr-ratio 0.1
        --warmup 100 --weight-decay 0.1 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5
        --dtype bfloat16 --steps 1000000 --eval-every 100 --eval-batches 16 --device cpu)
declare -A MIXERS=([spectral]="spectral-gated --filter implicit" [attention]="attention --pos-emb rope")
for recipe in ${RECIPES:-spectral attention}; do
  # shellcheck disable=SC2086
  $PY -m specmix train --overwrite --data "$DATA" --mixers ${MIXERS[$recipe]} "${COMMON[@]}" \
      --time-limit $((MINUTES * 60)) --out $R/shakespeare-$recipe
done
$PY benchmarks/quality_report.py $R
$PY benchmarks/update_readme.py
