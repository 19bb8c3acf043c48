#!/usr/bin/env bash
# specmix side by side with what users would install instead (docs/benchmarks.md, docs/long-context.md):
#   bash benchmarks/peers.sh            # every part, then the README and docs tables
#   bash benchmarks/peers.sh op         # one part: op | decode
# op:     the causal long convolution against flash-linear-attention's LongConvolution and
#         ImplicitLongConvolution (fla-core, installed here from the package index), same maths,
#         same (B, N, D), both sides in one process, alternating (bench-pairs)
# decode: batched cached decoding, attention's KV cache against the folded spectral state
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=benchmarks/results
PARTS=${1:-op decode}

# fla-core is pure Python (its ops need only torch and einops); check that nothing replaces torch
if ! $PY -c "import importlib.util as u, sys; sys.exit(u.find_spec('fla') is None)"; then
  $PY -m pip install --dry-run fla-core==0.6.0 | grep -q "torch-" && { echo "fla-core would replace torch" >&2; exit 1; }
  $PY -m pip install --quiet fla-core==0.6.0
fi

for part in $PARTS; do
  case $part in
  op)   # d_model 256, batch 1; 1K .. 256K tokens (training) and 1K .. 1M (inference)
    for pair in long-conv:fla-long-conv implicit-long-conv:fla-implicit-long-conv; do
      name=${pair%%:*}
      $PY -m specmix bench-pairs --op ${pair%%:*} --against ${pair#*:} --mode train --d-model 256 \
          --bases 1024,4096,16384,65536 --neighbours 1024,4096,16384,65536 --rounds 11 \
          --out $R/peers-op/$name-train
      $PY -m specmix bench-pairs --op ${pair%%:*} --against ${pair#*:} --mode train --d-model 256 \
          --bases 262144 --neighbours 262144 --rounds 5 --out $R/peers-op/$name-train-256k
      $PY -m specmix bench-pairs --op ${pair%%:*} --against ${pair#*:} --mode forward --d-model 256 \
          --bases 1024,4096,16384,65536 --neighbours 1024,4096,16384,65536 --rounds 11 \
          --out $R/peers-op/$name-forward
      $PY -m specmix bench-pairs --op ${pair%%:*} --against ${pair#*:} --mode forward --d-model 256 \
          --bases 262144,1048576 --neighbours 262144,1048576 --rounds 5 \
          --out $R/peers-op/$name-forward-1m
    done ;;
  decode)   # 4-layer d 128 untrained models, 128 new tokens per sequence
    $PY -m specmix bench-decode --prompts 1024,8192,32768 --batch 1,8,32 --new-tokens 128 \
        --d-model 128 --n-layers 4 --n-heads 4 --repeats 3 --device cpu --out $R/decode-batch ;;
  *) echo "unknown part $part (op | decode)" >&2; exit 2 ;;
  esac
done
$PY benchmarks/update_readme.py
