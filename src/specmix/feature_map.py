"""A recall-oriented gated spectral mixer: a Taylor feature map on queries and keys.

The multi-head gated mixer (``SpectralMixer(gated=True, head_dim=h)``) reads
``y_j = sum_i q_i conv(k_i v_j)``: a memory of outer products ``k v^T`` per head, decayed by
the long filter. Its key space has only h dimensions per head, so keys collide once a
sequence holds many pairs (multi-query associative recall). Here queries and keys go
through a second-order Taylor feature map, ``phi(q) . phi(k) = 1 + q.k / sqrt(h) +
(q.k)^2 / (2h)`` (the expansion of ``exp(q.k / sqrt(h))``, as in Based, Arora et al. 2024),
which widens each head's key space to ``F = 1 + h + h(h+1)/2`` features; the long
convolution then runs over ``F h`` channels per head, each head's with one kernel that
starts flat (a plain causal sum: linear attention) and is learned from there. Each head's
read-out is RMS-normalised per position (in place of linear attention's denominator,
which a signed learned kernel could drive to zero).

Everything else (projection, short convolutions, masks, cached decoding through
``ConvCache``) is the gated mixer's. Legend: B batch, N sequence, D channels, H heads,
h = D / H head width, F Taylor features.
"""
from __future__ import annotations

import math

import torch

from .filters import FrequencyFilter
from .mixers import SpectralMixer

__all__ = ["TaylorSpectralMixer", "taylor_features", "n_taylor_features"]


def n_taylor_features(width: int) -> int:
    """``1 + h + h (h + 1) / 2``: constant, linear and (symmetric) quadratic features."""
    return 1 + width + width * (width + 1) // 2


def taylor_features(x: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """The second-order Taylor feature map along ``dim`` (of width h):
    ``phi(a) . phi(b) = 1 + a.b / sqrt(h) + (a.b)^2 / (2h)`` for any two inputs.

    The quadratic part keeps each product ``a_i a_j`` once (``i <= j``), the off-diagonal ones
    scaled by ``sqrt(2)``, so F = ``n_taylor_features(h)``. ``(..., h, ...) -> (..., F, ...)``."""
    dim = dim % x.dim()
    width = x.shape[dim]
    rows, cols = torch.triu_indices(width, width, device=x.device)
    scale = (rows != cols).to(x.dtype) * (math.sqrt(2.0) - 1.0) + 1.0                 # sqrt(2) off the diagonal
    scale = scale / math.sqrt(2.0 * width)
    shape = [1] * x.dim()
    shape[dim] = -1
    quad = x.index_select(dim, rows) * x.index_select(dim, cols) * scale.view(shape)
    ones = torch.ones_like(x.narrow(dim, 0, 1))
    return torch.cat([ones, x / width ** 0.25, quad], dim=dim)


class TaylorSpectralMixer(SpectralMixer):
    """The gated multi-head spectral mixer with Taylor-mapped queries and keys.

    ``y_j = rms_norm_head( sum_a phi(q)_a conv_head(phi(k)_a v_j) )`` per head, where
    ``conv_head`` is the head's causal long convolution (one learned kernel per head,
    starting flat: a causal running sum). Causal, O(N log N) per channel, with exact cached
    decoding (``prefill`` / ``step``, inherited). The state per head holds ``F h`` channels
    with ``F = 1 + h + h(h+1)/2``: h = 4 gives 60 per head, h = 8 gives 360.

    Args:
        d_model: channels D.
        max_len: as for :class:`SpectralMixer`.
        head_dim: h, the width of each head's queries, keys and values (divides D).
        filter: ``"frequency"`` (starts flat) or ``"implicit"`` (its own decaying start).
        eps: added under the square root of the read-out's RMS normalisation.

    Shape:
        x ``(B, N, D)``, mask ``(B, N)`` bool (True = real) -> ``(B, N, D)``.

    Example:
        >>> mixer = TaylorSpectralMixer(32, max_len=64, head_dim=4)
        >>> mixer(torch.randn(2, 50, 32)).shape
        torch.Size([2, 50, 32])
    """

    def __init__(self, d_model: int, max_len: int, *, head_dim: int = 4, filter: str = "frequency",
                 eps: float = 1e-5, bias: bool = True, device=None, dtype=None) -> None:
        if head_dim < 2 or d_model % head_dim:
            raise ValueError(f"TaylorSpectralMixer: head_dim must be >= 2 and divide d_model={d_model}, "
                             f"got {head_dim}")
        self.eps = eps
        super().__init__(d_model, max_len, causal=True, filter=filter, gated=True, head_dim=head_dim,
                         bias=bias, device=device, dtype=dtype)

    @property
    def n_heads(self) -> int:
        return self.d_model // self.head_dim

    @property
    def n_features(self) -> int:
        return n_taylor_features(self.head_dim)

    def n_kernels(self) -> int:
        return self.d_model // self.head_dim            # one kernel per head

    @torch.no_grad()
    def reset_parameters(self) -> None:
        super().reset_parameters()
        if isinstance(self.filter, FrequencyFilter):    # flat start: kernel 1 at every lag
            flat = torch.ones(self.n_heads, self.max_len, dtype=torch.float64)
            resp = torch.fft.rfft(flat, n=self.filter.n_grid)               # (H, F_grid)
            self.filter.response.copy_(torch.view_as_real(resp))

    def expand_heads(self, k: torch.Tensor) -> torch.Tensor:
        """A per-head kernel ``(H, L)`` for the ``H F h`` convolved channels ``(H F h, L)``."""
        heads, length = k.shape
        width = self.n_features * self.head_dim
        return k[:, None, :].expand(heads, width, length).reshape(heads * width, length)

    def bind(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``phi(k)_a v_j`` per head: ``(B, D, ...)`` twice -> ``(B, H F h, ...)``."""
        h = self.head_dim
        feats = taylor_features(k.unflatten(1, (-1, h)), dim=2)                 # (B, H, F, ...)
        kv = feats.unsqueeze(3) * v.unflatten(1, (-1, 1, h))                     # (B, H, F, h, ...)
        return kv.flatten(1, 3)

    def read(self, q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``y_j = sum_a phi(q)_a m_aj``, RMS-normalised per head: q ``(B, D, ...)``, memory
        ``(B, H F h, ...)`` -> ``(B, D, ...)``."""
        h = self.head_dim
        feats = taylor_features(q.unflatten(1, (-1, h)), dim=2)                 # (B, H, F, ...)
        mem = memory.unflatten(1, (-1, self.n_features, h))                      # (B, H, F, h, ...)
        y = (feats.unsqueeze(3) * mem).sum(2)                                    # (B, H, h, ...)
        y = y * torch.rsqrt(y.pow(2).mean(2, keepdim=True) + self.eps)
        return y.flatten(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *,
                causal: bool | None = None, shard=None) -> torch.Tensor:
        if causal is False:
            raise ValueError("TaylorSpectralMixer: it is causal only")
        if shard is not None:
            raise ValueError("TaylorSpectralMixer: context parallelism (shard=) is not supported "
                             "(its kernels are per head); use spectral or spectral-gated layers")
        return super().forward(x, mask)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, max_len={self.max_len}, head_dim={self.head_dim}, "
                f"features={self.n_features}, filter={self.filter_kind!r}")
