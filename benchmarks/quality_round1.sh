#!/usr/bin/env bash
# The first round of the quality table (about 70 minutes on 2 cores, run it alone):
#   bash benchmarks/quality_round1.sh
# Two recipes, each given the same wall-clock budget of training on tiny Shakespeare (nanoGPT's
# 90/10 split: the first 90% of the characters train, the last 10% validate), then the same two
# recipes, unchanged, on a second corpus built on the machine (the Python standard library's
# sources, 4 MB) with a shorter budget. --time-limit also ends the cosine schedule, so each run
# decays its learning rate over its budget. Then quality.json, quality.png and the README.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
MINUTES=${MINUTES:-30}          # main budget per recipe
SECOND_MINUTES=${SECOND_MINUTES:-4}
R=benchmarks/results/quality
# the same shape, optimizer and schedule for both; only the mixers (and attention's positions) differ
COMMON=(--n-layers 4 --d-model 256 --n-heads 4 --context 256 --batch-size 32 --lr 2e-3
        --min-lr-ratio 0.1 --warmup 200 --weight-decay 0.1 --dtype bfloat16
        --steps 1000000 --eval-every 200 --eval-batches 16 --device cpu)
# the spectral recipe's implicit filter won the short-budget search (benchmarks/quality_search.sh)
# attention gets rotary positions: with learned ones it sat on the bigram plateau (val 2.41
# after 6 minutes in that search), with RoPE it learned MQAR where learned positions did not
declare -A MIXERS=([spectral]="spectral-gated --filter implicit" [attention]="attention --pos-emb rope")
# dropout (after the embedding, on every residual branch, on attention weights) per recipe;
# SPECTRAL_DROPOUT / ATTENTION_DROPOUT override it for a search run
declare -A DROPOUT=([spectral]=${SPECTRAL_DROPOUT:-0.25} [attention]=${ATTENTION_DROPOUT:-0.25})
# RECIPES="spectral" reruns one recipe; the other's runs already in $R are kept
for corpus in shakespeare stdlib; do
  if [ $corpus = shakespeare ]; then data=$DATA; seconds=$((MINUTES * 60)); else data=python-stdlib; seconds=$((SECOND_MINUTES * 60)); fi
  for recipe in ${RECIPES:-spectral attention}; do
    rm -rf "$R/$corpus-$recipe"
    # shellcheck disable=SC2086
    $PY -m specmix train --overwrite --data "$data" --mixers ${MIXERS[$recipe]} --dropout ${DROPOUT[$recipe]} "${COMMON[@]}" \
        --time-limit $seconds --out $R/$corpus-$recipe
  done
done
$PY benchmarks/quality_report.py $R
$PY benchmarks/update_readme.py
