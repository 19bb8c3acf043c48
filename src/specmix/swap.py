"""Drop-in replacement of ``nn.MultiheadAttention`` self-attention by spectral mixing.

``SpectralSelfAttention`` accepts the call of ``nn.MultiheadAttention`` for
self-attention and returns ``(output, None)``; ``swap_attention`` puts one in place of
every self-attention module of a model (``self_attn`` of ``nn.TransformerEncoderLayer`` /
``nn.TransformerDecoderLayer`` by default) and leaves cross-attention alone.
Legend: B batch, N sequence, D = embed_dim.
"""
from __future__ import annotations

import torch
from torch import nn

from .mixers import SpectralMixer

__all__ = ["SpectralSelfAttention", "swap_attention"]

_SUPPORTED_MASKS = ("attn_mask=None, an all-allowed mask, or the causal mask "
                    "(nn.Transformer.generate_square_subsequent_mask)")


def _mask_kind(attn_mask: torch.Tensor, seq_len: int) -> str:
    """'none' (nothing masked), 'causal' (exactly the future masked) or 'other'."""
    if attn_mask.shape[-2:] != (seq_len, seq_len):
        return "other"
    blocked = attn_mask if attn_mask.dtype == torch.bool else torch.isneginf(attn_mask)
    if attn_mask.dtype != torch.bool and bool((attn_mask[~blocked] != 0).any()):
        return "other"                                    # additive biases we cannot honour
    future = torch.ones(seq_len, seq_len, dtype=torch.bool, device=attn_mask.device).triu(1)
    blocked = blocked.reshape(-1, seq_len, seq_len)
    if not bool(blocked.any()):
        return "none"
    return "causal" if bool((blocked == future).all()) else "other"


class SpectralSelfAttention(nn.Module):
    """A ``SpectralMixer`` behind the ``nn.MultiheadAttention`` self-attention interface.

    Args:
        embed_dim: D.
        num_heads: accepted for compatibility; spectral mixing has no heads.
        max_len: longest sequence (see ``SpectralMixer``).
        batch_first: inputs ``(B, N, D)`` if True, else ``(N, B, D)`` as in PyTorch.
        causal: True: always causal. False: always bidirectional (a causal call raises).
            None: each call decides: causal when ``is_causal=True`` or ``attn_mask`` is the
            causal mask, bidirectional otherwise (one bidirectional filter, restricted to
            lags >= 0 for causal calls).
        filter, gated: as in ``SpectralMixer``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, None)``: query must be key and
    value (self-attention); ``key_padding_mask`` is ``(B, N)`` with True = padding.
    """

    # read by nn.TransformerEncoderLayer's fast-path checks: they send us down the plain path
    in_proj_bias = None
    _qkv_same_embed_dim = False

    def __init__(self, embed_dim: int, num_heads: int = 1, *, max_len: int,
                 batch_first: bool = False, causal: bool | None = None, filter: str = "frequency",
                 gated: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.batch_first, self.causal = embed_dim, num_heads, batch_first, causal
        self.mixer = SpectralMixer(embed_dim, max_len, causal=bool(causal), filter=filter,
                                   gated=gated, device=device, dtype=dtype)

    def _call_is_causal(self, attn_mask, is_causal: bool, seq_len: int) -> bool:
        kind = "none" if attn_mask is None else _mask_kind(attn_mask, seq_len)
        if kind == "other":
            raise ValueError(f"SpectralSelfAttention: unsupported attn_mask; supported are {_SUPPORTED_MASKS}")
        wants_causal = is_causal or kind == "causal"
        if self.causal is False and wants_causal:
            raise ValueError("SpectralSelfAttention: built with causal=False but the call asks "
                             "for causal masking; build it with causal=True or causal=None")
        return True if self.causal else wants_causal

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if key is not query or value is not query:
            raise ValueError("SpectralSelfAttention supports self-attention only (query is key "
                             "is value); keep nn.MultiheadAttention for cross-attention")
        x = query if self.batch_first else query.transpose(0, 1)         # (B, N, D)
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool:
                key_padding_mask = torch.isneginf(key_padding_mask)      # float mask: -inf = pad
            mask = ~key_padding_mask                                     # True = real token
        causal = self._call_is_causal(attn_mask, is_causal, x.shape[1])
        y = self.mixer(x, mask, causal=causal)
        return (y if self.batch_first else y.transpose(0, 1)), None

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, batch_first={self.batch_first}, causal={self.causal}"


def swap_attention(model: nn.Module, *, max_len: int, causal: bool | None = None,
                   filter: str = "frequency", gated: bool = False,
                   names: list[str] | None = None) -> list[str]:
    """Replace self-attention ``nn.MultiheadAttention`` modules by ``SpectralSelfAttention``.

    By default every module registered as ``self_attn`` (the self-attention of PyTorch's
    transformer layers) is replaced; ``multihead_attn`` (decoder cross-attention) is kept.
    ``names`` picks modules by their full name instead. New modules take the old one's
    width, ``batch_first``, device and dtype. Returns the replaced names, in model order.
    """
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)
               and (name in names if names is not None else name.split(".")[-1] == "self_attn")]
    if names is not None and len(targets) != len(set(names)):
        missing = sorted(set(names) - {name for name, _ in targets})
        raise ValueError(f"swap_attention: not nn.MultiheadAttention modules of the model: {missing}")
    for name, module in targets:
        ref = module.in_proj_weight if module.in_proj_weight is not None else module.q_proj_weight
        new = SpectralSelfAttention(module.embed_dim, module.num_heads, max_len=max_len,
                                    batch_first=module.batch_first, causal=causal, filter=filter,
                                    gated=gated, device=ref.device, dtype=ref.dtype)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    if targets:
        for mod in model.modules():     # its nested-tensor fast path needs MHA's own weights
            if isinstance(mod, nn.TransformerEncoder):
                mod.use_nested_tensor = False
    return [name for name, _ in targets]
