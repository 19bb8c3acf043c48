"""Length generalisation: a trained LM's validation loss at contexts longer than in training.

For each context C the same number of validation tokens is scored: ``tokens // C`` windows
of C characters at evenly spaced, fixed offsets of the validation split (no randomness),
one forward each. Reported per C: the mean loss over all positions, over positions
``< trained context`` and over positions ``>= trained context`` (the ones that see more
history than any training example did). A model that uses long history well gets a lower
loss at the later positions; one that breaks beyond its training length gets a higher one.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batches import TokenData
from ..io import atomic_write_text
from ..validation import UsageError, check_fields
from .checkpoint import CheckpointError, load_config, load_model
from .plots import optional_plot
from .runtime import resolve_device
from .tables import fmt, markdown_table


@dataclass(frozen=True)
class LengthEvalConfig:
    checkpoint: str = field(default="runs/train", metadata={"help": "training output folder"})
    data: str | None = field(default=None, metadata={"help": "the corpus the model was trained on; "
                                                      "omitted = the checkpoint's --data"})
    contexts: tuple[int, ...] = field(default=(1024, 4096, 16384), metadata={"help": "comma list of contexts"})
    tokens: int = field(default=65536, metadata={"help": "validation tokens scored per context"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    out: str | None = field(default=None, metadata={"help": "JSON file to write (none = print only)"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"tokens": 1})
        if not self.contexts or min(self.contexts) < 2:
            raise UsageError(f"--contexts: expected integers >= 2, got {self.contexts}")
        if self.out is not None and (os.path.isdir(self.out) or self.out.endswith(os.sep)):
            raise UsageError(f"--out {self.out} is a folder; give the JSON file to write, "
                             f"e.g. {os.path.join(self.out, 'lengths.json')}")


@torch.no_grad()
def _position_losses(model, val: np.ndarray, context: int, n_windows: int, device) -> np.ndarray:
    """``(n_windows, context)`` per-position losses of fixed windows of the val split."""
    starts = np.linspace(0, len(val) - context - 1, n_windows).astype(np.int64)
    rows = []
    for s in starts:
        chunk = torch.from_numpy(val[s: s + context + 1].astype(np.int64)).to(device)[None]  # (1, C+1)
        logits, _ = model(chunk[:, :-1])                                # (1, C, V)
        rows.append(F.cross_entropy(logits[0].float(), chunk[0, 1:], reduction="none").cpu().numpy())
    return np.stack(rows)


def _buckets(losses: np.ndarray, first: int = 64) -> dict:
    """Mean loss over position ranges that double in width: [0, 64), [64, 128), [128, 256), ...
    (an even share of log-spaced positions per point, so the long tail is not all noise)."""
    edges = [0, first]
    while edges[-1] < losses.shape[1]:
        edges.append(min(2 * edges[-1], losses.shape[1]))
    return {"start": edges[:-1], "stop": edges[1:],
            "loss": [float(losses[:, a:b].mean()) for a, b in zip(edges[:-1], edges[1:])]}


def eval_lengths(cfg: LengthEvalConfig) -> dict:
    """Rows ``{context, windows, loss, loss_within, loss_beyond, seconds}`` per context."""
    contexts = sorted(set(cfg.contexts))
    record = load_config(cfg.checkpoint)
    if "tokenizer" not in record:
        raise CheckpointError(f"{cfg.checkpoint} was trained on a synthetic task, not a corpus")
    device = resolve_device(cfg.device)
    trained = record["model"]["context"]
    model, tok = load_model(cfg.checkpoint, device, context=max(contexts))
    model.eval()
    data = TokenData.load(cfg.data or record["train"]["data"], max(contexts), tok)
    rows = []
    for context in contexts:
        start = time.perf_counter()
        losses = _position_losses(model, data.val, context, max(1, cfg.tokens // context), device)
        rows.append({"context": context, "windows": len(losses), "loss": float(losses.mean()),
                     "loss_within": float(losses[:, :trained].mean()),
                     "loss_beyond": float(losses[:, trained:].mean()) if context > trained else None,
                     "seconds": time.perf_counter() - start,
                     "by_position": _buckets(losses)})
    report = {"config": asdict(cfg), "trained_context": trained, "model": record["model"],
              "corpus": data.name, "rows": rows}
    if cfg.out:
        os.makedirs(os.path.dirname(os.path.abspath(cfg.out)), exist_ok=True)
        atomic_write_text(cfg.out, json.dumps(report, indent=2) + "\n")
        optional_plot("plot_lengths", report, os.path.splitext(cfg.out)[0] + ".png")
    return report


def format_lengths(report: dict) -> str:
    trained = report["trained_context"]
    head = ["context", "windows", "val loss (all positions)", f"positions < {trained}", f"positions >= {trained}"]
    rows = [[r["context"], r["windows"], f"{r['loss']:.4f}", f"{r['loss_within']:.4f}", fmt(r["loss_beyond"], ".4f")]
            for r in report["rows"]]
    return "\n".join(markdown_table(head, rows))
