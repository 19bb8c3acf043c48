"""The gated mixer's short depthwise convolution, with a hand-written backward, and its twin.

``short_conv(u, taps, lookback)`` maps ``u (B, C, N)`` and ``taps (C, K)`` to ``(B, C, N)``:
tap ``j`` multiplies the input at lag ``lookback - j`` (lag > 0 looks back, < 0 ahead),
``out[t] = sum_j taps[:, j] u[t - (lookback - j)]``, zeros outside ``0 .. N-1``. Causal
3 taps: ``lookback = 2``; centred 3 taps: ``lookback = 1``.

Why a Function: written as shifted in-place multiply-adds on slices, autograd records a
CopySlices node per slice and its backward copies the whole activation for each; on 2 cores
that made the backward of a (4, 384, 1024) short conv 25x its forward (20 ms vs 0.8 ms in
float32). The backward here is the adjoint, the same shifted multiply-adds run the other
way, and one channel-wise reduction per tap for the taps' gradient.

``short_conv_ref`` is the plain out-of-place twin (autograd through it), for the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .traceable import tracing

__all__ = ["short_conv", "ShortConvCache", "short_conv_ref"]


def _check(u: torch.Tensor, taps: torch.Tensor, lookback: int) -> None:
    if u.dim() != 3 or taps.dim() != 2 or taps.shape[0] != u.shape[1]:
        raise ValueError(f"short_conv: expected u (B, C, N) and taps (C, K) with the same C; got "
                         f"u {tuple(u.shape)}, taps {tuple(taps.shape)}")
    if not 0 <= lookback < taps.shape[1]:
        raise ValueError(f"short_conv: lookback must be in [0, K) = [0, {taps.shape[1]}), got {lookback}")


def _shifted_sum(src: torch.Tensor, taps: torch.Tensor, lags: list[int]) -> torch.Tensor:
    """``out[t] = sum_j taps[:, j] src[t - lags[j]]`` (zeros outside), in place on one buffer
    (started by the lag-0 tap when there is one: no zero fill)."""
    n = src.shape[-1]
    out = src * taps[:, lags.index(0), None] if 0 in lags else torch.zeros_like(src)
    for j, lag in enumerate(lags):
        if lag == 0 or abs(lag) >= n:
            continue
        tap = taps[:, j, None]                                            # (C, 1)
        if lag > 0:
            out[..., lag:].addcmul_(src[..., : n - lag], tap)
        else:
            out[..., : n + lag].addcmul_(src[..., -lag:], tap)
    return out


class _ShortConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, taps: torch.Tensor, lookback: int) -> torch.Tensor:
        lags = [lookback - j for j in range(taps.shape[1])]
        ctx.save_for_backward(u, taps)
        ctx.lags = lags
        return _shifted_sum(u, taps.to(u.dtype), lags)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, taps = ctx.saved_tensors
        grad = grad.contiguous()
        n = u.shape[-1]
        grad_u = grad_taps = None
        if ctx.needs_input_grad[0]:   # the adjoint: each lag run the other way
            grad_u = _shifted_sum(grad, taps.to(grad.dtype), [-lag for lag in ctx.lags])
        if ctx.needs_input_grad[1]:   # d taps[c, j] = sum_{b, t} grad[t] u[t - lag_j]
            acc = torch.promote_types(torch.promote_types(taps.dtype, u.dtype), torch.float32)
            grad_taps = torch.zeros(taps.shape, dtype=acc, device=taps.device)
            for j, lag in enumerate(ctx.lags):
                if abs(lag) >= n:
                    continue
                g, x = (grad[..., lag:], u[..., : n - lag]) if lag >= 0 else (grad[..., : n + lag], u[..., -lag:])
                grad_taps[:, j] = torch.linalg.vecdot(g, x, dim=-1).to(acc).sum(0)   # (B, C) -> (C,)
            grad_taps = grad_taps.to(taps.dtype)
        return grad_u, grad_taps, None


def short_conv(u: torch.Tensor, taps: torch.Tensor, lookback: int) -> torch.Tensor:
    """Depthwise short convolution of ``u (B, C, N)`` with ``taps (C, K)`` (any dtype: the
    taps are cast to ``u``'s), tap ``j`` at lag ``lookback - j``: ``(B, C, N)``."""
    _check(u, taps, lookback)
    if tracing():                   # compile / export: the out-of-place twin, any length
        return short_conv_ref(u, taps, lookback)
    return _ShortConv.apply(u, taps, lookback)


@dataclass(kw_only=True)
class ShortConvCache:
    """The causal short conv (``lookback = K - 1``) one token at a time, for decoding.

    Instead of the last ``K - 1`` inputs it keeps their partial sums: ``pending[i] (B, C)`` is
    the part of output ``t + 1 + i`` that the inputs up to ``t`` contribute. A step then costs
    ``K`` multiply-adds on ``(B, C)`` rows and no concatenation: output ``t`` is
    ``pending[0] + taps[K - 1] u_t``, and ``u_t`` enters each pending sum through its lag."""

    columns: torch.Tensor           # (K, C) the taps by lag K-1 .. 0, in the inputs' dtype
    pending: list[torch.Tensor]     # K - 1 partial outputs (B, C), the next output first

    @classmethod
    def prefill(cls, u: torch.Tensor, taps: torch.Tensor) -> "ShortConvCache":
        """The cache after the prompt ``u (B, C, N)`` for ``taps (C, K)`` (zeros before ``u``)."""
        k = taps.shape[1]
        _check(u, taps, k - 1)
        columns = taps.to(u.dtype).T.contiguous()                         # (K, C)
        tail = torch.nn.functional.pad(u, (k - 1, 0))[..., u.shape[-1]:]  # (B, C, K-1) last inputs
        # output N + i reads tail[..., p] (lag K - 1 - p + i) through tap p - i, for p >= i
        pending = [sum(columns[p - i] * tail[..., p] for p in range(i, k - 1)) for i in range(k - 1)]
        return cls(columns=columns, pending=pending)

    def batch_tensors(self) -> list[torch.Tensor]:
        """The tensors with one row per sequence (what :meth:`reorder` selects from)."""
        return list(self.pending)

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the batch rows ``rows (B',)`` in that order, in place."""
        self.pending = [p.index_select(0, rows) for p in self.pending]

    def step(self, u_t: torch.Tensor) -> torch.Tensor:
        """The output at the new input ``u_t (B, C)``: ``(B, C)``, equal to ``short_conv``'s."""
        if u_t.dim() != 2 or u_t.shape[1] != self.columns.shape[1]:
            raise ValueError(f"ShortConvCache.step: expected u_t (B, C={self.columns.shape[1]}), "
                             f"got {tuple(u_t.shape)}")
        k = self.columns.shape[0]
        if k == 1:
            return u_t * self.columns[0]
        out = torch.addcmul(self.pending[0], u_t, self.columns[k - 1])   # (B, C)
        for i in range(k - 2):                                            # u_t at lag 1 + i
            self.pending[i] = torch.addcmul(self.pending[i + 1], u_t, self.columns[k - 2 - i])
        self.pending[k - 2] = u_t * self.columns[0]
        return out


def short_conv_ref(u: torch.Tensor, taps: torch.Tensor, lookback: int) -> torch.Tensor:
    """The same sum written out of place (zero-padded shifts), differentiated by autograd."""
    _check(u, taps, lookback)
    n, k = u.shape[-1], taps.shape[1]
    padded = torch.nn.functional.pad(u, (lookback, k - 1 - lookback))   # (B, C, N + K - 1)
    taps = taps.to(u.dtype)
    return sum(taps[:, j, None] * padded[..., j: j + n] for j in range(k))
