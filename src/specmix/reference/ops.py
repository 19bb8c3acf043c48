"""Hand-written NumPy ops, each a ``*_forward(...) -> (out, cache)`` /
``*_backward(dout, cache) -> grads`` pair. NumPy only: torch is never imported here.

FFT convention as in :mod:`specmix.functional` (unnormalised rfft, irfft divides by n).
Legend: B batch, N sequence, D channels, V vocabulary, H hidden width,
M = max_len (the filter's DFT grid), F = M // 2 + 1.
"""
from __future__ import annotations

import math

import numpy as np

from .spectral import smooth_len


# ----------------------------------------------------------------------------- embedding
def embedding_forward(idx: np.ndarray, table: np.ndarray):
    """idx ``(B, N)`` ints, table ``(V, D)`` -> ``(B, N, D)``."""
    return table[idx], (idx, table.shape)


def embedding_backward(dout: np.ndarray, cache):
    """-> ``dtable (V, D)`` (rows of repeated tokens accumulate)."""
    idx, shape = cache
    dtable = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dtable, idx.reshape(-1), dout.reshape(-1, shape[1]))
    return dtable


# ----------------------------------------------------------------------------- linear
def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """x ``(..., Din)``, w ``(Din, Dout)``, b ``(Dout,)`` -> ``(..., Dout)``."""
    return x @ w + b, (x, w)


def linear_backward(dout: np.ndarray, cache):
    """-> ``dx, dw, db``."""
    x, w = cache
    x2, d2 = x.reshape(-1, x.shape[-1]), dout.reshape(-1, dout.shape[-1])
    return dout @ w.T, x2.T @ d2, d2.sum(0)


# ----------------------------------------------------------------------------- gelu (tanh form)
_GELU_C = math.sqrt(2.0 / math.pi)   # a Python float: keeps float32 arrays float32


def gelu_forward(x: np.ndarray):
    """``0.5 x (1 + tanh(c (x + 0.044715 x^3)))``, elementwise."""
    t = np.tanh(_GELU_C * (x + 0.044715 * (x * x * x)))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_backward(dout: np.ndarray, cache):
    x, t = cache
    dt = _GELU_C * (1.0 + 3 * 0.044715 * (x * x)) * (1.0 - t * t)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * dt)


# ----------------------------------------------------------------------------- MLP
def mlp_forward(x: np.ndarray, w1, b1, w2, b2):
    """Two layers ``x -> gelu(x w1 + b1) w2 + b2``; x ``(..., D)``, w1 ``(D, H)``, w2 ``(H, D)``."""
    h, c1 = linear_forward(x, w1, b1)
    a, cg = gelu_forward(h)
    y, c2 = linear_forward(a, w2, b2)
    return y, (c1, cg, c2)


def mlp_backward(dout: np.ndarray, cache):
    """-> ``dx, dw1, db1, dw2, db2``."""
    c1, cg, c2 = cache
    da, dw2, db2 = linear_backward(dout, c2)
    dx, dw1, db1 = linear_backward(gelu_backward(da, cg), c1)
    return dx, dw1, db1, dw2, db2


# ----------------------------------------------------------------------------- residual add
def add_forward(a: np.ndarray, b: np.ndarray):
    """Residual add, same shapes."""
    return a + b, None


def add_backward(dout: np.ndarray, cache):
    """-> ``da, db`` (the gradient passes to both branches)."""
    return dout, dout


# ----------------------------------------------------------------------------- layer norm
def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5):
    """Normalise over the last axis: x ``(..., D)``, gamma/beta ``(D,)``."""
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    rstd = 1.0 / np.sqrt((xc**2).mean(-1, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * gamma + beta, (xhat, rstd, gamma)


def layernorm_backward(dout: np.ndarray, cache):
    """-> ``dx, dgamma, dbeta``."""
    xhat, rstd, gamma = cache
    d = dout.reshape(-1, dout.shape[-1])
    dgamma, dbeta = (d * xhat.reshape(d.shape)).sum(0), d.sum(0)
    dxhat = dout * gamma
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- spectral mixing
def _irfft_pairs(response: np.ndarray, grid: int) -> np.ndarray:
    return np.fft.irfft(response[..., 0] + 1j * response[..., 1], n=grid, axis=-1)


def spectral_forward(x: np.ndarray, response: np.ndarray, grid: int):
    """Causal spectral mixing, the note's operator made exact.

    ``k = irfft(response, n=grid)[:, :N]`` (lags 0..N-1), then the linear convolution
    ``y[b, t, c] = sum_s k[c, s] x[b, t-s, c]`` computed as
    ``irfft(rfft(x, n_fft) * rfft(k, n_fft))[:N]`` with ``n_fft >= 2N - 1`` (no wrap-around).
    x ``(B, N, D)``, response ``(D, grid // 2 + 1, 2)`` -> ``(B, N, D)``.
    """
    seq_len = x.shape[1]
    if seq_len > grid:
        raise ValueError(f"sequence length N={seq_len} exceeds the filter's max_len={grid}")
    k = _irfft_pairs(response, grid)[:, :seq_len]                    # (D, N)
    n_fft = smooth_len(2 * seq_len - 1)
    k_f = np.fft.rfft(k, n=n_fft, axis=-1).T                         # (F', D) complex
    x_f = np.fft.rfft(x, n=n_fft, axis=1)                            # (B, F', D) complex
    y = np.fft.irfft(x_f * k_f, n=n_fft, axis=1)[:, :seq_len]        # (B, N, D)
    return y, (x_f, k_f, n_fft, seq_len, grid)


def spectral_backward(dout: np.ndarray, cache):
    """-> ``dx (B, N, D)``, ``dresponse (D, F, 2)``.

    dx is the correlation of dout with k (spectrum ``dout_f * conj(k_f)``); dk the
    correlation of dout with x, summed over the batch; dresponse the adjoint of the
    irfft: ``(c_f / M) * rfft(dk padded to M)``, c_f = 1 at DC and Nyquist, 2 elsewhere.
    """
    x_f, k_f, n_fft, seq_len, grid = cache
    d_f = np.fft.rfft(dout, n=n_fft, axis=1)                         # (B, F', D)
    dx = np.fft.irfft(d_f * k_f.conj(), n=n_fft, axis=1)[:, :seq_len]
    dk = np.fft.irfft((d_f * x_f.conj()).sum(0), n=n_fft, axis=0)[:seq_len].T  # (D, N)
    dk_f = np.fft.rfft(dk, n=grid, axis=-1)                          # (D, F)
    weight = np.full(dk_f.shape[-1], 2.0, dtype=dk_f.real.dtype)
    weight[0] = 1.0
    if grid % 2 == 0:
        weight[-1] = 1.0
    dk_f *= weight / grid
    return dx, np.stack([dk_f.real, dk_f.imag], axis=-1)


def identity_forward(x: np.ndarray):
    """The no-mixing ablation: the mixer replaced by identity."""
    return x, None


def identity_backward(dout: np.ndarray, cache):
    return dout


# ----------------------------------------------------------------------------- loss
def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray):
    """Mean softmax cross-entropy: logits ``(B, N, V)``, targets ``(B, N)`` ints -> scalar."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp, targets[..., None], -1).mean()
    return float(loss), (logp, targets)


def cross_entropy_backward(dloss: float, cache):
    """-> ``dlogits (B, N, V)`` = (softmax - onehot) / count."""
    logp, targets = cache
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1.0, -1)
    return dlogits * (dloss / targets.size)
