"""Optimizers and learning-rate schedules of ``specmix train``.

- :func:`get_lr`: linear warmup, then ``cosine`` decay to ``lr * min_lr_ratio``, or ``wsd``
  (warmup-stable-decay): the peak held until the last ``cooldown`` fraction of the run, then a
  linear decay to the same floor. Progress is counted in steps or, with a ``time_limit``, in
  seconds, whichever is further.
- :func:`make_optimizer`: AdamW (fused on CPU and CUDA) with weight decay on matrices only, or
  ``muon``: ``torch.optim.Muon`` on the hidden 2D matrices (projections and MLPs; not the
  embeddings, the head or the filters) with AdamW on the rest, as one :class:`Optimizers`.
  Filter parameters can get their own weight decay and an lr cap.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .train import TrainConfig

__all__ = ["get_lr", "make_optimizer", "muon_momentum", "Optimizers", "describe_groups"]

MUON_MOMENTUM = (0.85, 0.95)    # warmed up linearly over the first MUON_WARMUP steps (modded-nanogpt)
MUON_WARMUP = 300
_NOT_HIDDEN = ("tok_emb", "pos_emb", "head")


def get_lr(step: int, cfg: "TrainConfig", elapsed_s: float = 0.0) -> float:
    """The learning rate of ``step`` (see the module docstring)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.time_limit:
        progress = max(progress, min(1.0, elapsed_s / cfg.time_limit))
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "wsd":
        start = 1.0 - cfg.cooldown
        return cfg.lr if progress <= start else cfg.lr - (cfg.lr - floor) * (progress - start) / cfg.cooldown
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def muon_momentum(step: int) -> float:
    low, high = MUON_MOMENTUM
    return low + (high - low) * min(1.0, step / MUON_WARMUP)


class Optimizers:
    """Several optimizers stepped as one (Muon and AdamW): ``param_groups`` lists all their
    groups, ``state_dict`` keeps each one's under its name."""

    def __init__(self, **optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers.values() for g in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers.values():
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


def _is_filter(name: str) -> bool:
    return ".filter." in name


def _adamw_groups(named: list[tuple[str, torch.nn.Parameter]], cfg: "TrainConfig") -> list[dict]:
    """Matrices (and other tensors of dim >= 2) decayed, the rest not; filters in their own
    group only when their decay or lr cap is set (so default runs keep two groups)."""
    own_filters = cfg.filter_weight_decay > 0 or cfg.filter_lr is not None
    decay = [p for n, p in named if p.dim() >= 2 and not _is_filter(n)]
    rest = [p for n, p in named if not (p.dim() >= 2 and not _is_filter(n)) and not (own_filters and _is_filter(n))]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "name": "matrices"},
              {"params": rest, "weight_decay": 0.0, "name": "vectors and filters" if not own_filters else "vectors"}]
    if own_filters:
        groups.append({"params": [p for n, p in named if _is_filter(n)], "weight_decay": cfg.filter_weight_decay,
                       "lr_max": cfg.filter_lr, "name": "filters"})
    return [g for g in groups if g["params"]]


def _hidden_names(model: torch.nn.Module, named: list[tuple[str, torch.nn.Parameter]]) -> set[str]:
    """Muon's share: a model that lists its hidden matrices (a transformers peer) says which;
    in a specmix LM every 2D weight but the embeddings, the head and the filters."""
    if hasattr(model, "hidden_matrices"):
        return set(model.hidden_matrices())
    return {n for n, p in named if p.dim() == 2 and not _is_filter(n) and n.split(".")[0] not in _NOT_HIDDEN}


def make_optimizer(model: torch.nn.Module, cfg: "TrainConfig"):
    """AdamW, or Muon + AdamW (see the module docstring). The fused AdamW kernel on CPU and
    CUDA (one pass over each tensor; on CPU clip + step fell from 7.5 to 3.7 ms per step of
    the 4-layer d 128 probe)."""
    named = list(model.named_parameters())
    fused = all(p.device.type in ("cpu", "cuda") for _, p in named) or None
    muon_names = _hidden_names(model, named) if cfg.optimizer == "muon" else set()
    hidden = [(n, p) for n, p in named if n in muon_names]
    hidden_ids = {id(p) for _, p in hidden}
    adamw = torch.optim.AdamW(_adamw_groups([(n, p) for n, p in named if id(p) not in hidden_ids], cfg),
                              lr=cfg.lr, betas=(0.9, 0.99), fused=fused)
    if not hidden:
        return adamw
    muon = torch.optim.Muon([{"params": [p for _, p in hidden], "name": "hidden matrices (Muon)"}], lr=cfg.lr,
                            weight_decay=cfg.weight_decay, momentum=MUON_MOMENTUM[0], adjust_lr_fn="match_rms_adamw")
    return Optimizers(muon=muon, adamw=adamw)


def describe_groups(opt) -> str:
    """One line per parameter group: name, tensors, parameters, weight decay, lr cap."""
    lines = []
    for g in opt.param_groups:
        cap = f", lr capped at {g['lr_max']:g}" if g.get("lr_max") is not None else ""
        lines.append(f"  {g.get('name', 'group')}: {len(g['params'])} tensors, "
                     f"{sum(p.numel() for p in g['params']):,} parameters, weight decay {g['weight_decay']:g}{cap}")
    return "\n".join(lines)
