"""``SpectralCacheLayer``: one layer of Hugging Face's ``DynamicCache`` that holds a swapped
layer's spectral decoding state.

A model after :func:`specmix.swap_attention` generates with HF's own cache, whose layers tell
``generate`` how many tokens were seen (position ids, mask sizes). A swapped layer's entry is
this layer: it counts its tokens and holds the :class:`~specmix.mixers.SpectralState` of the
mixer, no keys or values. Whatever HF does to its layers it does to the state:
``reorder_cache`` (beam search), ``batch_repeat_interleave``, ``batch_select_indices``;
``crop`` (assisted decoding) is refused, since the state folds the past and cannot be rewound.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

__all__ = ["SpectralCacheLayer"]


class SpectralCacheLayer(DynamicLayer):
    """A cache layer with the spectral ``state`` and the number of tokens ``seen``."""

    is_croppable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state = None          # SpectralState; None while the prompt ran with gradients
        self.seen = 0
        self.is_initialized = True

    def update(self, *args, **kwargs):
        raise TypeError("SpectralCacheLayer holds a spectral state, not keys and values")

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def advance(self, tokens: int, state) -> None:
        """``tokens`` more were seen; ``state`` (None after a prompt run with gradients) holds them."""
        self.seen += tokens
        self.state = state

    def _rows(self, rows: torch.Tensor) -> None:
        if self.state is not None:
            self.state.reorder(rows)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._rows(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.state is not None:
            batch = self.state.conv.inputs.shape[0]
            self._rows(torch.arange(batch, device=self.state.conv.inputs.device).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.state is not None:
            batch = self.state.conv.inputs.shape[0]
            self._rows(torch.arange(batch, device=self.state.conv.inputs.device)[indices])

    def reset(self) -> None:
        self.state, self.seen = None, 0

    def crop(self, tokens_to_remove: int) -> None:
        raise ValueError("a swapped spectral layer's cache cannot be cropped (its state folds the past): "
                         "assisted, prompt-lookup and contrastive decoding are not supported; use greedy, "
                         "sampling or beam search")
