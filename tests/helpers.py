"""Shared test helpers: causality probes and the circular (unpadded) operator used as a guard."""
import torch


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
