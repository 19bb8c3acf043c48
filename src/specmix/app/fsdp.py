"""Sharded parameters for ``specmix train --fsdp``: FSDP2 over the torchrun processes.

Each block, then the whole model, goes through ``torch.distributed.fsdp.fully_shard`` on a
one-dimensional mesh of every process (gloo on CPU, nccl on CUDA): parameters, gradients
and optimizer states are split along dim 0 between the processes, gathered for each
block's forward and backward, and gradients are reduce-scattered (averaged) as DDP's are
all-reduced, so the loss curve is the single-process one.

Checkpoints hold full tensors, the same files an unsharded run writes: every process
gathers (collectives, in the same order everywhere), rank 0 writes through a plain copy
of the model. A checkpoint therefore resumes sharded or not, on any number of processes,
and ``specmix sample`` reads it as any other. Resuming loads the full state on every
process and keeps each one's shard.
"""
from __future__ import annotations

import torch
from torch import nn

from ..validation import UsageError

__all__ = ["check_fsdp", "shard_model", "full_model_state", "full_optimizer_state", "shard_optimizer_state"]


def check_fsdp(world: int, context_parallel: int, optimizer: str) -> None:
    """Refuse, naming the flags, what ``--fsdp`` does not run."""
    if world < 2:
        raise UsageError("--fsdp shards parameters over torchrun processes; launch with "
                         "torchrun --nproc-per-node P (P >= 2) or drop --fsdp")
    if context_parallel > 1:
        raise UsageError("--fsdp with --context-parallel (a 2D data x sequence mesh) is not supported; "
                         "drop one of them")
    if optimizer == "muon":
        raise UsageError("--fsdp with --optimizer muon is not supported (Muon orthogonalises whole "
                         "matrices, FSDP holds row shards); use --optimizer adamw")


def shard_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``fully_shard`` each block and the model, in place, on a mesh of every process."""
    from torch.distributed import get_world_size
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh(device.type, (get_world_size(),))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _gathered(value):
    """A DTensor as its full tensor (a collective), anything else as it is, inside containers."""
    from torch.distributed.tensor import DTensor
    if isinstance(value, DTensor):
        return value.full_tensor()
    if isinstance(value, dict):
        return {k: _gathered(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_gathered(v) for v in value)
    return value


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The sharded model's ``state_dict`` with full tensors (every process must call it)."""
    return {name: t.detach().cpu() for name, t in _gathered(model.state_dict()).items()}


def full_optimizer_state(opt) -> dict:
    """``opt.state_dict()`` with full tensors: the unsharded optimizer's dict (collective)."""
    return _gathered(opt.state_dict())


def _optimizers(opt) -> dict[str | None, torch.optim.Optimizer]:
    """The torch optimizers inside ``opt`` by the key of their state (``Optimizers`` keeps each
    one's under its name; a single optimizer's dict is its own)."""
    inner = getattr(opt, "optimizers", None)
    return dict(inner) if inner is not None else {None: opt}


def shard_optimizer_state(opt, full: dict) -> dict:
    """The full optimizer state ``full`` cut to this process' shards of ``opt``'s parameters
    (no communication: every process holds the full state). Tensors shaped like their
    parameter are sharded like it; scalars (``step``) stay whole."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    out = {}
    for key, inner in _optimizers(opt).items():
        state = full if key is None else full[key]
        params = [p for group in inner.param_groups for p in group["params"]]
        sharded = {}
        for index, values in state["state"].items():
            param = params[int(index)]
            sharded[index] = {
                name: distribute_tensor(v.to(param.device), param.device_mesh, param.placements, src_data_rank=None)
                if isinstance(param, DTensor) and torch.is_tensor(v) and v.shape == param.shape else v
                for name, v in values.items()}
        one = dict(state, state=sharded)
        if key is None:
            return one
        out[key] = one
    return out
