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
    """This process' place in a data-parallel run (``torchrun`` sets the environment)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    def join(self, device: torch.device) -> torch.device:
        """Join the process group: gloo on CPU, nccl on CUDA (one GPU per local rank)."""
        import torch.distributed as td
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def leave(self) -> None:
        if self.world > 1:
            import torch.distributed as td
            td.destroy_process_group()
