"""``SpecMixModel`` and ``SpecMixForCausalLM``: :class:`specmix.model.SpecMixLM` as Hugging Face
models, so that ``save_pretrained`` / ``from_pretrained``, the Auto classes, ``generate``
(greedy, sampling, beam search, left-padded batches) and ``Trainer`` work on it.

Both wrap one ``SpecMixLM`` (``self.model``): the same blocks, no second implementation.
``generate`` runs the blocks' ``prefill`` on the prompt and their ``step`` per new token,
with every layer's state in one :class:`~specmix.hf.cache.SpecMixCache`.
Legend: B batch, N tokens of this call, D d_model, V vocabulary.
"""
from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast

from ..model import SpecMixLM
from .cache import SpecMixCache
from .configuration import SpecMixConfig

__all__ = ["SpecMixPreTrainedModel", "SpecMixModel", "SpecMixForCausalLM"]

# what save_pretrained writes beside the weights, so that a process that never imported
# specmix opens the folder with trust_remote_code=True (the installed specmix does the work)
REMOTE_FILES = {
    "configuration_specmix.py": "from specmix.hf.configuration import SpecMixConfig  # noqa: F401\n",
    "modeling_specmix.py": "from specmix.hf.modeling import SpecMixForCausalLM, SpecMixModel  # noqa: F401\n",
}
AUTO_MAP = {"AutoConfig": "configuration_specmix.SpecMixConfig",
            "AutoModel": "modeling_specmix.SpecMixModel",
            "AutoModelForCausalLM": "modeling_specmix.SpecMixForCausalLM"}


class SpecMixPreTrainedModel(PreTrainedModel):
    config_class = SpecMixConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]
    _is_stateful = True                     # folded spectral states cannot be rewound
    supports_gradient_checkpointing = False
    _tied_weights_keys = {"model.head.weight": "model.tok_emb.weight"}    # when tie_embeddings

    def __init__(self, config: SpecMixConfig):
        super().__init__(config)
        self.model = SpecMixLM(config.to_lm_config())
        self.post_init()

    def _init_weights(self, module) -> None:
        """SpecMixLM initialises its own parameters (nanoGPT's init; filters their own)."""

    def get_input_embeddings(self):
        return self.model.tok_emb

    def set_input_embeddings(self, value) -> None:
        self.model.tok_emb = value

    def save_pretrained(self, save_directory, *args, **kwargs):
        """HF's ``save_pretrained``, plus the two small files and the ``auto_map`` entry with
        which ``AutoModel*.from_pretrained(dir, trust_remote_code=True)`` finds these classes
        without ``import specmix.hf``."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        for name, text in REMOTE_FILES.items():
            with open(os.path.join(save_directory, name), "w", encoding="utf-8") as f:
                f.write(text)
        path = os.path.join(save_directory, "config.json")
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        record["auto_map"] = AUTO_MAP
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return result

    # ------------------------------------------------------------------ the blocks
    def _token_mask(self, attention_mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """specmix's ``(B, n)`` bool mask of this call's tokens from HF's 2D mask (1 = real)."""
        if attention_mask is None:
            return None
        if attention_mask.dim() != 2:
            raise ValueError(f"{type(self).__name__}: attention_mask must be 2D (B, N) with 1 for real "
                             f"tokens, got shape {tuple(attention_mask.shape)}")
        mask = attention_mask[:, -n:].bool()
        if bool(mask.all()):
            return None
        if self.model.pos_emb is not None:
            raise ValueError(f"{type(self).__name__}: padded batches need a model without learned "
                             "positions (pos_emb 'none' or 'rope', or spectral layers only)")
        return mask

    def _hidden(self, input_ids: torch.Tensor, attention_mask, cache: SpecMixCache | None, use_cache: bool,
                decode_len: int | None = None):
        """``(normalised hidden states (B, N, D), cache)``: a plain forward, a prefill that
        builds the cache (for ``decode_len`` tokens in all, at least the context), or steps
        that continue it."""
        lm = self.model
        mask = self._token_mask(attention_mask, input_ids.shape[1])
        if cache is not None:
            return lm.norm(self._steps(input_ids, mask, cache)), cache
        lm._check_idx(input_ids)
        x = lm.embed(input_ids)                                           # (B, N, D)
        if not use_cache:
            for block in lm.blocks:
                x = block(x, mask)
            return lm.norm(x), None
        max_len = max(lm.config.context, decode_len or 0)
        states = []
        for block in lm.blocks:
            x, state = block.prefill(x, max_len, mask)
            states.append(state)
        return lm.norm(x), SpecMixCache(states, input_ids.shape[1], max_len, input_ids.shape[0])

    def _steps(self, input_ids: torch.Tensor, mask, cache: SpecMixCache) -> torch.Tensor:
        lm, out = self.model, []
        for i in range(input_ids.shape[1]):
            if cache.seen >= cache.max_len:
                raise ValueError(f"{type(self).__name__}: cached generation reached the length its cache "
                                 f"was built for ({cache.max_len} tokens); generate with generate(), which "
                                 "sizes it, or fewer tokens")
            x_t = lm.embed(input_ids[:, i: i + 1], offset=cache.seen)[:, 0]   # (B, D)
            for block, state in zip(lm.blocks, cache.states):
                x_t = block.step(x_t, state, None if mask is None else mask[:, i])
            cache.advance(1)
            out.append(x_t)
        return torch.stack(out, dim=1)                                    # (B, N, D)


