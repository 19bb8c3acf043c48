"""A ``specmix train`` folder as a Hugging Face folder: after each checkpoint the run writes, at
its top level, what ``AutoModelForCausalLM.from_pretrained(out)``, ``AutoTokenizer`` and
``pipeline("text-generation")`` read:

- ``config.json``: the run's record (``model``, ``train``, ``tokenizer``, as before) merged with
  the ``SpecMixConfig`` fields, ``model_type``, ``architectures`` and ``auto_map``;
- ``model.safetensors``: the best checkpoint's weights (the last one's before any
  evaluation), under ``SpecMixForCausalLM``'s names;
- ``tokenizer.json`` / ``tokenizer_config.json``: the character tokenizer (corpus runs), and
  the ``configuration_specmix.py`` / ``modeling_specmix.py`` shims for ``trust_remote_code``.

The checkpoints under ``checkpoints/`` stay the record; these files are copies, each replaced
atomically.
"""
from __future__ import annotations

import json
import os
import tempfile

from ..io import atomic_path, atomic_write_text
from ..model import LMConfig
from .configuration import SpecMixConfig
from .modeling import AUTO_MAP, REMOTE_FILES

__all__ = ["write_hf_files", "write_tokenizer", "char_tokenizer"]


def char_tokenizer(chars: str):
    """specmix's character tokenizer as a ``PreTrainedTokenizerFast`` (one token per character,
    decoded by concatenation)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False)


def write_hf_files(out: str, record: dict, checkpoint: str) -> None:
    """The top-level HF files of the run in ``out`` from the (verified) checkpoint folder
    ``checkpoint``; ``record`` is the run's config.json record."""
    from safetensors.torch import load_file, save_file
    lm = LMConfig.from_dict(record["model"])
    hf = SpecMixConfig.from_lm_config(lm, architectures=["SpecMixForCausalLM"]).to_dict()
    atomic_write_text(os.path.join(out, "config.json"),
                      json.dumps(dict(record, **hf, auto_map=AUTO_MAP), indent=2) + "\n")
    weights = {f"model.{k}": v for k, v in load_file(os.path.join(checkpoint, "model.safetensors")).items()}
    if lm.tie_embeddings:                 # one copy, under the name HF ties the head to
        shared = weights.pop("model.head.weight", None)
        weights.setdefault("model.tok_emb.weight", shared)
    with atomic_path(os.path.join(out, "model.safetensors")) as tmp:
        save_file(weights, tmp, metadata={"format": "pt"})
    for name, text in REMOTE_FILES.items():
        atomic_write_text(os.path.join(out, name), text)
    if record.get("tokenizer"):
        write_tokenizer(out, record["tokenizer"]["chars"])


def write_tokenizer(out: str, chars: str) -> None:
    with tempfile.TemporaryDirectory(dir=out, prefix=".tokenizer-") as tmp:
        char_tokenizer(chars).save_pretrained(tmp)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(out, name))
