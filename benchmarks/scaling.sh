#!/usr/bin/env bash
# Regenerates the scaling results and the README tables:
#   bash benchmarks/scaling.sh            (about 30-40 minutes on 2 cores)
# Outputs: benchmarks/results/{numpy,torch-forward,torch-train,torch-*-65536}/bench.{json,csv} + PNG,
# benchmarks/results/pairs-*/ (bench-pairs: ratios timed side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=benchmarks/results
$PY -m specmix bench --backend numpy --lengths 128,256,512,1024,2048,4096,8192,16384 --out $R/numpy
$PY -m specmix bench --backend torch --mode forward --out $R/torch-forward
$PY -m specmix bench --backend torch --mode train --out $R/torch-train
$PY -m specmix bench --backend torch --mode train --ops sdpa,spectral,fft-floor --lengths 16384,65536 \
    --max-seconds 90 --out $R/torch-train-65536
$PY -m specmix bench --backend torch --mode forward --ops sdpa,spectral,fft-floor --lengths 16384,65536 \
    --out $R/torch-forward-65536                    # forward peak memory with the lean inference chunks
$PY -m specmix bench-pairs --out $R/pairs-train      # 4099 vs 4096, 65537 vs 65536, alternating
L=1024,4096,16384,65536,262144,1048576              # spectral vs the bare FFT pair, forward
$PY -m specmix bench-pairs --op fft-floor --against spectral --mode forward --bases $L --neighbours $L \
    --rounds 15 --out $R/pairs-forward-floor
$PY -m specmix bench-pairs --op spectral --against sdpa --mode forward --bases 4096 --neighbours 4096 \
    --out $R/pairs-sdpa/forward
$PY -m specmix bench-pairs --op spectral --against sdpa --mode train --bases 4096 --neighbours 4096 \
    --out $R/pairs-sdpa/train
for mode in forward train; do                       # the same, each side timed warm (blocks of 3 calls)
  $PY -m specmix bench-pairs --op spectral --against sdpa --mode $mode --bases 4096 --neighbours 4096 \
      --calls 3 --out $R/pairs-sdpa/$mode-warm
done
$PY -m specmix reference --data ../shared/data/tinyshakespeare.txt --out $R/reference
$PY benchmarks/update_readme.py
