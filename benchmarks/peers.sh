#!/usr/bin/env bash
# specmix side by side with what users would install instead (docs/benchmarks.md, docs/long-context.md):
#   bash benchmarks/peers.sh            # every part, then the README and docs tables
#   bash benchmarks/peers.sh op         # one part: op | decode | lm | lm-decode | bidir
# op:     the causal long convolution against flash-linear-attention's LongConvolution and
#         ImplicitLongConvolution (fla-core, installed here from the package index), same maths,
#         same (B, N, D), both sides in one process, alternating (bench-pairs)
# decode: batched cached decoding, attention's KV cache against the folded spectral state
# lm:     one training step of the spectral-gated LM (implicit filter, 6 x 128) against transformers'
#         GPT-2 (SDPA), Mamba (its PyTorch path, mambapy's scan) and RWKV, each as deep as matches its
#         parameters, fp32 and bf16 autocast (RWKV at 1K only: its CPU path loops over tokens in Python)
# lm-decode: cached decoding of the same models after 1K / 8K / 32K prompts, one sequence
# bidir:  BERT-shaped masked-LM encoders (4 x 128): transformers' BERT with its self-attention swapped
#         for spectral mixing against BERT (SDPA) and FNet, forward and training step at 512 .. 16K;
#         then masked-character modelling on tiny Shakespeare, the same minutes for each
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=benchmarks/results
PARTS=${1:-op decode lm lm-decode bidir}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}

# the peers come from the package index (fla-core and mambapy are pure Python, transformers is
# the hf extra); check first that nothing would replace the CPU torch
for pkg in fla-core==0.6.0 mambapy==1.2.0 transformers==5.24.0; do
  module=$(echo "${pkg%%==*}" | sed 's/fla-core/fla/')
  if ! $PY -c "import importlib.util as u, sys; sys.exit(u.find_spec('$module') is None)"; then
    $PY -m pip install --dry-run "$pkg" | grep -q "torch-" && { echo "$pkg would replace torch" >&2; exit 1; }
    $PY -m pip install --quiet "$pkg"
  fi
done

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
  lm)
    for dtype in float32 bfloat16; do
      for peer in hf-gpt2 hf-mamba hf-rwkv; do
        lengths=1024,8192; [ $peer = hf-rwkv ] && lengths=1024
        $PY -m specmix bench-pairs --backend lm --op spectral-gated --against $peer --filter implicit \
            --n-layers 6 --d-model 128 --batch 1 --bases $lengths --neighbours $lengths --rounds 5 \
            --dtype $dtype --out $R/peers-lm/$peer-$dtype
      done
    done ;;
  lm-decode)
    $PY -m specmix bench-decode --mixers spectral-gated,hf-gpt2,hf-mamba,hf-rwkv --filter implicit \
        --prompts 1024,8192,32768 --batch 1 --new-tokens 32 --d-model 128 --n-layers 6 --n-heads 4 \
        --repeats 3 --device cpu --out $R/peers-decode ;;
  bidir)
    for peer in enc-bert enc-fnet; do
      for mode in forward train; do
        $PY -m specmix bench-pairs --backend lm --op enc-spectral --against $peer --mode $mode --n-layers 4 \
            --d-model 128 --batch 1 --bases 512,2048,8192,16384 --neighbours 512,2048,8192,16384 --rounds 5 \
            --out $R/peers-bidir/$peer-$mode
      done
    done
    $PY -m specmix bench-mlm --data "$DATA" --seconds 180 --out $R/peers-mlm ;;
  *) echo "unknown part $part (op | decode | lm | lm-decode | bidir)" >&2; exit 2 ;;
  esac
done
$PY benchmarks/update_readme.py
