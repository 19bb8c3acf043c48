"""Context parallelism (specmix.sharding): CPU processes under torchrun (gloo) give the
single-process logits, loss and every gradient of a SpecMixLM to rounding (float64).
Two processes in ``make test``; ``SPECMIX_CP_PROCESSES=4`` (benchmarks/context_parallel.sh) four."""
import json
import os
from pathlib import Path

import pytest

from helpers import launch

WORKER = Path(__file__).with_name("context_parallel_worker.py")
PROCESSES = int(os.environ.get("SPECMIX_CP_PROCESSES", "2"))


def run_worker(tmp_path, processes: int, seq_len: int):
    launch([WORKER, seq_len], processes=processes, env={"CP_OUT": str(tmp_path)})
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(processes)]


@pytest.mark.slow
def test_processes_equal_one_in_loss_logits_and_gradients(tmp_path):
    ranks = run_worker(tmp_path, PROCESSES, 24)        # 24 tokens: slices of 12 (2) or 6 (4)
    for result in ranks:
        assert set(result) == {"spectral", "gated-implicit", "gated-heads"}
        for stack, dev in result.items():
            assert dev["logits"] < 1e-12, (stack, dev)        # float64 model
            assert dev["loss"] < 1e-6, (stack, dev)           # the loss itself is float32
            assert dev["grad"] < 1e-12, (stack, dev)          # relative, worst parameter
