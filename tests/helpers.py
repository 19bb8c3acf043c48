"""Shared assertion helpers: causality probes, the circular (unpadded) operator used as a
guard, and one ``assert_close`` with a per-dtype tolerance table."""
import torch

# max |actual - expected| / max(|expected|, tiny) accepted per compute dtype
TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, *, tol: float | None = None,
                 what: str = "") -> None:
    """Relative max-difference check that reports the difference it found."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOL[expected.dtype] if tol is None else tol
    diff = (actual.double() - expected.double()).abs().max().item()
    scale = max(expected.double().abs().max().item(), 1e-30)
    assert diff <= tol * scale, f"{what}: max difference {diff:.3e} (relative {diff / scale:.3e} > {tol:.0e})"


def assert_causal(fn, x: torch.Tensor, times=(0, 1, 5), atol: float = 1e-6) -> None:
    """Perturbing x[:, t+1:] must leave fn(x)[:, :t+1] unchanged, for each t."""
    y = fn(x)
    gen = torch.Generator().manual_seed(123)
    for t in times:
        if t + 1 >= x.shape[1]:
            continue
        x2 = x.clone()
        x2[:, t + 1:] = torch.randn(x2[:, t + 1:].shape, generator=gen, dtype=x.dtype) * 3
        y2 = fn(x2)
        diff = (y2[:, : t + 1] - y[:, : t + 1]).abs().max().item()
        assert diff <= atol, f"output at positions <= {t} changed by {diff} when the future changed"


def circular_fft_conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The note's operator applied naively: FFT of the sequence's own length, no padding.

    x (B, N, D), k (D, N). A circular convolution: output t sees inputs after t.
    """
    n = x.shape[1]
    x_f = torch.fft.rfft(x.transpose(1, 2), n=n)      # (B, D, F)
    k_f = torch.fft.rfft(k, n=n)                      # (D, F)
    return torch.fft.irfft(x_f * k_f, n=n).transpose(1, 2)


def assert_same_grads(y: torch.Tensor, ref: torch.Tensor, inputs, what: str = "") -> None:
    """Gradients of ``y`` and ``ref`` w.r.t. ``inputs`` agree (one random output cotangent)."""
    g = torch.randn_like(y)
    for i, (a, b) in enumerate(zip(torch.autograd.grad(y, inputs, g), torch.autograd.grad(ref, inputs, g))):
        assert_close(a, b, what=f"{what} gradient {i}")


def tiny_lm(mixers: str = "spectral", **kw):
    """An eval-mode SpecMixLM of width 32, context 96, 11 tokens: 2 layers, or one per kind."""
    from specmix.model import LMConfig, SpecMixLM
    n_layers = len(mixers.split(",")) if "," in mixers else 2
    cfg = LMConfig(vocab_size=11, d_model=32, n_layers=n_layers, n_heads=4, context=96, mixers=mixers, **kw)
    torch.manual_seed(0)
    return SpecMixLM(cfg).eval()


def launch(argv, processes: int = 1, env: dict | None = None, timeout: float = 300):
    """Run ``python argv`` (``processes > 1``: under ``torchrun --standalone``) with one OpenMP
    thread per process; asserts it succeeded and returns the CompletedProcess."""
    import os
    import subprocess
    import sys
    runner = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    done = subprocess.run([sys.executable, *runner, *map(str, argv)], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})), timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done
