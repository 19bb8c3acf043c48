"""Inverted dropout whose CPU mask comes from 16-bit random integers.

``torch.nn.functional.dropout`` on CPU draws its mask with ``bernoulli_``, which costs about
19 ms for a (32, 256, 256) activation on this project's 2-core machine: nine such calls were
14% of a training step of the quality recipe. ``random_`` fills 64-bit words about ten times
faster, so the mask here compares 16-bit lanes of random words against a threshold:
keep probability ``(65536 - q) / 65536`` with ``q = round(p * 65536)`` (p to within 8e-6), and
the kept values are scaled by the exact inverse of that probability, so the output is unbiased.
Other devices (CUDA has a fused Philox kernel) and ``inplace=True`` use torch's own dropout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "dropout", "keep_mask"]

_LANES = 65536          # values of one 16-bit lane


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, *, device=None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool mask of ``shape``, each entry kept (True) with probability ``1 - round(p * 65536) / 65536``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"keep_mask: p must be in [0, 1], got {p!r}")
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(generator=generator)
    # random_ leaves the sign bit of every word 0 (values in [0, 2^63)); w ^ (w << 1) is a
    # bijection of 64-bit words that makes each of the four 16-bit lanes uniform
    words ^= words << 1
    lanes = words.view(torch.int16)[:n].view(shape)            # (*shape) in [-32768, 32767]
    return lanes >= round(p * _LANES) - _LANES // 2


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the fast CPU mask; same shape and dtype as ``x``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    dropped = round(p * _LANES)
    if dropped == _LANES:
        return x * 0.0
    keep = keep_mask(x.shape, p, device=x.device)
    # mul's backward keeps only the mask, so scaling its output in place is safe
    return x.mul(keep).mul_(_LANES / (_LANES - dropped))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, state and repr) using :func:`dropout` when not in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return F.dropout(x, self.p, self.training, inplace=True)
        return dropout(x, self.p, self.training)
