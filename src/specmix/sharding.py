"""Context parallelism: one sequence split across the processes of a ``torch.distributed`` group.

Each of the P ranks of a group holds a contiguous slice of every sequence, ``n = N / P``
positions starting at ``index * n``. Pointwise work (projections, norms, MLP, loss) runs on
the slice as it is. A long convolution needs the whole sequence of a channel, so it runs
between two all-to-alls (the Savanna / StripedHyena 2 recipe):

    (B, C, n) sequence-sharded  --seq_to_channels-->  (B, C / P, N) channel-sharded
    ... the unchanged exact causal FFT convolution of C / P channels ...
    (B, C / P, N)               --channels_to_seq-->  (B, C, n)

Each all-to-all is the other's adjoint, so gradients are exact: the backward of one is the
forward of the other. A short causal convolution of W taps only needs the previous rank's
last W - 1 positions: :func:`previous_tail`, a halo exchange whose adjoint sends the halo's
gradient back. Gloo (CPU) and NCCL (CUDA) both provide all-to-all and point-to-point sends.

Legend: B batch, C channels, N full sequence, n = N / P local slice, P ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["SequenceShard", "seq_to_channels", "channels_to_seq", "previous_tail"]


@dataclass(frozen=True)
class SequenceShard:
    """This process' slice of every sequence: position ``index`` of ``world`` in ``group``.

    ``ranks`` are the group's global ranks in slice order (point-to-point sends address
    global ranks). Build one with :meth:`of_group` after ``init_process_group``.
    """

    group: object                   # a torch.distributed ProcessGroup (None = the default group)
    index: int
    world: int
    ranks: tuple[int, ...]

    @classmethod
    def of_group(cls, group=None) -> "SequenceShard":
        world = dist.get_world_size(group)
        ranks = tuple(dist.get_global_rank(group, i) if group is not None else i for i in range(world))
        return cls(group, dist.get_rank(group), world, ranks)

    def start(self, local_len: int) -> int:
        """The first global position of this rank's slice."""
        return self.index * local_len

    def check_channels(self, channels: int, where: str) -> None:
        if channels % self.world:
            raise ValueError(f"{where}: {channels} channels cannot be split over {self.world} "
                             f"context-parallel ranks; choose d_model divisible by {self.world}")

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the group, in place (no gradient)."""
        dist.all_reduce(t, group=self.group)
        return t


def _all_to_all(blocks: torch.Tensor, shard: SequenceShard) -> torch.Tensor:
    """``blocks (P, ...)``: block j goes to rank j; returns ``(P, ...)`` with block i from rank i."""
    blocks = blocks.contiguous()
    out = torch.empty_like(blocks)
    dist.all_to_all_single(out, blocks, group=shard.group)
    return out


def _to_channels(u: torch.Tensor, shard: SequenceShard) -> torch.Tensor:
    bsz, c, n = u.shape
    p = shard.world
    blocks = u.view(bsz, p, c // p, n).transpose(0, 1)                 # (P, B, C/P, n) by channel block
    got = _all_to_all(blocks, shard)                                   # (P, B, C/P, n) by sequence slice
    return got.permute(1, 2, 0, 3).reshape(bsz, c // p, p * n)         # (B, C/P, N)


def _to_seq(y: torch.Tensor, shard: SequenceShard) -> torch.Tensor:
    bsz, c_local, seq_len = y.shape
    p = shard.world
    blocks = y.view(bsz, c_local, p, seq_len // p).permute(2, 0, 1, 3)  # (P, B, C/P, n) by slice
    got = _all_to_all(blocks, shard)                                   # (P, B, C/P, n) by channel block
    return got.transpose(0, 1).reshape(bsz, p * c_local, seq_len // p)  # (B, C, n)


class _SeqToChannels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, shard):
        ctx.shard = shard
        return _to_channels(u, shard)

    @staticmethod
    def backward(ctx, dy):
        return _to_seq(dy, ctx.shard), None


class _ChannelsToSeq(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, shard):
        ctx.shard = shard
        return _to_seq(y, shard)

    @staticmethod
    def backward(ctx, du):
        return _to_channels(du, ctx.shard), None


def seq_to_channels(u: torch.Tensor, shard: SequenceShard) -> torch.Tensor:
    """Reshard ``u (B, C, n)``, this rank's slice of every channel, to ``(B, C / P, N)``: this
    rank's block of C / P channels over the whole sequence. C must be divisible by P."""
    if u.dim() != 3:
        raise ValueError(f"seq_to_channels: u must be (B, C, n), got {tuple(u.shape)}")
    shard.check_channels(u.shape[1], "seq_to_channels")
    return _SeqToChannels.apply(u, shard)


def channels_to_seq(y: torch.Tensor, shard: SequenceShard) -> torch.Tensor:
    """The inverse of :func:`seq_to_channels`: ``(B, C / P, N) -> (B, C, n)``."""
    if y.dim() != 3 or y.shape[-1] % shard.world:
        raise ValueError(f"channels_to_seq: y must be (B, C/P, N) with N divisible by "
                         f"{shard.world}, got {tuple(y.shape)}")
    return _ChannelsToSeq.apply(y, shard)


def _shift_to_next(t: torch.Tensor, shard: SequenceShard, forward: bool) -> torch.Tensor:
    """Rank i sends ``t`` to rank i + 1 (``forward``) or i - 1 and returns what it received
    (zeros at the open end)."""
    step = 1 if forward else -1
    dst, src = shard.index + step, shard.index - step
    got = torch.zeros_like(t)
    ops = []
    if 0 <= dst < shard.world:
        ops.append(dist.P2POp(dist.isend, t.contiguous(), shard.ranks[dst], shard.group))
    if 0 <= src < shard.world:
        ops.append(dist.P2POp(dist.irecv, got, shard.ranks[src], shard.group))
    for req in dist.batch_isend_irecv(ops) if ops else []:
        req.wait()
    return got


class _PreviousTail(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, width, shard):
        ctx.shard, ctx.width, ctx.n = shard, width, u.shape[-1]
        return _shift_to_next(u[..., -width:], shard, forward=True)

    @staticmethod
    def backward(ctx, dhalo):
        dtail = _shift_to_next(dhalo, ctx.shard, forward=False)         # (B, C, width)
        du = dhalo.new_zeros(*dhalo.shape[:-1], ctx.n)
        du[..., -ctx.width:] = dtail
        return du, None, None


def previous_tail(u: torch.Tensor, width: int, shard: SequenceShard) -> torch.Tensor:
    """The halo: the last ``width`` positions of the previous rank's ``u (B, C, n)``, as
    ``(B, C, width)`` (zeros on the first rank: the causal zero padding)."""
    if u.shape[-1] < width:
        raise ValueError(f"previous_tail: each rank's slice needs >= {width} positions, "
                         f"got {u.shape[-1]}")
    return _PreviousTail.apply(u, width, shard)
