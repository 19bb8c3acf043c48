#!/usr/bin/env bash
# Regenerates the long-context results (docs/long-context.md, docs/benchmarks.md) (about 60 minutes on 2 cores):
#   bash benchmarks/long_context.sh            # every part, then the README
#   bash benchmarks/long_context.sh recall     # one part: recall | sweep | lmstep | lengths | lm4096 | decode
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
R=benchmarks/results
PARTS=${1:-recall sweep lmstep lengths lm4096 decode}

for part in $PARTS; do
  case $part in
  recall)   # associative recall, vocab 30, 1024 tokens: 2-layer models, same steps and batch,
            # (these runs once also had --time-limit 1200, never reached; a time limit now also
            # shortens the cosine schedule, so it is left out)
    $PY -m specmix compare --overwrite --task recall --task-vocab 30 --context 1024 \
        --mixers spectral-gated spectral attention --head-dim 8 --n-layers 2 --d-model 64 \
        --n-heads 4 --batch-size 16 --steps 1000 --warmup 50 --lr 3e-3 --eval-every 100 \
        --eval-batches 16 --device cpu --out $R/recall
    $PY -m specmix compare --overwrite --task recall --task-vocab 30 --context 1024 \
        --mixers spectral-gated --head-dim 1 --n-layers 2 --d-model 64 \
        --n-heads 4 --batch-size 16 --steps 1000 --warmup 50 --lr 3e-3 --eval-every 100 \
        --eval-batches 16 --device cpu --out $R/recall-head1 ;;
  sweep)    # one training step (fwd + bwd + AdamW) of 4-layer d=128 stacks vs context
    $PY -m specmix bench --backend lm --mode train --lengths 256,1024,4096,8192,16384,32768,65536 \
        --d-model 128 --n-layers 4 --n-heads 4 --ops attention,local:256,spectral,spectral-gated \
        --repeats 3 --max-seconds 30 \
        --out $R/lm-context ;;
  lmstep)   # whole-model training step at 256 / 1K / 8K, fp32 and bf16:
            # the sweep (tokens/s and memory, each model in its own process) and the pairs (both
            # models in one process, alternating steps: the ratio a shared machine's drift cannot fake)
    for run in float32:fp32 bfloat16:bf16; do
      $PY -m specmix bench --backend lm --mode train --lengths 256,1024,8192 --d-model 128 \
          --n-layers 4 --n-heads 4 --ops attention,spectral-gated --repeats 7 --dtype ${run%:*} \
          --out $R/lm-step/${run#*:}
      $PY -m specmix bench-pairs --backend lm --op spectral-gated --against attention \
          --bases 256,1024,8192 --neighbours 256,1024,8192 --rounds 15 --dtype ${run%:*} \
          --out $R/lm-step/pairs-${run#*:}
      # the ceiling: the gated stack with nothing mixed along N (its projections and gate only)
      $PY -m specmix bench-pairs --backend lm --op gated-projections --against attention \
          --bases 256,1024,8192 --neighbours 256,1024,8192 --rounds 15 --dtype ${run%:*} \
          --out $R/lm-step/ceiling-${run#*:}
    done ;;
  lengths)  # implicit-filter model trained at context 1024, evaluated at 1024 / 4096 / 16384
    $PY -m specmix train --overwrite --data "$DATA" --mixers spectral-gated --filter implicit --context 1024 \
        --n-layers 4 --d-model 128 --batch-size 8 --steps 600 --warmup 50 --lr 2e-3 \
        --eval-every 200 --eval-batches 8 --device cpu --out $R/lengths-train
    $PY -m specmix eval-lengths --checkpoint $R/lengths-train --contexts 1024,4096,16384 \
        --tokens 65536 --device cpu --out $R/lengths/lengths.json ;;
  lm4096)   # a spectral LM trained at context 4096
    $PY -m specmix train --overwrite --data "$DATA" --mixers spectral-gated --context 4096 --n-layers 4 \
        --d-model 128 --batch-size 4 --steps 600 --warmup 50 --lr 2e-3 --eval-every 100 \
        --eval-batches 4 --device cpu --out $R/lm-4096 ;;
  decode)   # cached generation after long prompts, equal-size untrained models
    $PY -m specmix bench-decode --prompts 1024,8192,32768 --new-tokens 2048 --d-model 128 \
        --n-layers 4 --n-heads 4 --repeats 5 --device cpu --out $R/decode
    # the same with the implicit (length-free) filter: few parameters instead of D x context per layer
    $PY -m specmix bench-decode --prompts 32768 --new-tokens 2048 --d-model 128 --n-layers 4 \
        --n-heads 4 --repeats 3 --filter implicit --device cpu --out $R/decode-implicit ;;
  *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
$PY benchmarks/update_readme.py
