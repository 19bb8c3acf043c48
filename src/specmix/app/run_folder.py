"""The output folder of ``specmix train``: checked before anything is written, owned by one
run, and written only with finite weights.

- :func:`check_out_folder` refuses, before any write, a folder that is a file, that another
  run owns, or that already holds a run when neither ``--resume`` nor ``--overwrite`` is given.
- :class:`RunFolder` (rank 0) commits each checkpoint as one unit
  (:mod:`specmix.app.checkpoint_store`), then points ``best.json`` at the lowest val loss,
  removes old checkpoints, and rewrites the reading copies ``config.json``,
  ``metrics.jsonl`` and ``loss.png`` in ``out``.
- :class:`Diverged` is raised instead of saving non-finite weights: the last checkpoint on
  disk stays the last finite one.
"""
from __future__ import annotations

import json
import math
import os
import shutil

import torch

from ..io import atomic_write_text
from ..validation import Diverged, UsageError
from . import checkpoint_store as store
from .checkpoint import LEGACY_FILES, find_checkpoint, holds_checkpoint, save_checkpoint
from .checkpoint_store import ROOT, prune, read_best, step_folders, write_best
from .plots import optional_plot
from .run_lock import FolderLocked, lock_holder

__all__ = ["Diverged", "check_out_folder", "clear_run", "RunFolder", "KEEP_LAST"]

KEEP_LAST = 2      # complete checkpoints kept besides the best: a damaged newest one has a fallback
_READING_COPIES = ("config.json", "metrics.jsonl", "loss.png")


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_out_folder(out: str, resume: bool, overwrite: bool) -> None:
    """Refuse (one line, nothing written) what would lose or mix up a run in ``out``."""
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other: continue the run, or replace it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file; it must be a folder (or not exist yet)")
    if not os.access(_nearest_existing(out), os.W_OK):
        raise UsageError(f"--out {out}: cannot write there (permission denied or a read-only filesystem)")
    if not os.path.isdir(out):
        return
    holder = lock_holder(out)
    if holder is not None:
        raise FolderLocked(f"--out {out} is in use by {holder}; choose another folder or wait for that run to end")
    if not resume and not overwrite and holds_checkpoint(out):
        raise UsageError(f"--out {out} already holds a training run; pass --resume to continue it "
                         "or --overwrite to replace it")


def clear_run(out: str) -> None:
    """What ``--overwrite`` removes: only the files ``specmix train`` writes (call under the lock)."""
    _remove(out, (ROOT, "best") + LEGACY_FILES + _READING_COPIES)


def _remove(out: str, names: tuple[str, ...]) -> None:
    for name in names:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)


def _all_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class RunFolder:
    """Rank 0's writer of one run's checkpoints in ``out``; ``record`` is its config.json."""

    def __init__(self, out: str, record: dict, saved_step: int | None):
        """``saved_step``: the step of the verified checkpoint a resumed run started from (a
        damaged newer folder is written again when the run reaches its step)."""
        self.out, self.record, self.saved_step = out, record, saved_step

    def last_saved(self) -> str:
        """Where the last finite weights are, for messages."""
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"the last checkpoint (step {self.saved_step}) in {self.out} holds finite weights"

    def save(self, model, opt_state: dict, rng, step: int, metrics: list[dict]) -> None:
        """Commit the checkpoint of ``step`` (once per step), then publish it; ``opt_state`` is
        the optimizer's ``state_dict()``."""
        if step == self.saved_step:
            return
        if not _all_finite(model):
            raise Diverged(f"the weights are not finite at step {step}: the run diverged (the learning "
                           f"rate is the likely cause); nothing was saved, {self.last_saved()}")
        save_checkpoint(self.out, self.record, model, opt_state, rng, step, metrics)
        self.saved_step = step
        self.publish(metrics)

    def publish(self, metrics: list[dict]) -> None:
        """Point best.json at the committed checkpoint of the lowest val loss, remove old
        checkpoints, rewrite the reading copies. Idempotent: a resumed run calls it first, to
        finish what a crash interrupted."""
        committed = {step for step, _ in step_folders(self.out)}
        scored = [m for m in metrics if m["step"] in committed]
        best_row = min(scored, key=lambda m: m["val_loss"]) if scored else None
        best = read_best(self.out)
        if best_row is not None and (best is None or best["step"] != best_row["step"]):
            write_best(self.out, best_row["step"], best_row["val_loss"])
            best = {"step": best_row["step"]}
        prune(self.out, KEEP_LAST, {best["step"]} if best else set())
        store._fault_point("write reading copies")
        atomic_write_text(os.path.join(self.out, "metrics.jsonl"), "".join(json.dumps(m) + "\n" for m in metrics))
        optional_plot("plot_losses", metrics, os.path.join(self.out, "loss.png"))
        exported = bool(committed) and _hf_available()
        if exported:                      # the top level as a Hugging Face folder (specmix.hf.run_dir)
            from ..hf.run_dir import write_hf_files
            from .peer_lm import is_peer_record, write_peer_hf_files
            write = write_peer_hf_files if is_peer_record(self.record["model"]) else write_hf_files
            write(self.out, self.record, find_checkpoint(self.out, "best").path)
        elif committed:                   # (a legacy folder keeps its config.json until then)
            atomic_write_text(os.path.join(self.out, "config.json"), json.dumps(self.record, indent=2) + "\n")
        if committed:                     # a legacy layout, now converted
            _remove(self.out, ("state.pt", "best") + (() if exported else ("model.safetensors",)))


def _hf_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("tokenizers") is not None


def check_finite_loss(value: float, what: str, step: int, lr: float, folder: RunFolder | None) -> None:
    """Raise :class:`Diverged` for a non-finite ``value`` (a loss), naming the step and the cause."""
    if not math.isfinite(value):
        where = folder.last_saved() if folder is not None else "rank 0 keeps the last checkpoint"
        raise Diverged(f"{what} is {value} at step {step}: the run diverged (the learning rate, "
                       f"--lr {lr:g}, is the likely cause); {where}")
