"""The position-wise MLP and the pre-norm residual block around any mixer.

``Block`` delegates cached decoding to its mixer: ``prefill`` / ``step`` run the same norm,
residual and MLP as ``forward`` around ``mixer.prefill`` / ``mixer.step``, and the state they
return is the mixer's own. Legend: B batch, N sequence, D channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout
from .tokens import check_tokens

__all__ = ["MLP", "Block", "NORMS", "ACTIVATIONS"]

NORMS = ("layer", "rms")
ACTIVATIONS = ("gelu", "relu2")


class MLP(nn.Module):
    """Position-wise ``Linear(D, d_ff) -> activation -> Linear(d_ff, D)``; ``(..., D) -> (..., D)``.
    ``activation``: ``"gelu"`` (exact erf form) or ``"relu2"`` (``relu(h) ** 2``, as in the
    modded-nanogpt speedrun records)."""

    def __init__(self, d_model: int, d_ff: int, *, bias: bool = True, activation: str = "gelu",
                 device=None, dtype=None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {ACTIVATIONS}, got {activation!r}")
        factory = {"device": device, "dtype": dtype}
        self.activation = activation
        self.fc = nn.Linear(d_model, d_ff, bias=bias, **factory)
        self.proj = nn.Linear(d_ff, d_model, bias=bias, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.proj(F.gelu(h) if self.activation == "gelu" else F.relu(h).square())

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """``forward`` for one token ``(B, D)`` of cached decoding, with GELU run by ATen's own
        kernel: for a contiguous float32 input ``F.gelu`` calls oneDNN's primitive, which at
        one token cost ~25 us a call against ~4 us (2 cores, d_ff 512) and made a whole 4-layer
        decoding step ~20% slower (alternating in-process probe after a 32K prompt: 2.30 vs
        1.99 ms). Both compute the exact erf form; oneDNN is off only around that one call."""
        h = self.fc(x_t)
        if self.activation != "gelu":
            return self.proj(F.relu(h).square())
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            h = F.gelu(h)
        finally:
            torch.backends.mkldnn.enabled = enabled
        return self.proj(h)


class Block(nn.Module):
    """Pre-norm residual block: ``x + drop(mixer(norm(x)))``, then ``x + drop(mlp(norm(x)))``.

    Args:
        d_model: channels D; must equal ``mixer.d_model``.
        mixer: any module with the mixer interface (``SpectralMixer``, ``Attention``).
        mlp_ratio: hidden width of the MLP as a multiple of D; 0 = no MLP (a mixer-only block,
            as in Zoology's recall models).
        norm: ``"layer"`` (LayerNorm) or ``"rms"`` (RMSNorm).
        dropout: dropout on each residual branch while training (nanoGPT's places).

    Shape:
        x ``(B, N, D)``, mask ``(B, N)`` bool -> ``(B, N, D)``.
    """

    def __init__(self, d_model: int, mixer: nn.Module, mlp_ratio: float = 4.0,
                 norm: str = "layer", *, dropout: float = 0.0, activation: str = "gelu",
                 device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(d_model, int) or isinstance(d_model, bool):
            raise TypeError(f"Block(d_model, mixer): d_model must be an int, got {type(d_model).__name__}")
        if getattr(mixer, "d_model", None) != d_model:
            raise ValueError(f"Block: mixer.d_model must equal d_model={d_model}, "
                             f"got {getattr(mixer, 'd_model', None)}")
        if norm not in NORMS:
            raise ValueError(f"Block: norm must be one of {NORMS}, got {norm!r}")
        if mlp_ratio < 0:
            raise ValueError(f"Block: mlp_ratio must be >= 0, got {mlp_ratio!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Block: dropout must be in [0, 1), got {dropout!r}")
        factory = {"device": device, "dtype": dtype}
        norm_cls = nn.LayerNorm if norm == "layer" else nn.RMSNorm
        d_ff = int(round(mlp_ratio * d_model))
        self.d_model = d_model
        self.norm1 = norm_cls(d_model, **factory)          # registration order kept from the
        self.norm2 = norm_cls(d_model, **factory) if d_ff else None   # first release: same init
        self.mixer = mixer                                  # draws, same optimizer-state order
        self.mlp = MLP(d_model, d_ff, activation=activation, **factory) if d_ff else None
        self.drop = Dropout(dropout)

    def _mlp_branch(self, x: torch.Tensor, one_token: bool = False) -> torch.Tensor:
        if self.mlp is None:
            return x
        mlp = self.mlp.step if one_token else self.mlp
        return x + self.drop(mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *, shard=None) -> torch.Tensor:
        """``shard`` (context parallelism): ``x`` is this rank's slice, the mixer reshards."""
        check_tokens(x, self.d_model, mask, "Block")
        mixed = self.mixer(self.norm1(x), mask) if shard is None else self.mixer(self.norm1(x), mask, shard=shard)
        x = x + self.drop(mixed)
        return self._mlp_branch(x)

    def prefill(self, x: torch.Tensor, max_len: int, mask: torch.Tensor | None = None):
        """``(forward(x, mask), state)`` for a prompt ``(B, N, D)``; the state is the mixer's."""
        args = () if mask is None else (mask,)
        y, state = self.mixer.prefill(self.norm1(x), max_len, *args)
        return self._mlp_branch(x + y), state

    def step(self, x_t: torch.Tensor, state, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The next token ``(B, D) -> (B, D)``; the mixer updates ``state`` in place, the MLP
        runs its one-token form (:meth:`MLP.step`). ``mask (B,)`` False: a padded step."""
        args = () if mask is None else (mask,)
        return self._mlp_branch(x_t + self.mixer.step(self.norm1(x_t), state, *args), one_token=True)
