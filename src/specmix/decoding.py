"""The fold arithmetic of cached spectral decoding: a causal long convolution, one token at a time.

``ConvCache`` holds the inputs of a causal convolution with a kernel ``(C, max_len)`` and
produces each new output exactly. Old inputs are *folded* on two levels: one zero-padded FFT
convolution gives the summed contribution of every input before ``far_end`` to the next
``far_block`` outputs (``far``; the prompt, refolded every ~t/2 tokens), a second, short one
that of the inputs since then up to ``folded`` to the next ``block`` outputs (``ahead``,
which also carries far's rows for those outputs, so a step adds one row; block ~ 4
sqrt(tokens since far_end)), and only the inputs since ``folded`` are summed directly.
After a 32K prompt a token then costs a direct sum over tens of inputs and a
near fold over the generated tokens only, instead of attention's O(t C); the far fold's
O(t log t) is paid once per ~t/2 tokens. It knows nothing about layers:
``SpectralMixer.prefill/step`` own the projections, the short convolution and the gate, and
keep a ``ConvCache`` in their state.

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
    """Exact incremental causal convolution ``y[t] = sum_{s <= t} kernel[:, t - s] * u[s]``.

    The per-token buffers are time-major ``(B, T, C)``, so a step reads and writes contiguous
    rows of C values (channels-first rows are strided by ``max_len`` at one position)."""

    kernel: torch.Tensor        # (C, max_len) lags 0..max_len-1 (the folds' FFT convolutions)
    lags: torch.Tensor          # (max_len, C) lags max_len-1..0, in the inputs' dtype (step's direct sum)
    inputs: torch.Tensor        # (B, max_len, C) inputs so far in [:, :length]
    length: int                 # inputs so far
    far_end: int                # inputs [0, far_end) enter the outputs through `far`
    far: torch.Tensor           # (B, far_block, C) their sum for outputs far_end .. far_end+far_block-1
    folded: int                 # inputs [0, folded) enter the outputs through `ahead`
    ahead: torch.Tensor         # (B, block, C) their sum for outputs folded .. folded+block-1
    block: int                  # near fold period (tokens), within the far fold's reach

    @property
    def max_len(self) -> int:
        return self.inputs.shape[1]

    @property
    def far_block(self) -> int:
        return self.far.shape[1]

    def batch_tensors(self) -> list[torch.Tensor]:
        """The tensors with one row per sequence (what :meth:`reorder` selects from)."""
        return [self.inputs, self.far, self.ahead]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the batch rows ``rows (B',)`` in that order, in place (beam search picks and
        repeats rows); the kernel has no batch axis and stays."""
        self.inputs = self.inputs.index_select(0, rows)
        self.far = self.far.index_select(0, rows)
        self.ahead = self.ahead.index_select(0, rows)

    @classmethod
    def prefill(cls, kernel: torch.Tensor, u: torch.Tensor, max_len: int) -> tuple[torch.Tensor, "ConvCache"]:
        """Convolve the prompt ``u (B, C, N)`` and fold it, in one FFT convolution.

        Returns the prompt's outputs ``(B, C, N)`` and the cache. The convolution runs over
        ``N + far_block`` positions, so its last ``far_block`` outputs are already the
        prompt's contribution to the next tokens (the first far fold costs nothing extra).
        """
        bsz, channels, n = u.shape
        if n > max_len:
            raise ValueError(f"ConvCache.prefill: prompt of {n} tokens exceeds max_len={max_len}")
        if kernel.shape != (channels, max_len):
            raise ValueError(f"ConvCache.prefill: kernel must have shape (C, max_len)=({channels}, "
                             f"{max_len}), got {tuple(kernel.shape)}")
        inputs = u.new_zeros(bsz, max_len, channels)                    # (B, max_len, C)
        inputs[:, :n] = u.transpose(1, 2)
        reach = _far_block(n, max_len)
        full = fft_conv_cf(F.pad(u, (0, reach)), kernel[:, : n + reach], causal=True)  # (B, C, N + reach)
        far = full[:, :, n:].transpose(1, 2).contiguous()               # (B, reach, C)
        block = _near_block(n, n, reach)                                 # an empty near level
        cache = cls(kernel=kernel, lags=kernel.flip(-1).T.contiguous().to(u.dtype), inputs=inputs,
                    length=n, far_end=n, far=far, folded=n, ahead=far[:, :block], block=block)
        return full[:, :, :n], cache

    def _conv_ahead(self, begin: int, reach: int) -> torch.Tensor:
        """The contribution of inputs ``[begin, length)`` to the next ``reach`` outputs, by one
        zero-padded FFT convolution (exact linear convolution, as in training): ``(B, reach, C)``."""
        t = self.length
        u = F.pad(self.inputs[:, begin:t].transpose(1, 2), (0, reach))   # (B, C, t - begin + reach)
        y = fft_conv_cf(u, self.kernel[:, : t - begin + reach], causal=True)   # (B, C, t - begin + reach)
        return y[:, :, t - begin:].transpose(1, 2)                       # (B, reach, C), a view

    def _far_share(self) -> torch.Tensor:
        """``far``'s rows for the next near block ``[length, length + block)``: ``(B, block, C)``."""
        start = self.length - self.far_end
        return self.far[:, start: start + self.block]

    def _start_near(self) -> None:
        """An empty near level at ``length``: nothing is folded since ``far_end`` yet."""
        self.folded = self.length
        self.block = _near_block(self.length, self.far_end, self.far_block)
        self.ahead = self._far_share()

    def fold(self) -> None:
        """Move the inputs since ``far_end`` into ``ahead`` (the near level)."""
        self.block = _near_block(self.length, self.far_end, self.far_block)
        self.folded = self.length
        self.ahead = (self._far_share() + self._conv_ahead(self.far_end, self.block)).contiguous()

    def fold_far(self) -> None:
        """Move every input so far into ``far`` and empty the near level."""
        t = self.length
        self.far = self._conv_ahead(0, _far_block(t, self.max_len)).contiguous()
        self.far_end = t
        self._start_near()

    def step(self, u_t: torch.Tensor) -> torch.Tensor:
        """Append the input ``u_t (B, C)``; return the output at its position ``(B, C)``:
        ``ahead[t - folded] + sum_{folded <= s <= t} kernel[t - s] u[s]``, a direct sum over
        at most ``block`` recent inputs."""
        t = self.length
        if t >= self.max_len:
            raise ValueError(f"cached decoding: length {t + 1} exceeds the cache's max_len {self.max_len}")
        if t - self.far_end >= self.far_block:
            self.fold_far()
        elif t - self.folded >= self.block:
            self.fold()
        self.inputs[:, t] = u_t
        recent = self.inputs[:, self.folded: t + 1]                        # (B, r, C) inputs folded..t
        direct = torch.linalg.vecdot(recent, self.lags[self.max_len - recent.shape[1]:], dim=1)  # (B, C)
        self.length = t + 1
        return direct + self.ahead[:, t - self.folded]                     # (B, C)


def _near_block(length: int, far_end: int, far_block: int) -> int:
    """The next near block at ``length``: ~4 sqrt(tokens since far_end), within far's reach."""
    return min(fold_block(length - far_end), far_end + far_block - length)


def _far_block(length: int, max_len: int) -> int:
    """Outputs one far fold at ``length`` reaches: about half the inputs so far (at least one
    near block), so its O(t log t) is shared by ~t/2 tokens; never past ``max_len``."""
    return max(1, min(max(length // 2, fold_block(length)), max_len - length))
