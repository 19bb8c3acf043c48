"""Multi-head self-attention (full or sliding-window) with its KV-cache decoding.

Same interface as :class:`specmix.mixers.SpectralMixer`: ``forward(x, mask=None)``,
``prefill(x, max_len) -> (y, state)``, ``step(x_t, state) -> y_t``.
Legend: B batch, N sequence, D channels, H heads, E = D / H.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention_ops import local_attention, rotary
from .tokens import check_tokens, zero_padding

__all__ = ["Attention", "AttentionState"]


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

    Args:
        d_model: channels D (divisible by ``n_heads``).
        n_heads: heads H.
        causal: each query sees only keys at or before it.
        window: if set, sliding-window (local) attention over the ``window`` nearest keys
            (``0 <= t - s < window`` causal, ``|t - s| < window`` otherwise), O(N * window).
        dropout: dropout on the attention weights while training (off in eval and decoding).
        rope: rotate queries and keys by their positions (:func:`specmix.functional.rotary`):
            relative positions inside the layer, no position embedding needed.
        bias: biases in the projections.

    Shape:
        x ``(B, N, D)``, mask ``(B, N)`` bool (True = real) -> ``(B, N, D)``.
    """

    def __init__(self, d_model: int, n_heads: int = 1, *, causal: bool = True,
                 window: int | None = None, dropout: float = 0.0, rope: bool = False,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if n_heads < 1 or d_model % n_heads:
            raise ValueError(f"Attention: n_heads must divide d_model={d_model}, got {n_heads}")
        if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
            raise ValueError(f"Attention: window must be an int >= 1 or None, got {window!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Attention: dropout must be in [0, 1), got {dropout!r}")
        if rope and (d_model // n_heads) % 2:
            raise ValueError(f"Attention: rope needs an even head width, got d_model / n_heads = "
                             f"{d_model // n_heads}")
        factory = {"device": device, "dtype": dtype}
        self.d_model, self.n_heads, self.causal, self.window = d_model, n_heads, causal, window
        self.dropout, self.rope = dropout, rope
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias, **factory)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias, **factory)

    def reset_parameters(self) -> None:
        self.qkv.reset_parameters()
        self.out_proj.reset_parameters()

    def project_in(self, x: torch.Tensor) -> torch.Tensor:
        """The input projection ``(B, N, D) -> (B, N, 3D)`` (queries, keys, values)."""
        return self.qkv(x)

    def _heads(self, x: torch.Tensor, offset: int = 0):
        """Queries, keys, values ``3 x (B, H, N, E)`` of the tokens at ``offset ..``."""
        bsz, seq_len, _ = x.shape
        qkv = self.project_in(x).view(bsz, seq_len, 3, self.n_heads, -1)   # (B, N, 3, H, E)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                               # 3 x (B, H, N, E)
        if self.rope:
            q, k = rotary(q, offset), rotary(k, offset)
        return q, k, v

    def _merge(self, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bsz, _, seq_len, _ = y.shape
        y = y.transpose(1, 2).reshape(bsz, seq_len, self.d_model)          # (B, N, D)
        return zero_padding(self.out_proj(y), mask)

    def _attend(self, q, k, v, mask):
        p = self.dropout if self.training else 0.0
        if self.window is not None:
            return local_attention(q, k, v, window=self.window, causal=self.causal, key_mask=mask,
                                   dropout_p=p)
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=p)
        seq_len = q.shape[2]
        allowed = mask[:, None, None, :]                          # (B, 1, 1, N) keys
        if self.causal:
            allowed = allowed & torch.ones(seq_len, seq_len, dtype=torch.bool,
                                           device=q.device).tril()
        allowed = allowed.expand(-1, 1, seq_len, seq_len)         # (B, 1, N, N)
        allowed = allowed | ~allowed.any(-1, keepdim=True)       # padded queries: no NaN
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *, shard=None) -> torch.Tensor:
        check_tokens(x, self.d_model, mask, "Attention", self.qkv.weight)
        if shard is not None:
            raise ValueError("Attention: context parallelism (shard=) is not supported by attention "
                             "layers (it would need ring attention); use spectral layers only")
        if x.numel() == 0:                                               # B = 0 or N = 0
            return x.clone()
        q, k, v = self._heads(zero_padding(x, mask))                 # 3 x (B, H, N, E)
        return self._merge(self._attend(q, k, v, mask), mask)

    def prefill(self, x: torch.Tensor, max_len: int, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, "AttentionState"]:
        """Run the prompt ``x (B, N, D)``; returns ``forward(x)`` and a KV cache preallocated
        for ``max_len`` tokens (a local layer reads only its last ``window`` keys). Cached
        decoding of attention layers takes unpadded batches: a ``mask`` must be all True."""
        check_tokens(x, self.d_model, mask, "Attention.prefill", self.qkv.weight)
        _refuse_padding(mask, "Attention.prefill")
        if not self.causal:
            raise ValueError("Attention.prefill: cached decoding needs a causal mixer")
        q, k, v = self._heads(x)                                     # 3 x (B, H, N, E)
        bsz, heads, n, e = k.shape
        if n > max_len:
            raise ValueError(f"Attention.prefill: prompt of {n} tokens exceeds max_len={max_len}")
        keys, values = (k.new_zeros(bsz, heads, max_len, e) for _ in range(2))
        keys[:, :, :n], values[:, :, :n] = k, v
        y = self._merge(self._attend(q, k, v, None), None)
        return y, AttentionState(keys=keys, values=values, length=n)

    def step(self, x_t: torch.Tensor, state: "AttentionState", mask: torch.Tensor | None = None) -> torch.Tensor:
        """The next token ``x_t (B, D) -> (B, D)``; appends its key and value to ``state``."""
        _refuse_padding(mask, "Attention.step")
        t = state.length
        q, k, v = self._heads(x_t[:, None, :], offset=t)             # 3 x (B, H, 1, E)
        if t >= state.keys.shape[2]:
            raise ValueError(f"cached decoding: length {t + 1} exceeds the cache's max_len "
                             f"{state.keys.shape[2]}")
        state.keys[:, :, t: t + 1], state.values[:, :, t: t + 1] = k, v
        state.length = t + 1
        first = 0 if self.window is None else max(0, t + 1 - self.window)
        y = F.scaled_dot_product_attention(q, state.keys[:, :, first: t + 1],
                                           state.values[:, :, first: t + 1])    # (B, H, 1, E)
        return self._merge(y, None)[:, 0]                                        # (B, D)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n_heads={self.n_heads}, causal={self.causal}, "
                f"window={self.window}" + (f", dropout={self.dropout}" if self.dropout else "")
                + (", rope=True" if self.rope else ""))


def _refuse_padding(mask: torch.Tensor | None, where: str) -> None:
    if mask is not None and not bool(mask.all()):
        raise ValueError(f"{where}: cached decoding with attention layers takes unpadded batches; "
                         "decode padded rows one by one, or use a model whose layers are all spectral")


@dataclass(kw_only=True)
class AttentionState:
    """Inference state of a causal :class:`Attention`: a preallocated KV cache."""

    keys: torch.Tensor          # (B, H, max_len, E); [:, :, :length] are filled
    values: torch.Tensor        # (B, H, max_len, E)
    length: int                 # tokens so far

    def batch_tensors(self) -> list[torch.Tensor]:
        """The tensors with one row per sequence (what :meth:`reorder` selects from)."""
        return [self.keys, self.values]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the batch rows ``rows (B',)`` in that order, in place (beam search)."""
        self.keys = self.keys.index_select(0, rows)
        self.values = self.values.index_select(0, rows)
