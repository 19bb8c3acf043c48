#!/usr/bin/env bash
# Context parallelism on this machine: one training step of one sequence of 2^18 .. 2^21
# tokens (2 gated spectral layers, d_model 32, implicit filter, fp32, batch 1) split over
# 1, 2 and 4 processes; per-rank peak memory, step time, bytes sent per rank (formula).
# About 30 minutes on 2 cores; the 2^21 cells need ~16 GB of the machine's memory in all.
#   bash benchmarks/context_parallel.sh            # LENGTHS="262144 1048576" to choose
# Every cell runs in fresh processes; the processes share this machine's cores and memory.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results/context-parallel
LENGTHS=${LENGTHS:-"262144 524288 1048576 2097152"}
PROCS=${PROCS:-"1 2 4"}
echo "== equivalence with 4 processes (loss, logits, every gradient vs one process)"
SPECMIX_CP_PROCESSES=4 $PY -m pytest -q -p no:cacheprovider tests/test_sharding.py
rm -rf "$OUT.partial" && mkdir -p "$OUT.partial"
for n in $LENGTHS; do
  for p in $PROCS; do
    echo "== $n tokens, $p process(es)"
    if [ "$p" = 1 ]; then
      $PY -m specmix.app.bench.context worker --seq-len "$n" --d-model 32 --n-layers 2 --out "$OUT.partial"
    else
      $PY -m torch.distributed.run --standalone --nproc-per-node "$p" \
          -m specmix.app.bench.context worker --seq-len "$n" --d-model 32 --n-layers 2 --out "$OUT.partial"
    fi
  done
done
$PY -m specmix.app.bench.context report --out "$OUT.partial"
rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
$PY benchmarks/update_readme.py
