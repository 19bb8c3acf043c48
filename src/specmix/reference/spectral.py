"""NumPy spectral mixing primitives shared by the reference model and the NumPy benchmark.

FFT convention as in :mod:`specmix.functional`: unnormalised ``rfft``, ``irfft`` divides
by ``n_fft``; linear convolution by zero-padding to ``n_fft >= N + L - 1``.
Channels-first arrays: ``x_t`` is ``(..., D, N)``; a spectrum ``k_f`` is ``(D, F)``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def _is_7_smooth(m: int) -> bool:
    for p in (2, 3, 5, 7):
        while m % p == 0:
            m //= p
    return m == 1


@lru_cache(maxsize=4096)
def next_fast_len(n: int) -> int:
    """A fast FFT length ``m >= n``: ``16 * j`` with ``j`` 7-smooth (any 7-smooth m for n <= 1024).

    The smallest 7-smooth length is not always the fastest: torch's CPU FFT (MKL in the
    2.13 wheel) on 2 cores ran an rfft+irfft pair for n = 131073 in 106 ms at
    m = 131220 = 2^2 3^8 5 but in 77 ms at m = 131712 = 2^7 3 7^3, the first multiple of 16
    (a development measurement, D = 256).
    """
    if n < 1:
        raise ValueError(f"next_fast_len: n must be >= 1, got {n}")
    if n <= 1024:
        return next(m for m in range(n, 2 * n + 2) if _is_7_smooth(m))
    j = -(-n // 16)
    while not _is_7_smooth(j):
        j += 1
    return 16 * j


def apply_spectrum(x_t: np.ndarray, k_f: np.ndarray, n_fft: int) -> np.ndarray:
    """``irfft(rfft(x_t, n_fft) * k_f)[..., :N]``: linear causal convolution when
    ``k_f = rfft(k, n_fft)`` and ``n_fft >= N + L - 1``. ``(..., D, N) -> (..., D, N)``."""
    seq_len = x_t.shape[-1]
    x_f = np.fft.rfft(x_t, n=n_fft, axis=-1)              # (..., D, F) complex
    x_f *= k_f
    return np.fft.irfft(x_f, n=n_fft, axis=-1)[..., :seq_len]


def circular_apply(x_t: np.ndarray, response: np.ndarray) -> np.ndarray:
    """The note's operator as published: FFT of the sequence's own length, no padding.

    ``response`` is ``(D, N // 2 + 1)`` complex. A circular convolution: position t sees
    inputs after t. Kept for the benchmark's faithful reproduction, never for models.
    """
    seq_len = x_t.shape[-1]
    x_f = np.fft.rfft(x_t, axis=-1)                       # (..., D, N//2+1)
    return np.fft.irfft(x_f * response, n=seq_len, axis=-1)


def attention_core(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Single-head ``softmax(q k^T / sqrt(E)) v`` with the (N, N) scores materialised.
    q, k ``(N, E)``, v ``(N, Ev)`` -> ``(N, Ev)``."""
    scores = q @ k.T / np.sqrt(q.shape[-1])              # (N, N)
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores @ v
