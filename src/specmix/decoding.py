"""The fold arithmetic of cached spectral decoding: a causal long convolution, one token at a time.

``ConvCache`` holds the inputs of a causal convolution with a kernel ``(C, max_len)`` and
produces each new output exactly. Inputs older than the current block are *folded*: one
zero-padded FFT convolution gives their summed contribution to the next ``block`` outputs
(``ahead``), and only the inputs since the fold are summed directly. A token then costs
O(block C) plus the fold's O(t log t C / block) share, with block ~ 4 sqrt(t), instead of
attention's O(t C). It knows nothing about layers: ``SpectralMixer.prefill/step`` own the
projections, the short convolution and the gate, and keep a ``ConvCache`` in their state.

Legend: B batch, C convolved channels, N prompt length, t inputs so far.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .functional import fft_conv_cf

__all__ = ["ConvCache", "fold_block", "MIN_FOLD_BLOCK"]

MIN_FOLD_BLOCK = 64     # fewest tokens between folds (tests lower it to exercise many folds)


def fold_block(length: int, min_block: int | None = None) -> int:
    """Tokens between two folds at this length: a power of two near 4 sqrt(length), so that
    the direct sum (block C per token) and the fold's FFT (length log length C per block)
    cost about the same per token."""
    min_block = MIN_FOLD_BLOCK if min_block is None else min_block
    return max(min_block, 1 << math.ceil(math.log2(4 * math.sqrt(max(length, 1)))))


@dataclass(kw_only=True)
class ConvCache:
    """Exact incremental causal convolution ``y[t] = sum_{s <= t} kernel[:, t - s] * u[s]``."""

    kernel: torch.Tensor        # (C, max_len) lags 0..max_len-1
    reversed_kernel: torch.Tensor  # (C, max_len) lags max_len-1..0, in the inputs' dtype (step's direct sum)
    inputs: torch.Tensor        # (B, C, max_len) inputs so far in [:, :, :length]
    length: int                 # inputs so far
    folded: int                 # inputs [0, folded) enter the outputs through `ahead`
    ahead: torch.Tensor         # (B, C, block) their sum for outputs folded .. folded+block-1
    block: int                  # fold period (tokens)

    @property
    def max_len(self) -> int:
        return self.inputs.shape[-1]

    @classmethod
    def prefill(cls, kernel: torch.Tensor, u: torch.Tensor, max_len: int) -> tuple[torch.Tensor, "ConvCache"]:
        """Convolve the prompt ``u (B, C, N)`` and fold it, in one FFT convolution.

        Returns the prompt's outputs ``(B, C, N)`` and the cache. The convolution runs over
        ``N + block`` positions, so its last ``block`` outputs are already the prompt's
        contribution to the next ``block`` tokens (the first fold costs nothing extra).
        """
        bsz, channels, n = u.shape
        if n > max_len:
            raise ValueError(f"ConvCache.prefill: prompt of {n} tokens exceeds max_len={max_len}")
        if kernel.shape != (channels, max_len):
            raise ValueError(f"ConvCache.prefill: kernel must have shape (C, max_len)=({channels}, "
                             f"{max_len}), got {tuple(kernel.shape)}")
        inputs = u.new_zeros(bsz, channels, max_len)                    # (B, C, max_len)
        inputs[:, :, :n] = u
        block = min(fold_block(n), max_len - n)
        full = fft_conv_cf(F.pad(u, (0, block)), kernel[:, : n + block], causal=True)  # (B, C, N + block)
        cache = cls(kernel=kernel, reversed_kernel=kernel.flip(-1).to(u.dtype), inputs=inputs, length=n,
                    folded=n, ahead=full[:, :, n:], block=block)
        return full[:, :, :n], cache

    def fold(self) -> None:
        """Move every input so far into ``ahead``: one zero-padded FFT convolution gives their
        contribution to the next ``block`` outputs (exact linear convolution, as in training)."""
        t = self.length
        self.folded = t
        self.block = min(fold_block(t), self.max_len - t)
        u = F.pad(self.inputs[:, :, :t], (0, self.block))                # (B, C, t + block)
        self.ahead = fft_conv_cf(u, self.kernel[:, : t + self.block], causal=True)[:, :, t:]  # (B, C, block)

    def step(self, u_t: torch.Tensor) -> torch.Tensor:
        """Append the input ``u_t (B, C)``; return the output at its position ``(B, C)``:
        ``ahead[t - folded] + sum_{folded <= s <= t} kernel[t - s] u[s]``, a direct sum over
        at most ``block`` recent inputs, so a token costs the same after 1K or 32K of prompt."""
        t = self.length
        if t >= self.max_len:
            raise ValueError(f"cached decoding: length {t + 1} exceeds the cache's max_len {self.max_len}")
        if t - self.folded >= self.block:
            self.fold()
        self.inputs[:, :, t] = u_t
        recent = self.inputs[:, :, self.folded: t + 1]                     # (B, C, r) inputs folded..t
        lags = self.reversed_kernel[:, self.max_len - recent.shape[-1]:]     # (C, r) lag t - s at s, a view
        self.length = t + 1
        return (recent * lags).sum(-1) + self.ahead[:, :, t - self.folded]  # (B, C)
