"""Where a run executes: the device and this process' place in a ``torchrun`` world."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..validation import UsageError

__all__ = ["resolve_device", "Dist"]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without CUDA is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device: expected auto, cpu or cuda, got {name!r}")
    return torch.device(name)


@dataclass(frozen=True)
class Dist:
    """This process' place in a ``torchrun`` world of ``world = data x context`` processes.

    Consecutive ranks form a context-parallel group of ``context`` processes that share each
    sequence (rank ``r`` holds slice ``r % context``); the groups split the batch between them
    (data-parallel rank ``r // context``). ``context=1`` is plain data parallelism.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    context: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def data_rank(self) -> int:
        return self.rank // self.context

    @property
    def data_world(self) -> int:
        return self.world // self.context

    @classmethod
    def from_env(cls, context: int = 1) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world % context:
            raise UsageError(f"--context-parallel {context} must divide the torchrun world of "
                             f"{world} processes (launch with torchrun --nproc-per-node {context})")
        if world == 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")), context)

    def join(self, device: torch.device) -> torch.device:
        """Join the process group: gloo on CPU, nccl on CUDA (one GPU per local rank)."""
        import torch.distributed as td
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def context_shard(self):
        """This rank's :class:`~specmix.sharding.SequenceShard` (None without context
        parallelism). Collective: every rank of the world must call it, in the same order."""
        if self.context == 1:
            return None
        import torch.distributed as td
        from ..sharding import SequenceShard
        mine = None
        for first in range(0, self.world, self.context):
            group = td.new_group(list(range(first, first + self.context)))
            if first <= self.rank < first + self.context:
                mine = group
        return SequenceShard.of_group(mine)

    def leave(self) -> None:
        if self.world > 1:
            import torch.distributed as td
            td.destroy_process_group()
