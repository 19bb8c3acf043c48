"""Evaluation during training: the mean loss over fixed batches, and task accuracies."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.batches import TaskData
from ..data.tasks import IGNORE
from ..model import SpecMixLM
from .context_parallel import ContextParallel

if TYPE_CHECKING:
    from .train import TrainConfig

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(model: SpecMixLM, data, split: str, cfg: "TrainConfig", device,
             sharded: ContextParallel | None = None) -> dict[str, float]:
    """Mean loss over ``eval_batches`` fixed batches (the same at every evaluation).

    For a synthetic task also ``scored_acc`` (every scored position) and, for recall and
    copy, ``answer_acc`` (the last position: the final query's answer). With ``sharded``
    (context parallelism) each rank scores its slice and the counts are summed over the group.
    """
    rng = np.random.default_rng(cfg.seed + (1 if split == "train" else 2))
    task = isinstance(data, TaskData)
    answers = task and data.spec.name != "mqar"
    was_training = model.training
    model.eval()
    losses, answer_hits, hits, scored = [], 0, 0, 0
    sparse = task and not answers and sharded is None     # mqar: the head only where scored
    for _ in range(cfg.eval_batches):
        x, y = data.batch(split, cfg.batch_size, model.config.context, rng, device)
        if sparse:
            logits, loss = model(x, y, scored_only=True)               # (S, V)
            losses.append(loss)
            hits, scored = hits + int((logits.argmax(-1) == y[y != IGNORE]).sum()), scored + logits.shape[0]
            continue
        logits, loss = model(x, y) if sharded is None else sharded(x, y)
        losses.append(loss if sharded is None else sharded.reduce(loss))
        if sharded is not None:
            y = sharded.part(y)                                        # this rank's slice
        if task:
            guess, keep = logits.argmax(-1), y != IGNORE               # (B, N) each
            last = sharded is None or sharded.last
            counts = torch.stack([(guess[:, -1] == y[:, -1]).sum() * last, (guess == y)[keep].sum(), keep.sum()])
            counts = counts if sharded is None else sharded.reduce(counts)
            answer_hits, hits, scored = answer_hits + int(counts[0]), hits + int(counts[1]), scored + int(counts[2])
    model.train(was_training)
    out = {"loss": float(np.mean([float(loss) for loss in losses]))}
    if task:
        out.update(scored_acc=hits / scored)
    if answers:
        out.update(answer_acc=answer_hits / (cfg.eval_batches * cfg.batch_size))
    return out
