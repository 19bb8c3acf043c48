"""``MixerCacheLayer``: one layer of a Hugging Face cache that holds a specmix mixer's decoding
state, used alike by :class:`~specmix.hf.SpecMixCache` (every layer of a SpecMixForCausalLM)
and by the swapped layers of a model after :func:`specmix.swap_attention` (their entries in
HF's own ``DynamicCache``).

The layer counts the tokens it has seen (HF reads position ids and mask sizes from that) and
holds the mixer's state (``SpectralState``: the folded convolution cache and the short conv's
pending sums; ``AttentionState``: the KV cache), no keys or values of its own. Whatever HF
does to its layers it does to the state: ``reorder_cache`` (beam search),
``batch_repeat_interleave``, ``batch_select_indices``. ``crop`` (assisted decoding) is refused,
since a spectral state folds the past and cannot be rewound; offloading leaves it in place.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

__all__ = ["MixerCacheLayer"]


class MixerCacheLayer(DynamicLayer):
    """A cache layer with a mixer's ``state`` (anything with ``reorder(rows)``), the number of
    tokens ``seen`` and the ``batch`` size."""

    is_croppable = False

    def __init__(self, state=None, seen: int = 0, batch: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.state, self.seen, self.batch = state, seen, batch   # state None: the prompt ran with gradients
        self.is_initialized = True

    def update(self, *args, **kwargs):
        raise TypeError("MixerCacheLayer holds a mixer's decoding state, not keys and values")

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def advance(self, tokens: int, state, batch: int) -> None:
        """``tokens`` more were seen by ``batch`` rows; ``state`` holds them."""
        self.seen, self.state, self.batch = self.seen + tokens, state, batch

    def _keep(self, rows: torch.Tensor) -> None:
        if self.state is not None:
            self.state.reorder(rows)
        self.batch = int(rows.shape[0])

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._keep(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._keep(torch.arange(self.batch).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keep(torch.arange(self.batch)[indices])

    def offload(self) -> None:
        """The state stays where it is (it is small beside a KV cache)."""

    def prefetch(self) -> None:
        """Nothing was offloaded."""

    def reset(self) -> None:
        self.state, self.seen = None, 0

    def crop(self, tokens_to_remove: int) -> None:
        raise ValueError("a specmix layer's cache cannot be cropped (a spectral state folds the past): "
                         "assisted, prompt-lookup and contrastive decoding are not supported; use greedy, "
                         "sampling or beam search")
