"""NumPy spectral mixing primitives shared by the reference model and the NumPy benchmark.

FFT convention as in :mod:`specmix.functional`: unnormalised ``rfft``, ``irfft`` divides
by ``n_fft``; linear convolution by zero-padding to ``n_fft >= N + L - 1``.
Channels-first arrays: ``x_t`` is ``(..., D, N)``; a spectrum ``k_f`` is ``(D, F)``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def smooth_len(n: int) -> int:
    """The smallest 2-3-5-7-smooth length ``m >= n``: NumPy's pocketfft runs those fastest.

    (The torch side picks its lengths for MKL instead: ``specmix.functional.next_fast_len``.)
    """
    if n < 1:
        raise ValueError(f"smooth_len: n must be >= 1, got {n}")
    m = n
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


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
