"""Attention cores: the naive quadratic core, the sliding-window mask and core, and RoPE.

The baselines beside the spectral operator (and the pieces of the ``Attention`` mixer).
Re-exported by :mod:`specmix.functional`. Legend: B batch, H heads, N sequence, E head width.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["attention_core", "sliding_window_mask", "local_attention", "rotary"]


def attention_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                   causal: bool) -> torch.Tensor:
    """Single-head ``softmax(q k^T / sqrt(E)) v``, materialising the (N, N) scores on purpose.

    This is the naive core of the published benchmark. Shapes: q ``(..., N, E)``,
    k ``(..., N, E)``, v ``(..., N, Ev)`` -> ``(..., N, Ev)``.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention_core: incompatible shapes q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., N, N)
    if causal:
        n_q, n_k = scores.shape[-2:]
        future = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def sliding_window_mask(seq_len: int, window: int, *, causal: bool,
                        device: torch.device | None = None) -> torch.Tensor:
    """Boolean ``(N, N)`` mask, True where query t may attend key s.

    causal: ``0 <= t - s < window``; bidirectional: ``|t - s| < window``.
    """
    t = torch.arange(seq_len, device=device)
    offset = t[:, None] - t[None, :]                  # (N, N): t - s
    if causal:
        return (offset >= 0) & (offset < window)
    return offset.abs() < window


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int,
                    causal: bool = True, key_mask: torch.Tensor | None = None,
                    dropout_p: float = 0.0) -> torch.Tensor:
    """Sliding-window attention in O(N * window) time and memory.

    Queries are cut into blocks of ``window``; each block attends to its own block and
    its neighbours (the previous one, and the next one when bidirectional), with the
    exact window of :func:`sliding_window_mask` applied inside.

    Args:
        q, k, v: ``(B, H, N, E)``.
        window: keys within ``window`` positions (including the query's own).
        key_mask: optional ``(B, N)`` bool, True = real key.
        dropout_p: dropout on the attention weights (training only; pass 0 in eval).
    Returns:
        ``(B, H, N, E)``.
    """
    bsz, n_heads, seq_len, _ = q.shape
    w = int(window)
    n_blocks = -(-seq_len // w)
    pad = n_blocks * w - seq_len
    before, after = 1, (0 if causal else 1)            # neighbour blocks each side

    def blocks_of(t: torch.Tensor) -> torch.Tensor:    # (B, H, N, E) -> (B, H, nb, W, E)
        t = F.pad(t, (0, 0, 0, pad))
        return t.view(bsz, n_heads, n_blocks, w, t.shape[-1])

    def with_neighbours(t: torch.Tensor) -> torch.Tensor:  # -> (B, H, nb, (1+before+after)W, E)
        t = F.pad(t, (0, 0, before * w, pad + after * w))
        idx = torch.arange(n_blocks, device=t.device)[:, None] * w + \
            torch.arange((1 + before + after) * w, device=t.device)
        return t[:, :, idx]                              # (B, H, nb, span, E)

    q_b, k_b, v_b = blocks_of(q), with_neighbours(k), with_neighbours(v)
    span = (1 + before + after) * w
    t_pos = torch.arange(n_blocks, device=q.device)[:, None] * w + torch.arange(w, device=q.device)
    s_pos = torch.arange(n_blocks, device=q.device)[:, None] * w - before * w + \
        torch.arange(span, device=q.device)              # (nb, span)
    offset = t_pos[:, :, None] - s_pos[:, None, :]       # (nb, W, span)
    allowed = (offset < w) & ((offset >= 0) if causal else (offset > -w))
    allowed = allowed & (s_pos >= 0)[:, None, :] & (s_pos < seq_len)[:, None, :]
    allowed = allowed.expand(bsz, 1, n_blocks, w, span)  # (B, 1, nb, W, span)
    if key_mask is not None:
        km = F.pad(key_mask, (before * w, pad + after * w))
        idx = s_pos + before * w                          # (nb, span) into padded keys
        allowed = allowed & km[:, idx][:, None, :, None, :]
    # a query with no allowed key (padding only) attends everywhere; callers zero it later
    allowed = allowed | ~allowed.any(-1, keepdim=True)
    out = F.scaled_dot_product_attention(q_b, k_b, v_b, attn_mask=allowed, dropout_p=dropout_p)  # (B, H, nb, W, E)
    return out.reshape(bsz, n_heads, n_blocks * w, -1)[:, :, :seq_len]      # (B, H, N, E)


def rotary(x: torch.Tensor, offset: int = 0, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (RoPE, Su et al. 2021) of ``x (B, H, N, E)``, E even.

    Channel pairs ``(i, i + E/2)`` of the token at position ``p = offset + n`` are rotated by
    the angle ``p * base^(-2i/E)``, so that the dot product of a rotated query and key depends
    on their positions only through ``p_q - p_k``. Angles are computed in float32 (float64
    for a float64 ``x``) and cast to ``x``'s dtype.
    """
    seq_len, width = x.shape[-2], x.shape[-1]
    if width % 2:
        raise ValueError(f"rotary: the head width E must be even, got {width}")
    half = width // 2
    exact = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=exact) / half)          # (E/2,)
    pos = torch.arange(offset, offset + seq_len, device=x.device, dtype=exact)             # (N,)
    angle = pos[:, None] * inv_freq[None, :]                                              # (N, E/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)                  # (B, H, N, E)
