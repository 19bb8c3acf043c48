"""Exact cached decoding: per-mixer state for producing one new token at a time.

* ``Attention``: a KV cache (local attention keeps only its last ``window`` keys).
* ``SpectralMixer``: a buffer of past convolution inputs and the kernel, computed once;
  each new output is the direct sum ``y_t = sum_s k[s] u[t - s]``, O(t * D) per token and
  no FFT of the prefix. Gated mixers also keep the last two raw inputs for the short conv.

``prefill(mixer, x)`` runs the mixer on a prompt ``(B, N, D)`` and returns its output and
state; ``step(mixer, x_t, state)`` maps one token ``(B, D)`` to ``(B, D)`` and updates the
state in place. Both are exact twins of ``mixer(x)`` (tests compare them).
Legend: B batch, N prompt length, T decoded length so far, D channels, H heads, E head width.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .layers import Attention, SpectralMixer


@dataclass
class SpectralState:
    kernel: torch.Tensor        # (D, max_len) lags 0..max_len-1
    conv_in: torch.Tensor       # (B, D, max_len) past inputs of the long convolution
    raw: torch.Tensor | None    # (B, 3D, 2) last two raw projections (gated short conv)
    length: int


@dataclass
class AttentionState:
    keys: torch.Tensor          # (B, H, T, E)
    values: torch.Tensor        # (B, H, T, E)


def _spectral_prefill(m: SpectralMixer, x: torch.Tensor, max_len: int):
    bsz, n, _ = x.shape
    kernel = m.filter.kernel(max_len)                                   # (D, max_len)
    u = F.linear(x, m.in_proj.weight, m.in_proj.bias).transpose(1, 2)   # (B, C, N)
    conv_in = x.new_zeros(bsz, m.d_model, max_len)
    raw = None
    if m.gated:
        conv = F.conv1d(F.pad(u, (2, 0)), m.short_conv.to(u.dtype), groups=u.shape[1])
        _, kk, v = conv.chunk(3, dim=1)                                 # (B, D, N) each
        conv_in[:, :, :n] = kk * v
        raw = F.pad(u, (2, 0))[:, :, -2:].clone()                       # (B, 3D, 2)
    else:
        conv_in[:, :, :n] = u
    return m(x), SpectralState(kernel, conv_in, raw, n)


def _spectral_step(m: SpectralMixer, x_t: torch.Tensor, st: SpectralState) -> torch.Tensor:
    t = st.length
    if t >= st.conv_in.shape[-1]:
        raise ValueError(f"cached decoding: length {t + 1} exceeds the cache's max_len "
                         f"{st.conv_in.shape[-1]}")
    u = F.linear(x_t, m.in_proj.weight, m.in_proj.bias)                # (B, C)
    q = None
    if m.gated:
        window = torch.cat([st.raw, u[:, :, None]], dim=-1)             # (B, 3D, 3)
        conv = (window * m.short_conv[:, 0, :].to(u.dtype)).sum(-1)     # (B, 3D)
        st.raw = window[:, :, 1:]
        q, kk, v = conv.chunk(3, dim=-1)
        st.conv_in[:, :, t] = kk * v
    else:
        st.conv_in[:, :, t] = u
    past = st.conv_in[:, :, : t + 1].flip(-1)                           # (B, D, t+1): lag 0 first
    y = (past * st.kernel[:, : t + 1].to(past.dtype)).sum(-1)          # (B, D)
    if q is not None:
        y = q * y
    st.length = t + 1
    return F.linear(y, m.out_proj.weight, m.out_proj.bias)


def _attention_kv(m: Attention, x: torch.Tensor):
    bsz, n, _ = x.shape
    qkv = F.linear(x, m.qkv.weight, m.qkv.bias).view(bsz, n, 3, m.n_heads, -1)  # (B, N, 3, H, E)
    return qkv.permute(2, 0, 3, 1, 4)                                    # 3 x (B, H, N, E)


def _attention_prefill(m: Attention, x: torch.Tensor):
    _, k, v = _attention_kv(m, x)
    keep = m.window or k.shape[2]
    return m(x), AttentionState(k[:, :, -keep:], v[:, :, -keep:])


def _attention_step(m: Attention, x_t: torch.Tensor, st: AttentionState) -> torch.Tensor:
    q, k, v = _attention_kv(m, x_t[:, None, :])                          # (B, H, 1, E)
    keys, values = torch.cat([st.keys, k], dim=2), torch.cat([st.values, v], dim=2)
    if m.window is not None:
        keys, values = keys[:, :, -m.window:], values[:, :, -m.window:]
    st.keys, st.values = keys, values
    y = F.scaled_dot_product_attention(q, keys, values)                  # (B, H, 1, E)
    return F.linear(y.reshape(x_t.shape), m.out_proj.weight, m.out_proj.bias)


def prefill(mixer, x: torch.Tensor, max_len: int):
    """``(mixer(x), state)`` for a causal mixer; ``max_len`` bounds the decoded length."""
    if not mixer.causal:
        raise ValueError("cached decoding needs a causal mixer")
    if isinstance(mixer, SpectralMixer):
        return _spectral_prefill(mixer, x, max_len)
    if isinstance(mixer, Attention):
        return _attention_prefill(mixer, x)
    raise TypeError(f"no cached decoding for {type(mixer).__name__}")


def step(mixer, x_t: torch.Tensor, state) -> torch.Tensor:
    """One new token ``(B, D) -> (B, D)``; updates ``state`` in place."""
    if isinstance(mixer, SpectralMixer):
        return _spectral_step(mixer, x_t, state)
    return _attention_step(mixer, x_t, state)
