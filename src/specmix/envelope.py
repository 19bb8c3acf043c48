"""The decaying envelope of :class:`~specmix.filters.ImplicitFilter`'s causal taps, and the
last layer of its MLP fused with it into one autograd function.

A causal implicit kernel is ``k[c, t] = (W h_t + b)[c] * E[c, t]``, ``E[c, t] = exp(g_c - r_c t)``
(``g`` the log gain, ``r`` the rate, ``h_t`` the MLP's last hidden features at lag ``t``). Built
from autograd's pieces, it writes and keeps two ``(D, L)`` tensors (the shape ``W h + b`` and
``E``) and its backward makes a few more: at D = 256, L = 64K its forward and backward took
271 ms that way against 124 ms here (a development measurement, 2 cores). Here:

- ``E`` is never built: it is the product of two small tables, ``exp(g - r s)`` per block start
  ``s`` and ``exp(-r j)`` per offset ``j`` in a block (``t = s + j``), applied in place.
  Entries below ``tiny ** (1/3)`` are exact zeros, so products stay normal floats (an exp
  whose result is subnormal is ~100x slower than one that is not).
- The backward needs ``gs = dk * E`` once: ``dW = gs @ H``, ``dh = gs^T W``, ``db = sum_t gs``,
  and the envelope's parameters from the same product, since ``sum_t gs * (W h_t + b) =
  sum_h W * (gs @ H) + b * sum_t gs``: ``dg = sum_t gs * shape``, ``dr = -sum_t t gs * shape``
  come from one ``(D, L) @ (L, 2H + 2)`` product against ``[H, t H, 1, t]``. Nothing of
  size ``(D, L)`` is saved for it.

Legend: D channels, L taps, H hidden features, B lags per block.
"""
from __future__ import annotations

import math

import torch

__all__ = ["ENVELOPE_BLOCK", "envelope_tables", "times_envelope", "mirrored_envelope", "enveloped_taps"]

# lags per row of the envelope tables
ENVELOPE_BLOCK = 128


def envelope_tables(rate: torch.Tensor, log_gain: torch.Tensor, first: int,
                    count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(by_block (D, n_blocks), by_offset (D, B))`` for lags ``first .. first + count - 1``
    (``first >= 0``); ``rate`` and ``log_gain`` are ``(D, 1)``."""
    block = ENVELOPE_BLOCK
    starts = torch.arange(-(-count // block), device=rate.device, dtype=rate.dtype) * block + first
    within = torch.arange(block, device=rate.device, dtype=rate.dtype)
    floor = math.log(torch.finfo(rate.dtype).tiny) / 3
    tables = []
    for exponent in (torch.addcmul(log_gain, rate, starts[None, :], value=-1),  # (D, n_blocks)
                     -rate * within[None, :]):                                # (D, B)
        tables.append(torch.where(exponent >= floor, torch.exp(exponent.clamp_min(floor)), 0.0))
    return tables[0], tables[1]


def times_envelope(t: torch.Tensor, by_block: torch.Tensor, by_offset: torch.Tensor,
                   out: torch.Tensor) -> torch.Tensor:
    """``out = t * E`` for ``t``, ``out`` of ``(D, L)`` (``out`` contiguous; it may be ``t``)."""
    d_model, count = out.shape
    block = ENVELOPE_BLOCK
    whole = count // block                                            # full blocks
    body = out[:, :whole * block].view(d_model, whole, block)         # (D, whole, B)
    torch.mul(t[:, :whole * block].reshape(d_model, whole, block), by_block[:, :whole, None], out=body)
    body.mul_(by_offset[:, None, :])
    if whole * block < count:                                         # the last, partial block
        tail = out[:, whole * block:]                                 # (D, count - whole B)
        torch.mul(t[:, whole * block:], by_block[:, whole:] * by_offset[:, :tail.shape[1]], out=tail)
    return out


def mirrored_envelope(rate: torch.Tensor, log_gain: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """``E`` at ``|t|`` for lags ``t = first .. first + count - 1`` (a bidirectional kernel's,
    ``first < 0``), ``(D, count)``, differentiable: the tables of lags ``0 .. max |t|``
    multiplied out once and read back at each ``|t|``."""
    span = max(-first, first + count - 1) + 1                           # distances 0 .. max |t|
    by_block, by_offset = envelope_tables(rate, log_gain, 0, span)
    by_distance = (by_block[:, :, None] * by_offset[:, None, :]).flatten(1)   # (D, n_blocks B)
    distance = torch.arange(first, first + count, device=rate.device).abs()   # (L,)
    return by_distance.index_select(1, distance)                        # (D, L)


class _EnvelopedTaps(torch.autograd.Function):
    """``(W h + b) * E`` of lags ``first ..``; see the module docstring for the backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, rate, log_gain, first: int):
        with torch.autocast(hidden.device.type, enabled=False):      # the taps in the filter's dtype
            h = hidden.to(rate.dtype)                                 # (L, H)
            shape = torch.addmm(bias[:, None], weight, h.t())        # (D, L)
            by_block, by_offset = envelope_tables(rate, log_gain, first, h.shape[0])
            kernel = times_envelope(shape, by_block, by_offset, out=shape)
        ctx.save_for_backward(h, weight, bias, by_block, by_offset)
        ctx.first, ctx.hidden_dtype = first, hidden.dtype
        return kernel

    @staticmethod
    def backward(ctx, grad):
        h, weight, bias, by_block, by_offset = ctx.saved_tensors
        n_hidden = h.shape[1]
        gs = times_envelope(grad, by_block, by_offset, out=torch.empty(grad.shape, dtype=h.dtype, device=grad.device))
        lags = torch.arange(ctx.first, ctx.first + h.shape[0], device=h.device, dtype=h.dtype)[:, None]
        features = torch.cat([h, lags * h, torch.ones_like(lags), lags], dim=1)   # (L, 2H + 2)
        sums = gs @ features                                                       # (D, 2H + 2)
        grad_weight, weighted_by_lag = sums[:, :n_hidden], sums[:, n_hidden: 2 * n_hidden]
        grad_bias, bias_by_lag = sums[:, 2 * n_hidden], sums[:, 2 * n_hidden + 1]
        # sum_t gs * shape and sum_t t gs * shape, from shape = W h + b
        dot = (weight * grad_weight).sum(1) + bias * grad_bias                     # (D,)
        dot_by_lag = (weight * weighted_by_lag).sum(1) + bias * bias_by_lag        # (D,)
        grad_hidden = (gs.t() @ weight).to(ctx.hidden_dtype)                       # (L, H)
        return (grad_hidden, grad_weight.contiguous(), grad_bias.contiguous(), -dot_by_lag[:, None],
                dot[:, None], None)


def enveloped_taps(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rate: torch.Tensor,
                   log_gain: torch.Tensor, first: int) -> torch.Tensor:
    """``(D, L)`` causal taps ``(weight @ hidden^T + bias) * E`` of lags ``first .. first + L - 1``.

    Args:
        hidden: ``(L, H)`` the MLP's last hidden features per lag.
        weight, bias: ``(D, H)``, ``(D,)`` its last layer.
        rate, log_gain: ``(D, 1)`` the envelope's rate and log gain.
        first: the first lag (>= 0).
    """
    if first < 0:
        raise ValueError(f"enveloped_taps: first must be >= 0 (causal lags), got {first}")
    return _EnvelopedTaps.apply(hidden, weight, bias, rate, log_gain, first)
