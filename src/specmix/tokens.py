"""The token-tensor conventions every layer shares: ``x (B, N, D)`` float, ``mask (B, N)`` bool
(True = real token), outputs zero at padded positions."""
from __future__ import annotations

import torch

__all__ = ["check_tokens", "zero_padding"]


def check_tokens(x: torch.Tensor, d_model: int, mask: torch.Tensor | None, where: str) -> None:
    """Raise a clear TypeError/ValueError unless x is float (B, N, d_model) and mask is bool (B, N)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: x must be a torch.Tensor of shape (B, N, {d_model}), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{where}: x must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{where}: x must have shape (B, N, D) with D={d_model}, "
                         f"got {tuple(x.shape)}")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{where}: mask must be a bool tensor (True = real token), got {got}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{where}: mask must have shape (B, N)={tuple(x.shape[:2])}, "
                         f"got {tuple(mask.shape)}")


def zero_padding(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``t (B, N, C)`` with padded positions (``mask`` False) set to zero."""
    return t if mask is None else t * mask[..., None].to(t.dtype)   # (B, N, C)
