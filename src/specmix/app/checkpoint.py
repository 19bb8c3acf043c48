"""Checkpoints of ``specmix train``: what is written, how it is read back, and resume checks.

Each checkpoint is one folder ``out/checkpoints/step-NNNNNNNN/`` written as one unit by
:mod:`specmix.app.checkpoint_store`: ``config.json`` (model config, training config, and the
tokenizer or the task), ``model.safetensors`` (weights) and ``training.safetensors``
(optimizer, data-order and torch RNG states, step, metrics; tensors plus JSON, see
:mod:`specmix.app.state_codec`), and the ``manifest.json`` that makes it complete. Nothing
here unpickles. Reading picks the newest complete checkpoint; a damaged one is skipped with
a message naming what is wrong.

Folders written before this layout (``config.json``, ``model.safetensors`` and ``state.pt``
directly in ``out``, ``best/`` beside them) still load; their ``state.pt`` is read with
``torch.load(weights_only=True)``, and weights and state of different steps are refused.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
import torch

from ..data.corpus import CharTokenizer
from ..model import LMConfig, SpecMixLM
from .peer_lm import PeerConfig, PeerLM, is_peer_record
from .checkpoint_store import (MANIFEST, CheckpointError, Checkpoint, read_best, step_folders, verify,
                               write_checkpoint)
from .state_codec import StateFormatError, load_state_file, save_state_file

__all__ = ["CheckpointError", "config_record", "save_checkpoint", "find_checkpoint", "load_config",
           "load_model", "load_trained_model", "load_state", "check_same_run", "holds_checkpoint"]

LEGACY_FILES = ("config.json", "model.safetensors", "state.pt")


def config_record(model_cfg: LMConfig | PeerConfig, train_record: dict, data) -> dict:
    """What ``config.json`` holds: the model, the training config and the data's vocabulary."""
    record = {"model": model_cfg.to_dict(), "train": train_record}
    spec = getattr(data, "spec", None)
    if spec is not None:
        return dict(record, task=spec.to_dict())
    return dict(record, tokenizer=data.tokenizer.to_dict())


def save_checkpoint(out: str, record: dict, model, opt_state: dict, rng: np.random.Generator, step: int,
                    metrics: list) -> Checkpoint:
    """Write the checkpoint of ``step`` as one unit (``opt_state``: the optimizer's
    ``state_dict()``); returns it once committed."""
    from safetensors.torch import save_model
    state = {"step": step, "optimizer": opt_state, "data_rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(), "metrics": metrics}

    def write_config(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=2) + "\n")
    return write_checkpoint(out, step, {
        "config.json": write_config,
        "model.safetensors": lambda path: save_model(model, path, metadata={"step": str(step)}),
        "training.safetensors": lambda path: save_state_file(state, path)})


def holds_checkpoint(out: str) -> bool:
    """Whether ``out`` holds a run of ``specmix train`` (complete or not, either layout)."""
    return bool(step_folders(out)) or any(os.path.exists(os.path.join(out, n)) for n in LEGACY_FILES)


def _warn(message: str) -> None:
    print(f"specmix: warning: {message}", file=sys.stderr)


def _latest(out: str) -> Checkpoint:
    """The newest complete checkpoint; damaged or incomplete newer ones are skipped, loudly."""
    problems = []
    for _, path in reversed(step_folders(out)):
        try:
            found = verify(path)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if problems:
            _warn("; ".join(problems) + f"; using the previous complete checkpoint (step {found.step})")
        return found
    raise CheckpointError(f"no complete checkpoint in {out}: " + "; ".join(problems))


def find_checkpoint(out: str, which: str = "last") -> Checkpoint:
    """The verified checkpoint ``which`` ("last" or "best") of the run in ``out``; ``out`` may
    also be one checkpoint's folder. A legacy folder gives ``Checkpoint(out, -1)``
    (``out/best`` for "best", when it exists)."""
    if which not in ("last", "best"):
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    if not os.path.isdir(out):
        raise CheckpointError(f"no checkpoint in {out}: not a folder")
    if os.path.isfile(os.path.join(out, MANIFEST)):
        return verify(out)
    if step_folders(out):
        best = read_best(out) if which == "best" else None
        if best is None:
            return _latest(out)
        try:
            return verify(os.path.join(out, "checkpoints", f"step-{best['step']:08d}"))
        except CheckpointError as err:
            damaged = str(err)
        try:
            found = _latest(out)
        except CheckpointError as err:
            raise CheckpointError(f"{damaged}; {err}") from None
        _warn(f"{damaged}; using the last complete checkpoint (step {found.step}) instead of the best")
        return found
    legacy_best = os.path.join(out, "best")
    if which == "best" and os.path.isfile(os.path.join(legacy_best, "model.safetensors")):
        return Checkpoint(legacy_best, -1)
    if os.path.isfile(os.path.join(out, "config.json")):
        return Checkpoint(out, -1)
    raise CheckpointError(f"no checkpoint in {out}: it holds neither checkpoints/ nor config.json "
                          "written by specmix train")


def load_config(out: str, which: str = "last") -> dict:
    """The ``config.json`` record of the checkpoint ``which`` in ``out``."""
    return _read_config(find_checkpoint(out, which).path)


