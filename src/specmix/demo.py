"""``make demo``: the main job on embedded defaults, short enough to run anywhere.

1. The published NumPy single-block benchmark (n = 128..4096), table and log-log plot.
2. A short torch forward sweep: the exact causal spectral op vs SDPA vs the FFT floor.
"""
from __future__ import annotations

import os

from .bench import BenchConfig, format_report, run_sweep, write_outputs


def run_demo(out: str = "runs/demo") -> None:
    runs = [
        ("published NumPy setup", BenchConfig(backend="numpy", repeats=3,
                                              out=os.path.join(out, "bench-numpy"))),
        ("torch forward, d_model 256", BenchConfig(backend="torch", ops="sdpa,spectral,fft-floor",
                                                   lengths="1024,4096,16384", repeats=3,
                                                   out=os.path.join(out, "bench-torch"))),
    ]
    for title, cfg in runs:
        print(f"\n== specmix bench: {title}")
        report = run_sweep(cfg)
        paths = write_outputs(report, cfg.out)
        print(format_report(report))
        print("wrote " + ", ".join(paths))
