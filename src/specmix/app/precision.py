"""Mixed precision for training: the autocast dtype per device, and the GradScaler float16 needs.

FFTs never run in half precision: under autocast the spectral layers promote to float32 for
the FFT and cast back (see :mod:`specmix.functional`), so causality and exactness hold.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..validation import UsageError

__all__ = ["Precision", "resolve_precision"]


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype
    device_type: str

    def autocast(self):
        """The context every training forward runs in (a no-op for float32)."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self):
        """A GradScaler for float16 (bfloat16 and float32 need none)."""
        if self.dtype != torch.float16:
            return None
        return torch.amp.GradScaler(self.device_type)


def resolve_precision(name: str | None, device: torch.device) -> Precision:
    """``None``: float32 on CPU (bitwise reproducible, and bfloat16 is only fast on CPUs with
    native bf16 instructions), bfloat16 on CUDA (float16 where the GPU lacks bf16)."""
    if name is None:
        if device.type != "cuda":
            name = "float32"
        else:
            name = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if name == "float16" and device.type != "cuda":
        raise UsageError("--dtype float16: autocast in float16 needs CUDA; use --dtype bfloat16 on a CPU")
    return Precision(getattr(torch, name), device.type)