def _read_config(folder: str) -> dict:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint in {folder}: {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
        raise CheckpointError(f"{path} is not a specmix run config (no 'model' section)")
    return record


def _read_legacy_state(path: str) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:   # noqa: BLE001 - torch raises several kinds; all mean "not loadable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} cannot be loaded safely ({first[:160]})") from None


def _weights_step(path: str) -> int | None:
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        step = (f.metadata() or {}).get("step")
    return int(step) if step is not None else None


def load_state(out: str) -> dict:
    """The training state (``step``, ``optimizer``, ``data_rng``, ``torch_rng``, ``metrics``)
    of the last checkpoint in ``out``; never unpickles code."""
    found = find_checkpoint(out, "last")
    if found.step >= 0:
        try:
            state = load_state_file(os.path.join(found.path, "training.safetensors"))
        except StateFormatError as err:
            raise CheckpointError(str(err)) from None
    else:
        path = os.path.join(out, "state.pt")
        if not os.path.isfile(path):
            raise CheckpointError(f"no training state in {out}: {path} does not exist")
        state = _read_legacy_state(path)
        weights = _weights_step(os.path.join(out, "model.safetensors"))
        if weights is not None and weights != state.get("step"):
            raise CheckpointError(f"{out} is inconsistent: the weights are of step {weights}, the training "
                                  f"state of step {state.get('step')} (a crash between two writes); "
                                  "start again with --overwrite")
    missing = {"step", "optimizer", "data_rng", "torch_rng", "metrics"} - set(state)
    if missing:
        raise CheckpointError(f"the training state in {found.path} lacks {sorted(missing)}")
    return state


def load_model(out: str, device="cpu", context: int | None = None,
               which: str = "last") -> tuple[SpecMixLM, CharTokenizer | None]:
    """The model and tokenizer of the checkpoint ``which`` ("last" or "best") in ``out``
    (tokenizer None for a task run).

    ``context`` longer than the trained one rebuilds the model for longer inputs: allowed
    only when nothing in it is tied to the trained length (implicit filters or attention,
    no learned positions); a frequency filter has no taps beyond its ``max_len``.
    """
    found = find_checkpoint(out, which)
    record = _read_config(found.path)
    if is_peer_record(record["model"]):
        raise CheckpointError(f"{out} holds a {record['model']['family']} model of `specmix train-peer`; "
                              "this command reads specmix LMs only")
    cfg = LMConfig.from_dict(record["model"])
    if context is not None and context > cfg.context:
        _check_extensible(cfg, context)
        cfg = dataclasses.replace(cfg, context=context)
    model = _fill(SpecMixLM(cfg).to(device), found.path, device)
    tok = record.get("tokenizer")
    return model, CharTokenizer.from_dict(tok) if tok else None


def load_trained_model(out: str, device="cpu") -> SpecMixLM | PeerLM:
    """The last checkpoint's model in ``out`` as it was trained: a specmix LM or a peer."""
    found = find_checkpoint(out, "last")
    record = _read_config(found.path)["model"]
    if is_peer_record(record):
        return _fill(PeerLM(PeerConfig.from_dict(record)).to(device), found.path, device)
    return load_model(out, device)[0]


def _fill(model: torch.nn.Module, folder: str, device) -> torch.nn.Module:
    """``model`` with the weights of the checkpoint folder ``folder`` loaded into it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model as st_load
    weights = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(weights):
        raise CheckpointError(f"no checkpoint in {folder}: {weights} does not exist")
    try:
        st_load(model, weights, device=str(device))
    except (SafetensorError, RuntimeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{weights} does not load into the model of its config ({first[:160]})") from None
    return model


def _check_extensible(cfg: LMConfig, context: int) -> None:
    spectral = any(k.name.startswith("spectral") for k in cfg.mixer_kinds())
    if cfg.uses_positions():
        raise CheckpointError(f"context {context} > the trained {cfg.context}: this model has learned "
                              "position embeddings, which stop at the trained context")
    if spectral and cfg.filter == "frequency":
        raise CheckpointError(f"context {context} > the trained {cfg.context}: the frequency filter "
                              f"has taps for lags < max_len={cfg.context} only; train with "
                              "--filter implicit for a length-free model")


def check_same_run(record: dict, model_cfg: LMConfig | PeerConfig, train_cfg, same_fields: tuple[str, ...], out: str) -> None:
    """Refuse to resume from a checkpoint of another configuration, naming each difference.
    ``same_fields``: the training fields that must match (the schedule, data and batches)."""
    kind = PeerConfig if is_peer_record(record["model"]) else LMConfig
    if kind is not type(model_cfg):
        raise CheckpointError(f"the checkpoint in {out} is from another command (a "
                              f"{'specmix train-peer' if kind is PeerConfig else 'specmix train'} run)")
    saved_model = dataclasses.replace(kind.from_dict(record["model"]), vocab_size=model_cfg.vocab_size)
    diffs = [f"{k}: {getattr(saved_model, k)!r} in the checkpoint vs {getattr(model_cfg, k)!r} now"
             for k in (f.name for f in dataclasses.fields(kind))
             if getattr(saved_model, k) != getattr(model_cfg, k)]
    saved_train = type(train_cfg).from_dict(record["train"])
    diffs += [f"{k}: {getattr(saved_train, k)!r} in the checkpoint vs {getattr(train_cfg, k)!r} now"
              for k in same_fields if getattr(saved_train, k) != getattr(train_cfg, k)]
    if diffs:
        raise CheckpointError(f"the checkpoint in {out} is from another config ({'; '.join(diffs)})")
