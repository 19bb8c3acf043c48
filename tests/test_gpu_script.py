"""`benchmarks/gpu.sh --device cpu --quick` runs end to end, so the GPU check does not rot
on machines without one."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_runs_quick_on_cpu(tmp_path):
    env = dict(os.environ, PY=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    for part in ("op-forward", "op-train", "lm-train"):
        assert (tmp_path / part / "bench.json").exists(), part
    for dtype in ("float32", "bfloat16"):
        assert (tmp_path / f"lm-pairs-{dtype}" / "pairs.json").exists(), dtype
    assert any((tmp_path / "decode").iterdir())
    assert "passed" in done.stdout and "failed" not in done.stdout


def test_gpu_script_names_a_bad_argument():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--devices", "cpu"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown argument --devices" in done.stderr