class SpecMixModel(SpecMixPreTrainedModel):
    """The hidden states of a SpecMixLM (after the final norm), for ``AutoModel``."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_dict: bool | None = None) -> BaseModelOutput:
        hidden, _ = self._hidden(input_ids, attention_mask, None, False)
        return BaseModelOutput(last_hidden_state=hidden)


class SpecMixForCausalLM(SpecMixPreTrainedModel, GenerationMixin):
    """A SpecMixLM as a Hugging Face causal LM.

    ``forward(input_ids, attention_mask=None, labels=None, cache=None, use_cache=None)``:
    ``labels`` are shifted inside (HF's convention; -100 is ignored) and the loss is their
    mean, or their sum over ``num_items_in_batch`` when ``Trainer`` passes it (gradient
    accumulation). ``use_cache=True`` (what ``generate`` passes) returns a
    :class:`SpecMixCache`; a plain call builds none.

    Example:
        >>> model = SpecMixForCausalLM(SpecMixConfig(vocab_size=11, d_model=32, n_layers=2))
        >>> model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False).shape
        torch.Size([1, 7])
    """

    def get_output_embeddings(self):
        return self.model.head

    def set_output_embeddings(self, value) -> None:
        self.model.head = value

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False                       # forward builds its own SpecMixCache

    def generate(self, *args, **kwargs):
        """HF's ``generate``; what the SpecMixCache cannot follow is refused by name before any
        token: HF's other cache implementations (they hold keys and values, not these states)
        and decoding that crops the cache (assisted, prompt lookup). Generating past the
        context continues with a length-free model (implicit filter, no learned positions: the
        cache is sized for the whole output) and is refused up front otherwise."""
        config = kwargs.get("generation_config") or self.generation_config
        kwargs["decode_len"] = self._decode_len(args, kwargs, config)
        implementation = kwargs.get("cache_implementation", getattr(config, "cache_implementation", None))
        if implementation not in (None, "dynamic"):
            raise ValueError(f"{type(self).__name__}: cache_implementation={implementation!r} is not "
                             "supported; generate with the default cache")
        for name in ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit"):
            if kwargs.get(name, getattr(config, name, None)) is not None:
                raise ValueError(f"{type(self).__name__}: {name} (assisted decoding) is not supported: "
                                 "it crops the cache, and spectral states fold the past")
        return super().generate(*args, **kwargs)

    def _decode_len(self, args, kwargs, config) -> int:
        """Prompt plus new tokens of a ``generate`` call; checks that the model reaches it."""
        ids = args[0] if args else kwargs.get("input_ids", kwargs.get("inputs"))
        prompt = ids.shape[-1] if isinstance(ids, torch.Tensor) else 0
        new = kwargs.get("max_new_tokens", getattr(config, "max_new_tokens", None))
        total = prompt + new if new is not None else kwargs.get("max_length", getattr(config, "max_length", 0))
        lm = self.model.config
        spectral = any(k.name.startswith("spectral") for k in lm.mixer_kinds())
        length_free = not lm.uses_positions() and (lm.filter == "implicit" or not spectral)
        if total > lm.context:
            cached = kwargs.get("use_cache", getattr(config, "use_cache", None)) is not False   # HF's default: on
            if not length_free or not cached:
                raise ValueError(f"{type(self).__name__}: {total} tokens (prompt and new) exceed the context "
                                 f"{lm.context}: a model with a frequency filter or learned positions stops "
                                 "there, and so does generation without a cache; generate fewer tokens, "
                                 "or use filter='implicit' with the cache")
        return total

    def prepare_inputs_for_generation(self, input_ids, cache=None, attention_mask=None, use_cache=None,
                                      decode_len=None, **kwargs):
        """The new tokens only, once a cache exists."""
        if cache is not None:
            input_ids = input_ids[:, cache.seen:]
        return {"input_ids": input_ids, "cache": cache, "attention_mask": attention_mask, "use_cache": use_cache,
                "logits_to_keep": kwargs.get("logits_to_keep", 0), "decode_len": decode_len}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, cache: SpecMixCache | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0, return_dict: bool | None = None,
                num_items_in_batch: int | torch.Tensor | None = None,
                decode_len: int | None = None) -> CausalLMOutputWithPast:
        hidden, cache = self._hidden(input_ids, attention_mask, cache, bool(use_cache), decode_len)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.model.logits(hidden)                                # (B, N, V)
        loss = None
        if labels is not None:
            loss = _shifted_loss(logits, labels, num_items_in_batch)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache)


def _shifted_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch) -> torch.Tensor:
    """Next-token cross-entropy (label t+1 for logits t; -100 ignored): the mean, or the sum
    over ``num_items_in_batch``."""
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()          # (B (N-1), V)
    target = labels[:, 1:].reshape(-1).to(logits.device)                 # (B (N-1),)
    if num_items_in_batch is None:
        return F.cross_entropy(flat, target, ignore_index=-100)
    total = F.cross_entropy(flat, target, ignore_index=-100, reduction="sum")
    return total / torch.as_tensor(num_items_in_batch, device=total.device)
