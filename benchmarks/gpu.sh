#!/usr/bin/env bash
# The GPU check: one unattended script (meant to finish in under 10 minutes on one GPU).
#   bash benchmarks/gpu.sh                          # CUDA; results in benchmarks/results/gpu-cuda/
#   bash benchmarks/gpu.sh --device cpu --quick     # the same steps, small (CI runs this)
# Steps: the device test subset (fp32 and bf16 twins, causality, exact cached decoding),
# the op benchmark (spectral vs SDPA vs the bare rfft+irfft floor, forward and training,
# 1K .. 1M tokens), the LM training step (separate processes, then spectral-gated against
# attention side by side, float32 and bfloat16 autocast) and cached decoding after long prompts.
# float32 throughout the benchmarks: SDPA then picks its fp32 kernel (flash proper needs
# half precision), said beside the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=cuda QUICK=0 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "gpu.sh: unknown argument $1 (expected --device cpu|cuda, --quick, --out DIR)" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  OUT=${OUT:-runs/gpu-quick}
  OP_LENGTHS=1024,4096 LM_LENGTHS=256 PROMPTS=256 NEW=16 REPEATS=1 MAX_S=2 ROUNDS=2
else
  OUT=${OUT:-benchmarks/results/gpu-$DEVICE}
  OP_LENGTHS=1024,4096,16384,65536,262144,1048576 LM_LENGTHS=256,1024,8192 PROMPTS=1024,8192,32768
  NEW=512 REPEATS=5 MAX_S=20 ROUNDS=9
fi
mkdir -p "$OUT"
echo "== device tests ($DEVICE)"
SPECMIX_TEST_DEVICE=$DEVICE $PY -m pytest -q -p no:cacheprovider tests/test_device.py
for mode in forward train; do
  echo "== ops, $mode"
  $PY -m specmix bench --backend torch --ops sdpa,spectral,fft-floor --lengths $OP_LENGTHS --mode $mode \
      --device "$DEVICE" --repeats $REPEATS --max-seconds $MAX_S --out "$OUT/op-$mode"
done
echo "== LM training step"
$PY -m specmix bench --backend lm --ops attention,spectral-gated --lengths $LM_LENGTHS --mode train \
    --device "$DEVICE" --repeats $REPEATS --max-seconds $MAX_S --out "$OUT/lm-train"
for dtype in float32 bfloat16; do
  echo "== LM training step side by side, $dtype"
  $PY -m specmix bench-pairs --backend lm --op spectral-gated --against attention --bases $LM_LENGTHS \
      --neighbours $LM_LENGTHS --rounds $ROUNDS --dtype $dtype --device "$DEVICE" --out "$OUT/lm-pairs-$dtype"
done
echo "== cached decoding"
$PY -m specmix bench-decode --prompts $PROMPTS --new-tokens $NEW --repeats $REPEATS --device "$DEVICE" \
    --out "$OUT/decode"
echo "gpu.sh: results in $OUT"
