"""``SpecMixCache``: every layer's decoding state of a :class:`~specmix.hf.SpecMixForCausalLM`
in one Hugging Face ``Cache`` that ``generate`` carries from step to step.

Its layers are :class:`~specmix.hf.cache_layer.MixerCacheLayer` (the same layer the swapped
modules of :func:`specmix.swap_attention` keep in HF's ``DynamicCache``): each holds its
mixer's state, built by the mixer's ``prefill`` and advanced by its ``step``, and follows
HF's reordering (beam search); cropping is refused by name.
"""
from __future__ import annotations

from transformers.cache_utils import Cache

from .cache_layer import MixerCacheLayer

__all__ = ["SpecMixCache"]


class SpecMixCache(Cache):
    """The states of all layers after ``seen`` tokens, for up to ``max_len`` tokens in all."""

    def __init__(self, states: list, seen: int, max_len: int, batch: int):
        super().__init__(layers=[MixerCacheLayer(state, seen, batch) for state in states])
        self.max_len = max_len

    @property
    def states(self) -> list:
        return [layer.state for layer in self.layers]

    @property
    def seen(self) -> int:
        return self.layers[0].seen

    def advance(self, tokens: int = 1) -> None:
        """Every layer has taken ``tokens`` more (their states advanced in place)."""
        for layer in self.layers:
            layer.seen += tokens

    def crop(self, max_length: int) -> None:
        raise ValueError("SpecMixCache cannot be cropped (its spectral states fold the past); "
                         "assisted and prompt-lookup decoding are not supported")
