"""The ceiling of a gated stack's training speed: its mixers with nothing mixed along N.

The LM step points compare whole models that differ only in their mixers, and both kinds
of mixer carry the same two projections (attention's qkv and output, the gated mixer's three
streams and output). A stack whose mixers keep the gated mixer's projections and gate but
convolve nothing is therefore the fastest any gated mixer could make the model: the ratio
``attention / gated-projections`` (``ops.GATED_CEILING``) side by side bounds what
``attention / spectral-gated`` can reach at each context. Benchmarks only (it is not a sequence model).

Legend: B batch, N sequence, D channels.
"""
from __future__ import annotations

import torch
from torch import nn

from ...mixers import SpectralMixer


class GatedProjections(nn.Module):
    """A gated mixer's position-wise part alone: ``out(q * k * v)``, q, k, v the in
    projection's three streams; no short or long convolution, one GEMM each way."""

    def __init__(self, mixer: SpectralMixer) -> None:
        super().__init__()
        if not mixer.gated:
            raise ValueError("GatedProjections: expected a gated SpectralMixer")
        self.d_model = mixer.d_model
        self.in_proj, self.out_proj = mixer.in_proj, mixer.out_proj

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            raise ValueError("GatedProjections: benchmarks only, no mask")
        q, k, v = self.in_proj(x).chunk(3, dim=-1)                        # 3 x (B, N, D)
        return self.out_proj(q * k * v)                                   # (B, N, D)


def with_gated_projections(model: nn.Module) -> nn.Module:
    """``model`` (a spectral-gated SpecMixLM) with each block's mixer cut to its projections."""
    for block in model.blocks:
        block.mixer = GatedProjections(block.mixer)
    return model
