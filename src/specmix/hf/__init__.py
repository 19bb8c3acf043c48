"""Hugging Face ``transformers`` integration (imports transformers).

- :class:`SpecMixConfig`, :class:`SpecMixModel`, :class:`SpecMixForCausalLM`: specmix's language
  model as a transformers model family (``model_type "specmix"``), registered with
  ``AutoConfig``, ``AutoModel`` and ``AutoModelForCausalLM`` when this package is imported.
- :class:`HFSpectralAttention` and the swap helpers (:mod:`specmix.hf_attention`, which does
  not import transformers): spectral mixing in the attention slot of GPT-2, Llama-family and
  BERT-family models, used by :func:`specmix.swap_attention`; :func:`save_swapped` /
  :func:`load_swapped` bring a swapped model back from a saved folder.
"""
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from ..hf_attention import (HF_ATTENTION_CLASSES, HFSpectralAttention, is_hf_attention,  # noqa: F401
                            looks_like_hf_attention, replace_hf_attention, token_mask)
from .cache import SpecMixCache
from .configuration import SpecMixConfig
from .modeling import SpecMixForCausalLM, SpecMixModel
from .swapped import load_swapped, save_swapped, spectral_module_names

__all__ = ["SpecMixConfig", "SpecMixModel", "SpecMixForCausalLM", "SpecMixCache", "HFSpectralAttention",
           "HF_ATTENTION_CLASSES", "token_mask", "save_swapped", "load_swapped", "spectral_module_names"]

AutoConfig.register(SpecMixConfig.model_type, SpecMixConfig, exist_ok=True)
AutoModel.register(SpecMixConfig, SpecMixModel, exist_ok=True)
AutoModelForCausalLM.register(SpecMixConfig, SpecMixForCausalLM, exist_ok=True)
