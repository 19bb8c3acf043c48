"""Drop-in replacement of self-attention by spectral mixing, in PyTorch and HF models.

``SpectralSelfAttention`` accepts the call of ``nn.MultiheadAttention`` for
self-attention and returns ``(output, None)``; ``swap_attention`` puts one in place of
every self-attention module of a model (``self_attn`` of ``nn.TransformerEncoderLayer`` /
``nn.TransformerDecoderLayer`` by default), and a :class:`specmix.hf.HFSpectralAttention`
in place of each supported Hugging Face attention module; cross-attention is left alone.
Legend: B batch, N sequence, D = embed_dim.
"""
from __future__ import annotations

import torch
from torch import nn

from .hf_attention import HF_ATTENTION_CLASSES, is_hf_attention, looks_like_hf_attention, replace_hf_attention
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


_SUPPORTED = ("nn.MultiheadAttention used as self-attention (`self_attn` of nn.Transformer layers), "
              "and from Hugging Face transformers: " + ", ".join(HF_ATTENTION_CLASSES))


def _replacement(module: nn.Module, *, max_len: int, causal: bool | None, filter: str, gated: bool,
                 head_dim: int) -> nn.Module:
    if isinstance(module, nn.MultiheadAttention):
        if head_dim != 1:
            raise ValueError("swap_attention: head_dim > 1 is not supported for nn.MultiheadAttention")
        ref = module.in_proj_weight if module.in_proj_weight is not None else module.q_proj_weight
        return SpectralSelfAttention(module.embed_dim, module.num_heads, max_len=max_len,
                                     batch_first=module.batch_first, causal=causal, filter=filter,
                                     gated=gated, device=ref.device, dtype=ref.dtype)
    return replace_hf_attention(module, max_len=max_len, causal=causal, filter=filter, gated=gated,
                                head_dim=head_dim)


def _targets(model: nn.Module, names: list[str] | None) -> list[tuple[str, nn.Module]]:
    modules = dict(model.named_modules())
    if names is None:
        return [(name, m) for name, m in modules.items()
                if (isinstance(m, nn.MultiheadAttention) and name.split(".")[-1] == "self_attn") or is_hf_attention(m)]
    missing = sorted(set(names) - set(modules))
    if missing:
        raise ValueError(f"swap_attention: the model has no modules named {missing}")
    unsupported = [f"{n} ({type(modules[n]).__name__})" for n in names
                   if not (isinstance(modules[n], nn.MultiheadAttention) or is_hf_attention(modules[n]))]
    if unsupported:
        raise ValueError(f"swap_attention: cannot replace {unsupported}; supported: {_SUPPORTED}")
    return [(name, m) for name, m in modules.items() if name in names]


def swap_attention(model: nn.Module, *, max_len: int, causal: bool | None = None,
                   filter: str = "frequency", gated: bool = False, head_dim: int = 1,
                   names: list[str] | None = None, missing_ok: bool = False) -> list[str]:
    """Replace the self-attention modules of ``model`` by spectral mixing; returns their names.

    Found by default: every ``nn.MultiheadAttention`` registered as ``self_attn`` (PyTorch's
    transformer layers; ``multihead_attn``, the decoder's cross-attention, is kept), and every
    supported Hugging Face self-attention module (see :mod:`specmix.hf`; cross-attention is
    kept). ``names`` picks modules by their full name instead. New modules take the old
    one's width, device and dtype (and ``batch_first`` for MHA); ``causal=None`` keeps each
    module's direction. A model with nothing to replace raises a ValueError that lists what
    is supported, unless ``missing_ok=True``.

    In a Hugging Face model the swap is recorded in ``model.config.specmix_swap``, so that
    :func:`specmix.hf.load_swapped` (or ``AutoModel*`` with ``trust_remote_code=True`` after
    :func:`specmix.hf.save_swapped`) rebuilds it from a saved folder.
    """
    targets = _targets(model, names)
    if not targets and not missing_ok:
        unknown = sorted({type(m).__name__ for m in model.modules() if looks_like_hf_attention(m)})
        found = f"; its attention modules {unknown} are not supported" if unknown else ""
        raise ValueError(f"swap_attention: found no self-attention to replace in {type(model).__name__}{found}. "
                         f"Supported: {_SUPPORTED}. Pass names=[...] to choose modules, or missing_ok=True")
    hf_swapped = False
    for name, module in targets:
        hf_swapped = hf_swapped or is_hf_attention(module)
        new = _replacement(module, max_len=max_len, causal=causal, filter=filter, gated=gated, head_dim=head_dim)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    if hf_swapped and hasattr(getattr(model, "config", None), "to_dict"):    # HF's config: saved with the weights
        model.config.specmix_swap = {"max_len": max_len, "causal": causal, "filter": filter, "gated": gated,
                                     "head_dim": head_dim, "names": names}
    if targets:
        for mod in model.modules():     # its nested-tensor fast path needs MHA's own weights
            if isinstance(mod, nn.TransformerEncoder):
                mod.use_nested_tensor = False
    return [name for name, _ in targets]
