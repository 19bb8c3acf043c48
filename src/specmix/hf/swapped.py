"""Swapped Hugging Face models that survive ``save_pretrained`` / ``from_pretrained``.

:func:`specmix.swap_attention` records what it did in the model's config
(``config.specmix_swap``: ``max_len``, ``causal``, ``filter``, ``gated``, ``head_dim``,
``names``). :func:`swapped_class` turns a transformers class into one whose ``__init__``
swaps the same way, so HF's own ``from_pretrained`` (prefixes, dtype, device) finds the
spectral weights where the checkpoint has them. :func:`save_swapped` writes, beside HF's
files, the ``modeling_specmix_swap.py`` shim and the ``auto_map`` that let
``AutoModel*.from_pretrained(dir, trust_remote_code=True)`` rebuild the swapped model;
:func:`load_swapped` is the same in one call without remote code.
"""
from __future__ import annotations

import json
import os

import transformers
from transformers import AutoConfig

__all__ = ["swapped_class", "save_swapped", "load_swapped", "spectral_module_names", "SWAP_KEY"]

SWAP_KEY = "specmix_swap"
_AUTO = {"AutoModel": "model", "AutoModelForCausalLM": "causal", "AutoModelForMaskedLM": "masked"}


def _swap_record(config) -> dict:
    record = getattr(config, SWAP_KEY, None)
    if not isinstance(record, dict):
        raise ValueError(f"{type(config).__name__} has no {SWAP_KEY} record: this checkpoint was not saved "
                         "after specmix.swap_attention")
    return record


def swapped_class(base: type) -> type:
    """A subclass of the transformers model class ``base`` that applies the swap recorded in
    its config on construction (``from_pretrained`` then loads the spectral weights)."""
    from ..swap import swap_attention

    def __init__(self, config, *args, **kwargs):
        base.__init__(self, config, *args, **kwargs)
        record = _swap_record(config)
        names = record.get("names")
        if names is not None and self.base_model_prefix and not hasattr(self, self.base_model_prefix):
            prefix = self.base_model_prefix + "."      # a base model loaded from a task model's names
            names = [n[len(prefix):] if n.startswith(prefix) else n for n in names]
        swap_attention(self, max_len=record["max_len"], causal=record.get("causal"), filter=record["filter"],
                       gated=record["gated"], head_dim=record["head_dim"], names=names)

    return type(f"Swapped{base.__name__}", (base,), {"__init__": __init__, "__module__": __name__})


def _shim(config) -> str:
    """The remote-code file: one swapped class per Auto class, from the installed specmix."""
    task = config.architectures[0]
    base = _base_model_class(config)
    lines = ["from transformers import " + ", ".join(sorted({task, base})),
             "from specmix.hf.swapped import swapped_class", "",
             f"SwappedForTask = swapped_class({task})", f"SwappedBase = swapped_class({base})", ""]
    return "\n".join(lines)


def _base_model_class(config) -> str:
    mapping = transformers.models.auto.modeling_auto.MODEL_MAPPING_NAMES
    return mapping[config.model_type]


def save_swapped(model, directory: str, **kwargs) -> None:
    """``model.save_pretrained(directory)`` plus what opens it swapped again: the shim and the
    ``auto_map`` (``AutoModel`` -> the base model, the task's Auto class -> the saved class)."""
    _swap_record(model.config)
    model.save_pretrained(directory, **kwargs)
    with open(os.path.join(directory, "modeling_specmix_swap.py"), "w", encoding="utf-8") as f:
        f.write(_shim(model.config))
    path = os.path.join(directory, "config.json")
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    task_auto = _task_auto_class(model.config)
    record["auto_map"] = {"AutoModel": "modeling_specmix_swap.SwappedBase",
                          task_auto: "modeling_specmix_swap.SwappedForTask"}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _task_auto_class(config) -> str:
    task = config.architectures[0]
    names = transformers.models.auto.modeling_auto
    for auto, mapping in (("AutoModelForCausalLM", names.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
                          ("AutoModelForMaskedLM", names.MODEL_FOR_MASKED_LM_MAPPING_NAMES)):
        if mapping.get(config.model_type) == task:
            return auto
    return "AutoModel"


def load_swapped(directory: str, model_class: type | None = None, **kwargs):
    """The swapped model saved in ``directory`` (by ``save_pretrained`` or :func:`save_swapped`):
    its class (``config.architectures[0]``, or ``model_class``) rebuilt with the recorded swap,
    then HF's ``from_pretrained`` loads every weight."""
    config = AutoConfig.from_pretrained(directory)
    _swap_record(config)
    base = model_class or getattr(transformers, config.architectures[0])
    return swapped_class(base).from_pretrained(directory, config=config, **kwargs)


def spectral_module_names(model) -> list[str]:
    """The full names of the swapped attention modules of ``model``: for PEFT's
    ``LoraConfig(modules_to_save=...)``, so that the new (randomly initialised) spectral
    modules train in full while LoRA adapts the pretrained layers."""
    from ..hf_attention import HFSpectralAttention
    return [name for name, module in model.named_modules() if isinstance(module, HFSpectralAttention)]
