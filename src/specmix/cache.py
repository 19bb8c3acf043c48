"""Exact cached decoding: per-mixer state for producing one new token at a time.

* ``Attention``: a KV cache preallocated to ``max_len`` (local attention reads only its
  last ``window`` keys); a token costs O(t D) (O(window D) for local attention).
* ``SpectralMixer``: a buffer of past convolution inputs and the kernel, computed once.
  Inputs older than the current block are *folded*: one zero-padded FFT convolution gives
  their summed contribution to the next ``block`` outputs, and only the inputs since the
  fold are summed directly. A token then costs O(block D) plus the fold's
  O(t log t D / block) share, with block ~ 4 sqrt(t), instead of attention's O(t D).
  Gated mixers also keep the last two raw inputs for the short conv.

``prefill(mixer, x)`` runs the mixer on a prompt ``(B, N, D)`` and returns its output and
state; ``step(mixer, x_t, state)`` maps one token ``(B, D)`` to ``(B, D)`` and updates the
state in place. Both are exact twins of ``mixer(x)`` (tests compare them).
Legend: B batch, N prompt length, T decoded length so far, D channels, H heads, E head width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .functional import fft_conv_cf
from .layers import Attention, SpectralMixer


@dataclass
class SpectralState:
    kernel: torch.Tensor        # (D h, max_len) lags 0..max_len-1 (h = head_dim)
    conv_in: torch.Tensor       # (B, D h, max_len) past inputs of the long convolution
    raw: torch.Tensor | None    # (B, 3D, 2) last two raw projections (gated short conv)
    length: int                 # inputs so far
    folded: int                 # inputs [0, folded) enter the output through `ahead`
    ahead: torch.Tensor         # (B, D h, block) their sum for outputs folded .. folded+block-1
    block: int                  # fold period (tokens)


@dataclass
class AttentionState:
    keys: torch.Tensor          # (B, H, max_len, E) preallocated; [:, :, :length] are filled
    values: torch.Tensor        # (B, H, max_len, E)
    length: int


MIN_FOLD_BLOCK = 64     # fewest tokens between folds (tests lower it to exercise many folds)


def fold_block(length: int, min_block: int) -> int:
    """Tokens between two folds at this length: a power of two near 4 sqrt(length), so that
    the direct sum (block D per token) and the fold's FFT (length log length D per block)
    cost about the same per token."""
    return max(min_block, 1 << math.ceil(math.log2(4 * math.sqrt(max(length, 1)))))


def _fold(st: SpectralState, max_len: int) -> None:
    """Move every input so far into ``ahead``: one zero-padded FFT convolution gives their
    contribution to the next ``block`` outputs (exact linear convolution, as in training)."""
    t = st.length
    st.folded = t
    if t >= max_len:                          # full: no further token will be decoded
        return
    st.block = min(fold_block(t, MIN_FOLD_BLOCK), max_len - t)
    n = t + st.block
    u = F.pad(st.conv_in[:, :, :t], (0, st.block))                       # (B, D, t + block)
    k = st.kernel[:, :n].to(u.dtype)                                    # (D, t + block)
    st.ahead = fft_conv_cf(u, k, causal=True)[:, :, t:]                 # (B, D, block)


def _spectral_prefill(m: SpectralMixer, x: torch.Tensor, max_len: int):
    bsz, n, _ = x.shape
    kernel = m.expand_heads(m.filter.kernel(max_len))                   # (D h, max_len)
    u = F.linear(x, m.in_proj.weight, m.in_proj.bias).transpose(1, 2)   # (B, C, N)
    conv_in = x.new_zeros(bsz, kernel.shape[0], max_len)                # (B, D h, max_len)
    raw = None
    if m.gated:
        conv = F.conv1d(F.pad(u, (2, 0)), m.short_conv.to(u.dtype), groups=u.shape[1])
        _, kk, v = conv.chunk(3, dim=1)                                 # (B, D, N) each
        conv_in[:, :, :n] = m.bind(kk, v)
        raw = F.pad(u, (2, 0))[:, :, -2:].clone()                       # (B, 3D, 2)
    else:
        conv_in[:, :, :n] = u
    st = SpectralState(kernel, conv_in, raw, n, 0, conv_in[:, :, :0], 0)
    _fold(st, max_len)
    return m(x), st


def _spectral_step(m: SpectralMixer, x_t: torch.Tensor, st: SpectralState) -> torch.Tensor:
    """``y_t = ahead[t - folded] + sum_{folded <= s <= t} k[t - s] u[s]``: the direct sum runs
    over at most ``block`` recent inputs, so a token costs the same after 1K or 32K of prompt."""
    max_len = st.conv_in.shape[-1]
    t = st.length
    if t >= max_len:
        raise ValueError(f"cached decoding: length {t + 1} exceeds the cache's max_len {max_len}")
    if t - st.folded >= st.block:
        _fold(st, max_len)
    u = F.linear(x_t, m.in_proj.weight, m.in_proj.bias)                # (B, C)
    q = None
    if m.gated:
        window = torch.cat([st.raw, u[:, :, None]], dim=-1)             # (B, 3D, 3)
        conv = (window * m.short_conv[:, 0, :].to(u.dtype)).sum(-1)     # (B, 3D)
        st.raw = window[:, :, 1:]
        q, kk, v = conv[:, :, None].chunk(3, dim=1)                      # (B, D, 1) each
        st.conv_in[:, :, t] = m.bind(kk, v)[:, :, 0]
    else:
        st.conv_in[:, :, t] = u
    recent = st.conv_in[:, :, st.folded: t + 1]                         # (B, D, r) inputs folded..t
    lags = st.kernel[:, : t + 1 - st.folded].flip(-1).to(recent.dtype)  # (D, r) lag t - s at s
    y = (recent * lags).sum(-1) + st.ahead[:, :, t - st.folded]          # (B, D)
    if q is not None:
        y = m.read(q, y[:, :, None])[:, :, 0]                           # (B, D)
    st.length = t + 1
    return F.linear(y, m.out_proj.weight, m.out_proj.bias)


def _attention_kv(m: Attention, x: torch.Tensor):
    bsz, n, _ = x.shape
    qkv = F.linear(x, m.qkv.weight, m.qkv.bias).view(bsz, n, 3, m.n_heads, -1)  # (B, N, 3, H, E)
    return qkv.permute(2, 0, 3, 1, 4)                                    # 3 x (B, H, N, E)


def _attention_prefill(m: Attention, x: torch.Tensor, max_len: int):
    _, k, v = _attention_kv(m, x)                                        # (B, H, N, E) each
    bsz, heads, n, e = k.shape
    keys, values = (k.new_zeros(bsz, heads, max(max_len, n), e) for _ in range(2))
    keys[:, :, :n], values[:, :, :n] = k, v
    return m(x), AttentionState(keys, values, n)


def _attention_step(m: Attention, x_t: torch.Tensor, st: AttentionState) -> torch.Tensor:
    t = st.length
    if t >= st.keys.shape[2]:
        raise ValueError(f"cached decoding: length {t + 1} exceeds the cache's max_len {st.keys.shape[2]}")
    q, k, v = _attention_kv(m, x_t[:, None, :])                          # (B, H, 1, E)
    st.keys[:, :, t: t + 1], st.values[:, :, t: t + 1] = k, v
    st.length = t + 1
    first = 0 if m.window is None else max(0, t + 1 - m.window)
    y = F.scaled_dot_product_attention(q, st.keys[:, :, first: t + 1],
                                       st.values[:, :, first: t + 1])    # (B, H, 1, E)
    return F.linear(y.reshape(x_t.shape), m.out_proj.weight, m.out_proj.bias)


def prefill(mixer, x: torch.Tensor, max_len: int):
    """``(mixer(x), state)`` for a causal mixer; ``max_len`` bounds the decoded length."""
    if not mixer.causal:
        raise ValueError("cached decoding needs a causal mixer")
    if isinstance(mixer, SpectralMixer):
        return _spectral_prefill(mixer, x, max_len)
    if isinstance(mixer, Attention):
        return _attention_prefill(mixer, x, max_len)
    raise TypeError(f"no cached decoding for {type(mixer).__name__}")


def step(mixer, x_t: torch.Tensor, state) -> torch.Tensor:
    """One new token ``(B, D) -> (B, D)``; updates ``state`` in place."""
    if isinstance(mixer, SpectralMixer):
        return _spectral_step(mixer, x_t, state)
    return _attention_step(mixer, x_t, state)
