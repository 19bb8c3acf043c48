"""``SpectralCacheLayer``: one layer of Hugging Face's ``DynamicCache`` that holds a swapped
layer's spectral decoding state.

A model after :func:`specmix.swap_attention` generates with HF's own cache: HF counts tokens
through its layers (position ids, mask sizes), so the layer keeps one placeholder number per
token as its keys and values, and beside them the :class:`~specmix.mixers.SpectralState` of
the mixer. Whatever HF does to its layers it now does to the state too: ``reorder_cache``
(beam search), ``batch_repeat_interleave`` and ``batch_select_indices``; ``crop`` (assisted
decoding) is refused, since the state folds the past and cannot be rewound.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

__all__ = ["SpectralCacheLayer"]


class SpectralCacheLayer(DynamicLayer):
    """HF's dynamic layer (placeholder keys / values) plus the spectral ``state``."""

    is_croppable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state = None          # SpectralState; None while the prompt ran with gradients

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        if self.state is not None:
            self.state.reorder(beam_idx.to(self.keys.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        rows = torch.arange(self.keys.shape[0], device=self.keys.device).repeat_interleave(repeats)
        super().batch_repeat_interleave(repeats)
        if self.state is not None:
            self.state.reorder(rows)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        rows = torch.arange(self.keys.shape[0], device=self.keys.device)[indices]
        super().batch_select_indices(indices)
        if self.state is not None:
            self.state.reorder(rows)

    def crop(self, tokens_to_remove: int) -> None:
        raise ValueError("a swapped spectral layer's cache cannot be cropped (its state folds the past): "
                         "assisted, prompt-lookup and contrastive decoding are not supported; use greedy, "
                         "sampling or beam search")
