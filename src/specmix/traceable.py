"""The forms of the fast ops that ``torch.compile`` and ``torch.export`` trace, at any length.

In eager mode the ops choose their FFT length, channel chunks and wrap correction in
Python from the sequence length N (:mod:`specmix.fft_plan`) and run hand-written autograd
Functions that update buffers in place. Traced with a symbolic N, those choices would pin
the graph to one length (or fail outright: ``int.bit_length`` of a symbol). While a tracer
runs (:func:`tracing`), the ops take these forms instead: the same maths written as plain
tensor operations whose shapes are expressions in N, differentiated by autograd, so one
graph serves every length.

- The long convolution is one zero-padded FFT pair at ``n_fft = N + L``: any
  ``n_fft >= N + L - 1`` gives the exact linear convolution, so nothing is rounded to a
  fast length (that choice cannot be made from a symbol without a guard per length).
- The short convolution and the channel bias are their out-of-place twins.

Values equal the eager ops' up to float rounding (the tests compare at 1e-5 relative).
Legend: C channels, N sequence length, L kernel taps.
"""
from __future__ import annotations

import torch

__all__ = ["tracing", "traced_fft_conv_cf"]


def tracing() -> bool:
    """True while ``torch.compile`` (Dynamo) or ``torch.export`` traces the caller."""
    return torch.compiler.is_compiling()


def traced_fft_conv_cf(x_t: torch.Tensor, k: torch.Tensor, causal: bool) -> torch.Tensor:
    """Linear convolution of ``x_t (..., C, N)`` with ``k (C, L)``, channels first, in one
    FFT pair: ``(..., C, N)``. Lags as in :func:`specmix.functional.fft_conv` (causal: tap s
    at lag s; bidirectional: centred)."""
    seq_len, n_taps = x_t.shape[-1], k.shape[-1]
    n_fft = seq_len + n_taps                               # >= N + L - 1: never circular
    start = 0 if causal else (n_taps - 1) // 2
    if torch.compiler.is_exporting():   # full complex transforms (see the module's docstring)
        y_f = torch.fft.fft(x_t, n=n_fft) * torch.fft.fft(k, n=n_fft)     # (..., C, n_fft)
        return torch.fft.ifft(y_f, n=n_fft).real[..., start:start + seq_len]
    y_f = torch.fft.rfft(x_t, n=n_fft) * torch.fft.rfft(k, n=n_fft)   # (..., C, n_fft // 2 + 1)
    return torch.fft.irfft(y_f, n=n_fft)[..., start:start + seq_len]  # (..., C, N)
