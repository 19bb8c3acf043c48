"""``make demo``: a short tour on embedded defaults (no data to fetch)."""
from __future__ import annotations

import time

import torch

from .layers import Attention, Block, SpectralMixer


def _median_ms(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def run_demo(out: str = "runs/demo") -> None:
    torch.manual_seed(0)
    d_model = 64
    print("specmix demo: a causal spectral block vs an attention block, forward pass")
    for seq_len in (256, 1024, 4096):
        x = torch.randn(1, seq_len, d_model)
        spec = Block(d_model, SpectralMixer(d_model, max_len=seq_len)).eval()
        attn = Block(d_model, Attention(d_model, n_heads=4)).eval()
        with torch.no_grad():
            t_spec, t_attn = _median_ms(lambda: spec(x)), _median_ms(lambda: attn(x))
            y = spec(x)
            x2 = x.clone()
            x2[:, seq_len // 2:] += 1.0
            leak = (spec(x2)[:, : seq_len // 2] - y[:, : seq_len // 2]).abs().max().item()
        print(f"  N={seq_len:5d}  spectral {t_spec:7.2f} ms  attention {t_attn:7.2f} ms  "
              f"max change of the past when the future changes: {leak:.1e}")
