"""Checkpoint folders on disk: each checkpoint is written as one unit and verified when read.

Layout of a run folder ``out``::

    out/checkpoints/step-00000100/   one complete checkpoint (config, weights, training state)
        config.json  model.safetensors  training.safetensors  manifest.json
    out/checkpoints/best.json        {"step": ..., "val_loss": ...}: which checkpoint is best

A checkpoint is written into a hidden temporary folder, every file fsynced, then
``manifest.json`` (the step, and the size and SHA-256 of every file) is written last and the
folder is renamed into place: one atomic step. A folder without a valid manifest, or with a
file whose checksum differs, is not a checkpoint. ``best.json`` is replaced atomically and
only after the checkpoint it names is in place; older checkpoints are removed only after
that. A crash at any moment leaves the previous complete checkpoint current; leftovers
(``.tmp-*``, ``.trash-*``) are removed by the next run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Callable

from ..io import atomic_write_text, sha256_file
from ..validation import UsageError

__all__ = ["CheckpointError", "Checkpoint", "ROOT", "MANIFEST", "write_checkpoint", "verify",
           "step_folders", "read_best", "write_best", "prune", "remove_leftovers"]

ROOT = "checkpoints"
MANIFEST = "manifest.json"
BEST = "best.json"
FORMAT = "specmix-checkpoint"
VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


class CheckpointError(UsageError):
    """A missing, foreign, damaged or mismatched checkpoint: printed as a one-line error."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint folder and the step it holds."""

    path: str
    step: int


def _fault_point(op: str) -> None:
    """Called before every file operation of a checkpoint write; fault-injection tests
    replace it to crash the process at a chosen operation. Does nothing otherwise."""


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_dir(out: str, step: int) -> str:
    return os.path.join(out, ROOT, f"step-{step:08d}")


def write_checkpoint(out: str, step: int, writers: dict[str, Callable[[str], None]]) -> Checkpoint:
    """Write one checkpoint of ``step``: ``writers`` maps each file name to a function that
    writes that file at the path it is given. Returns the committed checkpoint."""
    root = os.path.join(out, ROOT)
    _fault_point("mkdir")
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".tmp-step-{step:08d}-{os.getpid()}")
    if os.path.exists(tmp):                       # left by a crashed writer of this pid number
        shutil.rmtree(tmp)
    os.mkdir(tmp)
    files = {}
    for name, write in writers.items():
        _fault_point(f"write {name}")
        path = os.path.join(tmp, name)
        write(path)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        files[name] = {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}
    _fault_point(f"write {MANIFEST}")
    manifest = {"format": FORMAT, "version": VERSION, "step": step, "files": files}
    with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    final = step_dir(out, step)
    if os.path.exists(final):                     # the same step again (a resumed run that ends at once)
        _fault_point("retire old copy")
        os.rename(final, os.path.join(root, f".trash-{os.path.basename(final)}-{os.getpid()}"))
    _fault_point("commit")
    os.rename(tmp, final)
    _fsync_dir(root)
    return Checkpoint(final, step)


def verify(path: str) -> Checkpoint:
    """The checkpoint in folder ``path`` if its manifest is valid and every file is intact;
    otherwise :class:`CheckpointError` saying what is wrong."""
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise CheckpointError(f"{path} is not a complete checkpoint: {MANIFEST} is missing")
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        step, files = int(manifest["step"]), dict(manifest["files"])
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{manifest_path} is not a specmix checkpoint manifest ({err})") from None
    match = _STEP_DIR.match(os.path.basename(os.path.normpath(path)))
    if match and int(match.group(1)) != step:
        raise CheckpointError(f"{path}: the manifest says step {step}, the folder another step")
    for name, entry in files.items():
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            raise CheckpointError(f"{path} is damaged: {name} is missing")
        if os.path.getsize(file) != entry["bytes"]:
            raise CheckpointError(f"{path} is damaged: {name} has {os.path.getsize(file)} bytes, "
                                  f"the manifest says {entry['bytes']} (truncated?)")
        if sha256_file(file) != entry["sha256"]:
            raise CheckpointError(f"{path} is damaged: the checksum of {name} does not match its manifest")
    return Checkpoint(path, step)


def step_folders(out: str) -> list[tuple[int, str]]:
    """``(step, path)`` of every committed checkpoint folder name, oldest first (not verified)."""
    root = os.path.join(out, ROOT)
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), os.path.join(root, name))
             for name in os.listdir(root) if (m := _STEP_DIR.match(name))]
    return sorted(found)


def read_best(out: str) -> dict | None:
    """``{"step", "val_loss"}`` of the best checkpoint, or None if none was recorded."""
    path = os.path.join(out, ROOT, BEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return {"step": int(record["step"]), "val_loss": float(record["val_loss"])}
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is damaged ({err})") from None


def write_best(out: str, step: int, val_loss: float) -> None:
    """Point ``best.json`` at the (already committed) checkpoint of ``step``."""
    _fault_point(f"write {BEST}")
    atomic_write_text(os.path.join(out, ROOT, BEST), json.dumps({"step": step, "val_loss": val_loss}) + "\n")


def prune(out: str, keep_last: int, keep: set[int]) -> None:
    """Remove checkpoint folders other than the newest ``keep_last`` and the steps in ``keep``;
    each is first renamed out of the way (one atomic step), then deleted."""
    folders = step_folders(out)
    newest = {step for step, _ in folders[-keep_last:]}
    for step, path in folders:
        if step in newest or step in keep:
            continue
        _fault_point(f"retire step {step}")
        trash = os.path.join(os.path.dirname(path), f".trash-{os.path.basename(path)}")
        os.rename(path, trash)
        _fault_point(f"delete step {step}")
        shutil.rmtree(trash)


def remove_leftovers(out: str) -> list[str]:
    """Delete the temporary and retired folders a crashed writer left; returns their names.
    Call only while holding the folder's lock."""
    root = os.path.join(out, ROOT)
    if not os.path.isdir(root):
        return []
    names = [n for n in os.listdir(root) if n.startswith((".tmp-", ".trash-"))]
    for name in names:
        path = os.path.join(root, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    return names
