"""Peer implementations timed beside specmix's ops, installed from the package index.

flash-linear-attention (``pip install fla-core``) ships ``LongConvolution`` and
``ImplicitLongConvolution`` in ``fla/modules/long_conv.py``: plain PyTorch FFT convolutions
(``rfft``/``irfft`` at 2N) that include a skip, ``y = conv(x, k) + x``, on ``(B, N, D)``.
The package's ``__init__`` imports triton (a 286 MB wheel that runs nothing on CPU), so
this module loads that one file of the installed package by its path; it needs only torch
and einops. Nothing of fla is copied here.

specmix's side of each pair computes the same maths through its own op: ``long-conv`` is
:func:`specmix.functional.fft_conv_cf` on a ``(D, N)`` taps parameter plus the skip, the
operator of ``LongConvolution(d, max_len=N)``; ``implicit-long-conv`` is the same with an
:class:`~specmix.filters.ImplicitFilter` kernel. Both take ``(B, N, D)``, as fla's do, and
read it channels-first through a transposed view, as fla's do.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable

from ...validation import UsageError

__all__ = ["PEER_OPS", "SPECMIX_PEER_OPS", "load_fla_long_conv", "make_peer_op"]

PEER_OPS = ("fla-long-conv", "fla-implicit-long-conv")
SPECMIX_PEER_OPS = ("long-conv", "implicit-long-conv")


def load_fla_long_conv():
    """fla's ``long_conv`` module from the installed fla-core (see the module docstring)."""
    spec = importlib.util.find_spec("fla")                  # locates the package, runs nothing
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the fla ops need flash-linear-attention: pip install fla-core==0.6.0 "
                         "(benchmarks/peers.sh installs it)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "modules", "long_conv.py")
    module_spec = importlib.util.spec_from_file_location("fla_long_conv", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def fla_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("fla-core")
    except PackageNotFoundError:
        return None


def _specmix_long_conv(d: int, n: int, implicit: bool, dev, dtype):
    """``(module, fn)``: specmix's skip + causal convolution of ``x (B, N, D)``."""
    import torch

    from ...filters import ImplicitFilter
    from ...functional import fft_conv_cf
    if implicit:
        module = ImplicitFilter(d, decay_len=n, device=dev, dtype=dtype)
        kernel = lambda: module.kernel(n)                                 # noqa: E731
    else:
        module = torch.nn.Module()
        module.taps = torch.nn.Parameter(torch.randn(d, n, device=dev, dtype=dtype) / n ** 0.5)
        kernel = lambda: module.taps                                      # noqa: E731

    def fn(x):                                               # (B, N, D) -> (B, N, D)
        return fft_conv_cf(x.transpose(1, 2), kernel()).transpose(1, 2) + x
    return module, fn


def make_peer_op(op: str, *, batch: int, n: int, d: int, dev, dtype) -> tuple[object, Callable, tuple]:
    """``(module, call, inputs)`` of one long-convolution op on ``x (B, N, D)``."""
    import torch
    x = torch.randn(batch, n, d, device=dev, dtype=dtype)
    if op in SPECMIX_PEER_OPS:
        module, fn = _specmix_long_conv(d, n, op == "implicit-long-conv", dev, dtype)
    elif op in PEER_OPS:
        fla = load_fla_long_conv()
        cls = fla.LongConvolution if op == "fla-long-conv" else fla.ImplicitLongConvolution
        module = cls(d, max_len=n).to(device=dev, dtype=dtype)   # max_len = N: taps 0..N-1, causal
        fn = module
    else:
        raise ValueError(f"unknown long-convolution op {op!r}; choose from {SPECMIX_PEER_OPS + PEER_OPS}")
    return module, (lambda: fn(x)), (x,)
