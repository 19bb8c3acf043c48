"""``SpecMixCache``: every layer's decoding state of a :class:`~specmix.hf.SpecMixForCausalLM`
in one object that Hugging Face's ``generate`` carries from step to step.

Each layer holds its mixer's own state (``SpectralState``: the folded convolution cache and
the short conv's pending sums; ``AttentionState``: the KV cache), built by the mixer's
``prefill`` and advanced by its ``step``. ``reorder_cache`` reorders every state tensor along
the batch (beam search); what the cache cannot follow (cropping, for assisted decoding) is
refused by name.
"""
from __future__ import annotations

import torch

__all__ = ["SpecMixCache"]


class SpecMixCache:
    """The states of all layers after ``seen`` tokens, for up to ``max_len`` tokens in all."""

    is_compileable = False

    def __init__(self, states: list, seen: int, max_len: int):
        self.states, self.seen, self.max_len = states, seen, max_len

    @property
    def is_linear(self) -> list[bool]:
        """One flag per layer for ``generate``: the states are not key/value lists to slice."""
        return [True] * len(self.states)

    def __len__(self) -> int:
        return len(self.states)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the batch rows ``beam_idx`` in that order, in every layer's state (beam search)."""
        for state in self.states:
            state.reorder(beam_idx.to(_device_of(state)))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.reorder_cache(indices)

    def crop(self, max_length: int) -> None:
        raise NotImplementedError("SpecMixCache cannot be cropped (its spectral states fold the past); "
                                  "assisted and prompt-lookup decoding are not supported")


def _device_of(state) -> torch.device:
    tensor = getattr(state, "keys", None)
    if tensor is None:
        tensor = state.conv.inputs
    return tensor.device
