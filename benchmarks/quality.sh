#!/usr/bin/env bash
# The 30-minute quality table (run it alone; 30 minutes per row on 2 cores):
#   bash benchmarks/quality.sh                       # the table's four rows + second corpus, ~2.2 hours
#   ROWS="spectral attention-wide" bash benchmarks/quality.sh   # each side's runner-up, 1 hour
#   ROWS="attention gpt2" bash benchmarks/quality.sh # some rows; the others' runs in $R are kept
# Every row trains on tiny Shakespeare (nanoGPT's 90/10 split) for the same wall-clock budget,
# its schedule decayed over that budget (--time-limit), in the same training loop:
# - spectral, hybrid: the two best spectral-side recipes of the short-budget search
#   (benchmarks/quality_search.sh): spectral-gated, implicit filter, 6 layers x d_model 128,
#   dropout 0.2, Muon on the hidden matrices (AdamW on the rest), warmup-stable-decay with a
#   cooldown of half the budget, lr 2e-3; the hybrid has attention in 2 of the 6 layers;
# - attention, attention-wide: attention's two best recipes of the same search (rotary
#   positions; 6 x 128 and 4 x 256);
# - gpt2, mamba: transformers' GPT2LMHeadModel (SDPA) and MambaForCausalLM (its PyTorch path,
#   with mambapy's parallel scan) at the spectral recipe's parameter count (within 5%), trained by
#   `specmix train-peer` with the attention recipe's optimizer and schedule (GPT-2 also its
#   dropout; transformers' Mamba has none). Mamba evaluates less often: one evaluation of its 16
#   batches costs minutes on a CPU.
# Then the second corpus (the Python standard library's sources, built on the machine) for the
# table's recipes, unchanged, SECOND_MINUTES each (SECOND_RECIPES names others: spectral, ...);
# quality.json, quality.png, docs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
MINUTES=${MINUTES:-30}
SECOND_MINUTES=${SECOND_MINUTES:-4}
R=benchmarks/results/quality-round2
COMMON=(--context 256 --batch-size 32 --min-lr-ratio 0.1 --warmup 100 --weight-decay 0.1 --dtype bfloat16
        --steps 1000000 --eval-batches 16 --device cpu)
SPECTRAL=(--mixers spectral-gated --filter implicit --n-layers 6 --d-model 128 --dropout 0.2
          --optimizer muon --schedule wsd --cooldown 0.5 --lr 2e-3)
# the runner-up of the spectral side at 6 minutes (hybrid-muon-deep: attention with rotary
# positions in layers 3 and 6); each side's two best recipes of the search run the full budget
HYBRID=(--mixers spectral-gated,spectral-gated,attention,spectral-gated,spectral-gated,attention
        --filter implicit --pos-emb rope --attn-dropout 0 --n-layers 6 --d-model 128 --n-heads 4
        --dropout 0.2 --optimizer muon --schedule wsd --cooldown 0.5 --lr 2e-3)
# attention's two best of quality_search.sh: attn-muon-deep (6 x 128, the spectral recipe's shape,
# Muon + WSD, lr 2e-3, no dropout on the attention weights, which turns off PyTorch's fused CPU
# attention kernel) and attn-muon-wide (4 x 256, 3.2M parameters, first at 6 minutes)
ATTENTION=(--mixers attention --pos-emb rope --n-layers 6 --d-model 128 --n-heads 4 --dropout 0.2
           --attn-dropout 0 --optimizer muon --schedule wsd --cooldown 0.5 --lr 2e-3)
ATTENTION_WIDE=(--mixers attention --pos-emb rope --n-layers 4 --d-model 256 --n-heads 4 --dropout 0.25
                --attn-dropout 0 --optimizer muon --schedule wsd --cooldown 0.5 --lr 2e-3)
ATTENTION_TRAINING=(--optimizer muon --schedule wsd --cooldown 0.5 --lr 2e-3)
GPT2=(--family gpt2 --n-layers 6 --d-model 128 --n-heads 4 --dropout 0.2 --attn-dropout 0)
MAMBA=(--family mamba --n-layers 11 --d-model 128)

row() {  # row NAME CORPUS SECONDS EVAL_EVERY COMMAND FLAGS...
  local name=$1 data=$2 seconds=$3 every=$4; shift 4
  $PY -m specmix "$@" --overwrite --data "$data" "${COMMON[@]}" --eval-every "$every" \
      --time-limit "$seconds" --out "$R/$name"
}
# by default the better 30-minute result of each side's two (hybrid 1.4268 against spectral
# 1.4346; attention 1.4340 against attention-wide 1.4574), then the peers and the second corpus
for name in ${ROWS:-hybrid attention gpt2 mamba stdlib}; do
  case $name in
    spectral)  row shakespeare-spectral "$DATA" $((MINUTES * 60)) 100 train "${SPECTRAL[@]}" ;;
    hybrid)    row shakespeare-hybrid "$DATA" $((MINUTES * 60)) 100 train "${HYBRID[@]}" ;;
    attention) row shakespeare-attention "$DATA" $((MINUTES * 60)) 100 train "${ATTENTION[@]}" ;;
    attention-wide) row shakespeare-attention-wide "$DATA" $((MINUTES * 60)) 100 train "${ATTENTION_WIDE[@]}" ;;
    gpt2)      row shakespeare-gpt2 "$DATA" $((MINUTES * 60)) 100 train-peer "${GPT2[@]}" "${ATTENTION_TRAINING[@]}" ;;
    mamba)     row shakespeare-mamba "$DATA" $((MINUTES * 60)) 25 train-peer "${MAMBA[@]}" "${ATTENTION_TRAINING[@]}" ;;
    stdlib)    for recipe in ${SECOND_RECIPES:-hybrid attention}; do
                 case $recipe in
                   spectral) flags=("${SPECTRAL[@]}") ;;          hybrid) flags=("${HYBRID[@]}") ;;
                   attention) flags=("${ATTENTION[@]}") ;;        attention-wide) flags=("${ATTENTION_WIDE[@]}") ;;
                   *) echo "unknown recipe $recipe in SECOND_RECIPES" >&2; exit 2 ;;
                 esac
                 row "stdlib-$recipe" python-stdlib $((SECOND_MINUTES * 60)) 100 train "${flags[@]}"
               done ;;
    *) echo "unknown row $name (spectral hybrid attention attention-wide gpt2 mamba stdlib)" >&2; exit 2 ;;
  esac
done
$PY benchmarks/quality_report.py $R
$PY benchmarks/update_readme.py
