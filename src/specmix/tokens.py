"""The token-tensor conventions every layer shares: ``x (B, N, D)`` float, ``mask (B, N)`` bool
(True = real token), outputs zero at padded positions.

Padded positions are zeroed by selection (``torch.where``), never by multiplying with the
mask: whatever a padded position holds (NaN and inf included) cannot reach a real one.
Non-finite values at *real* positions do spread, through the FFT to every position of a
sequence (as through attention's softmax); :func:`check_finite` finds them first."""
from __future__ import annotations

import torch

__all__ = ["check_tokens", "zero_padding", "check_finite"]


def check_tokens(x: torch.Tensor, d_model: int, mask: torch.Tensor | None, where: str,
                 weight: torch.Tensor | None = None) -> None:
    """Raise a clear TypeError/ValueError unless x is float (B, N, d_model) and mask is bool (B, N);
    with ``weight``, also unless x has the weight's dtype (autocast, when enabled, casts)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: x must be a torch.Tensor of shape (B, N, {d_model}), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{where}: x must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{where}: x must have shape (B, N, D) with D={d_model}, "
                         f"got {tuple(x.shape)}")
    if weight is not None and x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{where}: x has dtype {x.dtype} but the parameters are {weight.dtype}; cast one "
                        f"to the other (x.to({weight.dtype}) or module.to({x.dtype})) or run under torch.autocast")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{where}: mask must be a bool tensor (True = real token), got {got}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{where}: mask must have shape (B, N)={tuple(x.shape[:2])}, "
                         f"got {tuple(mask.shape)}")


def zero_padding(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``t (B, N, C)`` with padded positions (``mask`` False) set to zero, by selection: a NaN
    or inf at a padded position becomes 0 and its gradient 0."""
    return t if mask is None else torch.where(mask[..., None], t, 0.0)   # (B, N, C)


def check_finite(x: torch.Tensor, mask: torch.Tensor | None = None, name: str = "x") -> None:
    """Raise ValueError if ``x (B, N, ...)`` holds NaN or inf at a real position (``mask`` True,
    or everywhere without a mask), naming the first such (batch, position). Opt-in: it costs
    a pass over ``x`` and a host sync, so no layer calls it by itself."""
    bad = ~torch.isfinite(x)
    bad = bad.flatten(2).any(-1) if x.dim() > 2 else bad                 # (B, N)
    if mask is not None:
        bad = bad & mask
    if bool(bad.any()):
        b, n = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} holds a non-finite value at a real position (batch {b}, position {n}) "
                         f"and {int(bad.sum()) - 1} more; it would spread to every position of its sequence")
