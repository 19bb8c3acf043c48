"""Spectral mixing in place of the self-attention of Hugging Face ``transformers`` models.

:func:`specmix.swap_attention` calls :func:`replace_hf_attention` for every supported module
it finds. The route is *module replacement*: the attention module (GPT-2's
``GPT2Attention``, the Llama family's ``LlamaAttention`` / ``MistralAttention`` /
``Qwen2Attention``, the BERT family's ``BertSelfAttention`` / ``RobertaSelfAttention``) is
replaced by :class:`HFSpectralAttention`, which reads the hidden states and returns what the
block expects, ``(output, None)``. Registering a function with HF's ``AttentionInterface``
was not enough: that interface receives per-head q, k, v after the projections (and after
RoPE for Llama) and is fed HF's KV cache, while spectral mixing needs the hidden states and
its own decoding state.

Cached generation: HF's ``DynamicCache`` still drives ``generate`` (it counts the tokens
seen, which sets position ids and mask sizes). Each swapped layer's entry in it is a
:class:`~specmix.hf.cache_layer.MixerCacheLayer`: the count of tokens seen and the
layer's state, the folded convolution cache of :mod:`specmix.decoding`, which it reorders
when HF reorders its layers (beam search, ``num_return_sequences``) and refuses to crop
(assisted decoding). A new token costs what
``SpectralMixer.step`` costs, never an FFT over the whole history. Static and
sliding-window caches are refused.

Masks: HF's 2D and 4D (boolean or additive) masks become specmix's token mask; a position
is real when it may attend to itself. Nothing here imports ``transformers`` until a cache
arrives (then :mod:`specmix.hf.cache_layer` does).
Legend: B batch, N new tokens, D hidden size.
"""
from __future__ import annotations

import torch
from torch import nn

from .mixers import SpectralMixer, SpectralState

__all__ = ["HF_ATTENTION_CLASSES", "HFSpectralAttention", "is_hf_attention", "replace_hf_attention"]

# class name -> family; matched for classes defined inside the transformers package
HF_ATTENTION_CLASSES = {
    "GPT2Attention": "gpt2", "LlamaAttention": "llama", "MistralAttention": "llama",
    "Qwen2Attention": "llama", "BertSelfAttention": "bert", "RobertaSelfAttention": "bert",
}
# arguments HF passes to an attention module that spectral mixing does not need
_IGNORED = frozenset({"position_ids", "position_embeddings", "use_cache", "cache_position",
                      "output_attentions", "head_mask", "encoder_attention_mask",
                      "num_items_in_batch"})   # Trainer's loss argument, passed down by the model


def _from_transformers(module: nn.Module) -> bool:
    return type(module).__module__.split(".")[0] == "transformers"


def is_hf_attention(module: nn.Module) -> bool:
    """A supported HF self-attention module (cross-attention modules are not)."""
    return (_from_transformers(module) and type(module).__name__ in HF_ATTENTION_CLASSES
            and not getattr(module, "is_cross_attention", False))


def looks_like_hf_attention(module: nn.Module) -> bool:
    """An attention module of transformers that this version of specmix cannot replace."""
    return (_from_transformers(module) and type(module).__name__.endswith("Attention")
            and type(module).__name__ not in HF_ATTENTION_CLASSES)


