#!/usr/bin/env bash
# The recipe search behind benchmarks/quality.sh (run it alone; MINUTES per recipe):
#   bash benchmarks/quality_search.sh                         # MINUTES=6 per recipe by default
#   ONLY="attn-muon-deep attn-muon-wide" bash benchmarks/quality_search.sh   # some recipes
# Each recipe trains on tiny Shakespeare (nanoGPT's 90/10 split) for the same short budget,
# its cosine schedule decayed over that budget; quality.json / quality.png in the folder then
# rank them by best val. Short budgets rank recipes, they do not predict the 30-minute value.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
MINUTES=${MINUTES:-6}
R=${R:-benchmarks/results/quality-search}
COMMON=(--context 256 --batch-size 32 --lr 2e-3 --min-lr-ratio 0.1 --warmup 100 --weight-decay 0.1
        --dtype bfloat16 --steps 1000000 --eval-every 100 --eval-batches 16 --device cpu
        --time-limit $((MINUTES * 60)))
# later flags win: a recipe may override COMMON's (e.g. --lr)
declare -A RECIPES=(
  [muon-deep]="--mixers spectral-gated --filter implicit --n-layers 6 --d-model 128 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5"
  [muon-deep-lr1e-3]="--mixers spectral-gated --filter implicit --n-layers 6 --d-model 128 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5 --lr 1e-3"
  [adamw-deep]="--mixers spectral-gated --filter implicit --n-layers 6 --d-model 128 --dropout 0.2 --lr 1e-3"
  [muon-implicit]="--mixers spectral-gated --filter implicit --n-layers 4 --d-model 256 --dropout 0.25 --optimizer muon --schedule wsd --cooldown 0.5"
  [gated]="--mixers spectral-gated --n-layers 4 --d-model 256 --dropout 0.25"
  [implicit]="--mixers spectral-gated --filter implicit --n-layers 4 --d-model 256 --dropout 0.25"
  [hybrid]="--mixers spectral-gated,spectral-gated,attention,spectral-gated --n-layers 4 --d-model 256 --n-heads 4 --dropout 0.25"
  [wide]="--mixers spectral-gated --n-layers 6 --d-model 384 --dropout 0.25"
  [attention]="--mixers attention --n-layers 4 --d-model 256 --n-heads 4 --dropout 0.25"
  # hybrids and cheaper spectral variants of muon-deep (attention in a third of the layers, rotary
  # positions there; the frequency filter: fewer FLOPs per step than the implicit one)
  [hybrid-muon-deep]="--mixers spectral-gated,spectral-gated,attention,spectral-gated,spectral-gated,attention --filter implicit --pos-emb rope --attn-dropout 0 --n-layers 6 --d-model 128 --n-heads 4 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5"
  [muon-deep-frequency]="--mixers spectral-gated --n-layers 6 --d-model 128 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5"
  # attention's own search, with the spectral search's levers (rotary positions throughout; no
  # dropout on the attention weights, which turns off PyTorch's fused CPU kernel: 3305 vs 7636
  # tokens/s over the first 20 steps of attn-muon-deep on 2 cores)
  [attn-muon-deep]="--mixers attention --pos-emb rope --n-layers 6 --d-model 128 --n-heads 4 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5 --attn-dropout 0"
  [attn-muon-deep-lr1e-3]="--mixers attention --pos-emb rope --n-layers 6 --d-model 128 --n-heads 4 --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5 --lr 1e-3 --attn-dropout 0"
  [attn-adamw-deep]="--mixers attention --pos-emb rope --n-layers 6 --d-model 128 --n-heads 4 --dropout 0.2 --lr 1e-3 --attn-dropout 0"
  [attn-muon-wide]="--mixers attention --pos-emb rope --n-layers 4 --d-model 256 --n-heads 4 --dropout 0.25 --optimizer muon --schedule wsd --cooldown 0.5 --attn-dropout 0"
)
for name in ${ONLY:-gated implicit hybrid wide attention}; do
  # shellcheck disable=SC2086
  $PY -m specmix train --overwrite --data "$DATA" "${COMMON[@]}" ${RECIPES[$name]} --out $R/$name
done
$PY benchmarks/quality_report.py $R
