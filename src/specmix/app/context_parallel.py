"""Training with context parallelism: each rank of a group trains on its slice of every sequence.

The model runs :meth:`SpecMixLM.forward` with a :class:`~specmix.sharding.SequenceShard`; this
module does what the training loop needs around it: slice the batch, weight each slice's loss
into the batch mean, and sum the gradients (every parameter is replicated; each rank's gradient
is its slice's share, so the sum over a group is the full sequence's gradient, and the mean
over data-parallel groups follows). No DDP wrapper: one all-reduce over the world does both.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..data.tasks import IGNORE
from ..model import SpecMixLM
from ..sharding import SequenceShard
from ..validation import UsageError

__all__ = ["ContextParallel", "check_context_parallel"]


def check_context_parallel(model_cfg, parts: int, compile_model: bool) -> None:
    """Reject, with the flag's name, what context parallelism cannot run."""
    if parts == 1:
        return
    if model_cfg.context % parts:
        raise UsageError(f"--context {model_cfg.context} must be divisible by --context-parallel {parts} "
                         "(each process holds an equal slice of every sequence)")
    if model_cfg.context // parts < 2:
        raise UsageError(f"--context-parallel {parts}: each slice needs >= 2 positions "
                         f"(--context {model_cfg.context})")
    if model_cfg.d_model % parts:
        raise UsageError(f"--d-model {model_cfg.d_model} must be divisible by --context-parallel {parts} "
                         "(the long convolutions run on d_model / P channels per process)")
    refused = model_cfg.unshardable_kinds()
    if refused:
        raise UsageError(f"--context-parallel supports spectral and spectral-gated layers, not {refused[0]!r}"
                         + (" (it would need ring attention)" if "spectral-taylor" not in refused[0] else ""))
    if compile_model:
        raise UsageError("--compile is not supported with --context-parallel (the all-to-alls "
                         "break the graph); drop one of them")


class ContextParallel:
    """``step(x, y) -> (logits, loss)`` on this rank's slice of full-length batches ``(B, N)``:
    ``logits (B, N / P, V)`` and the slice's share of the batch's mean loss (the shares sum
    to it over the group)."""

    def __init__(self, model: SpecMixLM, shard: SequenceShard) -> None:
        self.model, self.shard = model, shard

    def part(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's slice of ``t (B, N)``: ``(B, N / P)``."""
        n = t.shape[1] // self.shard.world
        return t[:, self.shard.index * n: (self.shard.index + 1) * n]

    @property
    def last(self) -> bool:
        """Whether this rank holds the sequences' last position."""
        return self.shard.index == self.shard.world - 1

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        logits, _ = self.model(self.part(x), shard=self.shard)          # (B, n, V)
        scored = (y != IGNORE).sum().clamp_min(1)                       # over the full rows
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), self.part(y).reshape(-1),
                               ignore_index=IGNORE, reduction="sum") / scored
        return logits, loss

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a detached tensor over the group."""
        return self.shard.all_reduce(t.detach().clone())

    def sync(self, total: torch.Tensor, data_world: int) -> torch.Tensor:
        """Sum gradients over the world and divide by the data-parallel groups (one flat
        all-reduce); returns the batch loss ``total`` summed likewise."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads] + [total.reshape(1)]) / data_world
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()
        return flat[-1]
