"""The note as code, on one page: spectral mixing and nothing else.

"The note" is the short published description this project implements (see the README):
mix a sequence by an FFT along the sequence axis, a learned frequency-domain filter, and an
inverse FFT, in place of self-attention. Read literally, with an FFT of the sequence's own
length N, the product of spectra is a *circular* convolution: output t also sees the inputs
after t (the future wraps around). One change makes it exact and causal:

1. The learned filter is a complex response on a DFT grid of ``max_len`` points. Its inverse
   FFT is a kernel ``h``; tap m is read as lag m (lags 0..N-1 only), so it has no
   anti-causal part.
2. Input and kernel are zero-padded to ``n_fft >= 2N - 1`` before the FFT, and the result is
   cropped to N: a *linear* convolution ``y[t] = sum_{s <= t} h[t - s] u[s]``, nothing wraps.

The layer is ``out_proj(conv_h(in_proj(x)))`` inside a pre-norm residual block, as a
Transformer block with the attention replaced. The library's :class:`specmix.SpectralMixer`
(ungated, frequency filter) computes the same function with the same parameters; it adds
fast FFT lengths, an FFT backward, chunking, masks, gating and cached decoding
(``tests/test_minimal.py`` checks that both agree).

Legend: B batch, N sequence, D channels, F = n_fft // 2 + 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["causal_fft_conv", "MinimalSpectralMixer", "MinimalBlock"]


def causal_fft_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Exact causal convolution of ``u (B, N, D)`` with per-channel kernels ``h (D, N)``."""
    n = u.shape[1]
    n_fft = 2 * n                                          # >= 2N - 1: no wrap-around
    u_f = torch.fft.rfft(u, n=n_fft, dim=1)                # (B, F, D) complex
    h_f = torch.fft.rfft(h, n=n_fft, dim=-1).T             # (F, D) complex
    return torch.fft.irfft(u_f * h_f, n=n_fft, dim=1)[:, :n]   # (B, N, D), cropped


class MinimalSpectralMixer(nn.Module):
    """``x (B, N, D) -> (B, N, D)``: project, filter along N by FFT, project back; N <= max_len."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.in_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        # the learned frequency response, complex numbers stored as (real, imag) pairs
        self.response = nn.Parameter(torch.randn(d_model, max_len // 2 + 1, 2) / max_len)

    def kernel(self, n: int) -> torch.Tensor:
        """The causal kernel ``(D, n)``: the response's inverse FFT read as lags 0..n-1."""
        resp = torch.view_as_complex(self.response)                      # (D, F) complex
        return torch.fft.irfft(resp, n=self.max_len)[:, :n]              # (D, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_len={self.max_len}")
        return self.out_proj(causal_fft_conv(self.in_proj(x), self.kernel(x.shape[1])))


class MinimalBlock(nn.Module):
    """Pre-norm residual block: ``x + mixer(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, d_model: int, max_len: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.mixer = MinimalSpectralMixer(d_model, max_len)
        self.fc = nn.Linear(d_model, mlp_ratio * d_model)
        self.proj = nn.Linear(mlp_ratio * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.proj(F.gelu(self.fc(self.norm2(x))))