def token_mask(attention_mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """specmix's ``(B, n)`` mask (True = real) of the last ``n`` positions, from HF's mask:
    2D ``(B, K)`` (1 = real), or 4D ``(B, 1, Q, K)`` boolean (True = may attend) or additive
    (0 = may attend). In a 4D mask a position is real when it may attend to itself."""
    if attention_mask is None:
        return None
    if attention_mask.dim() == 2:
        real = attention_mask[:, -n:].bool()
    elif attention_mask.dim() == 4:
        allowed = attention_mask if attention_mask.dtype == torch.bool else \
            attention_mask > torch.finfo(attention_mask.dtype).min / 2
        q_len, k_len = allowed.shape[-2:]
        if q_len == 1 and n > 1:                                   # (B, 1, 1, K): key padding only
            real = allowed[:, 0, 0, -n:]
        else:
            rows = torch.arange(q_len, device=allowed.device)
            real = allowed[:, 0, rows, k_len - q_len + rows][:, -n:]  # (B, n) the diagonal
    else:
        raise ValueError(f"HFSpectralAttention: attention_mask must be 2D (B, K) or 4D (B, 1, Q, K), "
                         f"got shape {tuple(attention_mask.shape)}")
    return None if bool(real.all()) else real


class HFSpectralAttention(nn.Module):
    """A :class:`SpectralMixer` in the attention slot of a Hugging Face model.

    Accepts the keyword call of the module it replaces (``hidden_states``, ``attention_mask``,
    ``cache`` / ``past_key_values``, and position arguments it does not need) and returns
    ``(output, None)``. Cross-attention calls (``encoder_hidden_states``) and unknown
    arguments raise a TypeError naming them.

    Args:
        d_model: hidden size D. max_len: the longest sequence (prompt + generated tokens).
        causal: the direction of the replaced module. layer_idx: its index in HF's cache.
        replaces: the class name of the replaced module (for messages).
        filter, gated, head_dim: as in :class:`SpectralMixer`.
    """

    def __init__(self, d_model: int, *, max_len: int, causal: bool, layer_idx: int | None,
                 replaces: str, filter: str = "frequency", gated: bool = False, head_dim: int = 1,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.max_len, self.is_causal, self.layer_idx, self.replaces = max_len, causal, layer_idx, replaces
        self.mixer = SpectralMixer(d_model, max_len, causal=causal, filter=filter, gated=gated,
                                   head_dim=head_dim, device=device, dtype=dtype)

    def extra_repr(self) -> str:
        return f"replaces={self.replaces}, layer_idx={self.layer_idx}, causal={self.is_causal}"

    def forward(self, hidden_states: torch.Tensor, *args, attention_mask: torch.Tensor | None = None,
                cache=None, past_key_values=None, encoder_hidden_states=None, **kwargs):
        self._check_call(args, encoder_hidden_states, kwargs)
        n = hidden_states.shape[1]
        mask = token_mask(attention_mask, n)
        cache = self._self_attention_cache(cache if cache is not None else past_key_values)
        if cache is None or not self.is_causal:
            return self.mixer(hidden_states, mask), None
        if torch.is_grad_enabled() and cache.get_seq_length(self.layer_idx) == 0:
            y = self.mixer(hidden_states, mask)          # a prompt with gradients: no state kept
            self._advance(cache, hidden_states, None)
            return y, None
        return self._decode(hidden_states, mask, cache), None

    # The decoding path runs eagerly even inside torch.compile: the folded state's Python
    # bookkeeping (positions, fold points) would pin a traced graph to one position, so
    # every generated token would compile a new graph. The layers around it stay compiled.
    @torch.compiler.disable
    def _decode(self, hidden_states: torch.Tensor, mask: torch.Tensor | None, cache) -> torch.Tensor:
        """The prompt's prefill (no state yet) or the next tokens' steps: ``(B, N, D)``."""
        seen = cache.get_seq_length(self.layer_idx)
        if seen == 0:
            y, state = self.mixer.prefill(hidden_states, self.max_len, mask)
        else:
            state = self._continue(cache, seen)
            y = torch.stack([self.mixer.step(hidden_states[:, i], state, None if mask is None else mask[:, i])
                             for i in range(hidden_states.shape[1])], dim=1)   # (B, N, D)
        self._advance(cache, hidden_states, state)
        return y

    # ------------------------------------------------------------------ helpers
    def _check_call(self, args, encoder_hidden_states, kwargs) -> None:
        where = f"HFSpectralAttention (in place of {self.replaces})"
        if args:
            raise TypeError(f"{where}: takes hidden_states as its only positional argument, got "
                            f"{len(args)} more; this transformers version calls attention differently")
        if encoder_hidden_states is not None:
            raise TypeError(f"{where}: replaces self-attention only; cross-attention needs the original module")
        unknown = sorted(set(kwargs) - _IGNORED)
        if unknown:
            raise TypeError(f"{where}: unexpected arguments {unknown}; known: attention_mask, cache, "
                            f"past_key_values, {', '.join(sorted(_IGNORED))}")

    def _self_attention_cache(self, cache):
        if cache is None:
            return None
        cache = getattr(cache, "self_attention_cache", cache)     # EncoderDecoderCache
        if not (hasattr(cache, "layers") and hasattr(cache, "update") and hasattr(cache, "get_seq_length")):
            raise TypeError(f"HFSpectralAttention: unsupported cache {type(cache).__name__}; "
                            "cached generation after swap_attention needs a DynamicCache")
        if getattr(cache, "is_compileable", False):    # static / sliding-window: preallocated, 4D masks
            raise TypeError(f"HFSpectralAttention: unsupported cache {type(cache).__name__} (a static or "
                            "sliding-window cache); generate with the default dynamic cache")
        if self.layer_idx is None:
            raise TypeError(f"HFSpectralAttention: the replaced {self.replaces} had no layer_idx, "
                            "so its place in HF's cache is unknown")
        return cache

    def _continue(self, cache, seen: int) -> SpectralState:
        layer = cache.layers[self.layer_idx] if self.layer_idx < len(cache.layers) else None
        if getattr(layer, "state", None) is None:
            raise RuntimeError("HFSpectralAttention: no decoding state for this cache; the prompt must "
                               "run under torch.no_grad() (as generate does) to be continued")
        return layer.state

    def _advance(self, cache, hidden_states: torch.Tensor, state: SpectralState | None) -> None:
        """Count the new tokens in this layer of HF's cache, a
        :class:`~specmix.hf.cache_layer.MixerCacheLayer` that holds our state."""
        from .hf.cache_layer import MixerCacheLayer         # transformers is loaded: a cache came in
        while len(cache.layers) <= self.layer_idx:
            cache.layers.append(MixerCacheLayer())
        if not isinstance(cache.layers[self.layer_idx], MixerCacheLayer):
            cache.layers[self.layer_idx] = MixerCacheLayer()
        cache.layers[self.layer_idx].advance(hidden_states.shape[1], state, hidden_states.shape[0])


def replace_hf_attention(module: nn.Module, *, max_len: int, causal: bool | None, filter: str,
                         gated: bool, head_dim: int) -> HFSpectralAttention:
    """The replacement for one supported HF attention module: width from its config, direction
    from its ``is_causal`` (unless ``causal`` is given), device and dtype from its weights."""
    config = getattr(module, "config", None)
    d_model = getattr(config, "hidden_size", None)
    if d_model is None:
        raise TypeError(f"swap_attention: {type(module).__name__} has no config.hidden_size; "
                        "this transformers version is not supported")
    ref = next(module.parameters())
    return HFSpectralAttention(d_model, max_len=max_len,
                               causal=bool(module.is_causal) if causal is None else causal,
                               layer_idx=getattr(module, "layer_idx", None), replaces=type(module).__name__,
                               filter=filter, gated=gated, head_dim=head_dim, device=ref.device, dtype=ref.dtype)
