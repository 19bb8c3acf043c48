"""Checkpoints of ``specmix train``: what is written, how it is read back, and resume checks.

A checkpoint folder holds ``config.json`` (model config, training config, and the tokenizer
or the task), ``model.safetensors`` and ``state.pt`` (optimizer, data-order and torch RNG
states, step, metrics). Every write is atomic (temp file + rename).
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import torch

from ..data.corpus import CharTokenizer
from ..io import atomic_path, atomic_write_text
from ..model import LMConfig, SpecMixLM
from ..validation import UsageError

__all__ = ["CheckpointError", "config_record", "write_config", "save_checkpoint", "load_config",
           "load_model", "load_state", "check_same_run"]


class CheckpointError(UsageError):
    """A missing or mismatched checkpoint: printed as a one-line error."""


def config_record(model_cfg: LMConfig, train_record: dict, data) -> dict:
    """What ``config.json`` holds: the model, the training config and the data's vocabulary."""
    record = {"model": model_cfg.to_dict(), "train": train_record}
    spec = getattr(data, "spec", None)
    if spec is not None:
        return dict(record, task=spec.to_dict())
    return dict(record, tokenizer=data.tokenizer.to_dict())


def write_config(out: str, record: dict) -> None:
    atomic_write_text(os.path.join(out, "config.json"), json.dumps(record, indent=2) + "\n")


def save_weights(out: str, model: torch.nn.Module, step: int) -> None:
    from safetensors.torch import save_model
    with atomic_path(os.path.join(out, "model.safetensors")) as tmp:
        save_model(model, tmp, metadata={"step": str(step)})


def save_checkpoint(out: str, model, opt, rng: np.random.Generator, step: int, metrics: list) -> None:
    save_weights(out, model, step)
    state = {"step": step, "optimizer": opt.state_dict(), "data_rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(), "metrics": metrics}
    with atomic_path(os.path.join(out, "state.pt")) as tmp:
        torch.save(state, tmp)


def load_config(out: str) -> dict:
    path = os.path.join(out, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint in {out}: {path} does not exist")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_state(out: str) -> dict:
    path = os.path.join(out, "state.pt")
    if not os.path.isfile(path):
        raise CheckpointError(f"no training state in {out}: {path} does not exist")
    return torch.load(path, weights_only=False)


def load_model(out: str, device="cpu", context: int | None = None) -> tuple[SpecMixLM, CharTokenizer | None]:
    """The model and tokenizer of the checkpoint in ``out`` (tokenizer None for a task run).

    ``context`` longer than the trained one rebuilds the model for longer inputs: allowed
    only when nothing in it is tied to the trained length (implicit filters or attention,
    no learned positions); a frequency filter has no taps beyond its ``max_len``.
    """
    from safetensors.torch import load_model as st_load
    record = load_config(out)
    cfg = LMConfig.from_dict(record["model"])
    if context is not None and context > cfg.context:
        _check_extensible(cfg, context)
        cfg = dataclasses.replace(cfg, context=context)
    weights = os.path.join(out, "model.safetensors")
    if not os.path.isfile(weights):
        raise CheckpointError(f"no checkpoint in {out}: {weights} does not exist")
    model = SpecMixLM(cfg).to(device)
    st_load(model, weights, device=str(device))
    tok = record.get("tokenizer")
    return model, CharTokenizer.from_dict(tok) if tok else None


def _check_extensible(cfg: LMConfig, context: int) -> None:
    spectral = any(k.name.startswith("spectral") for k in cfg.mixer_kinds())
    if cfg.uses_positions():
        raise CheckpointError(f"context {context} > the trained {cfg.context}: this model has learned "
                              "position embeddings, which stop at the trained context")
    if spectral and cfg.filter == "frequency":
        raise CheckpointError(f"context {context} > the trained {cfg.context}: the frequency filter "
                              f"has taps for lags < max_len={cfg.context} only; train with "
                              "--filter implicit for a length-free model")


def check_same_run(record: dict, model_cfg: LMConfig, train_cfg, same_fields: tuple[str, ...], out: str) -> None:
    """Refuse to resume from a checkpoint of another configuration, naming each difference.
    ``same_fields``: the training fields that must match (the schedule, data and batches)."""
    saved_model = dataclasses.replace(LMConfig.from_dict(record["model"]), vocab_size=model_cfg.vocab_size)
    diffs = [f"{k}: {getattr(saved_model, k)!r} in the checkpoint vs {getattr(model_cfg, k)!r} now"
             for k in (f.name for f in dataclasses.fields(LMConfig))
             if getattr(saved_model, k) != getattr(model_cfg, k)]
    saved_train = type(train_cfg).from_dict(record["train"])
    diffs += [f"{k}: {getattr(saved_train, k)!r} in the checkpoint vs {getattr(train_cfg, k)!r} now"
              for k in same_fields if getattr(saved_train, k) != getattr(train_cfg, k)]
    if diffs:
        raise CheckpointError(f"the checkpoint in {out} is from another config ({'; '.join(diffs)})")
