"""Export a model with a dynamic batch and sequence length: ``torch.export`` and ONNX.

:func:`export_program` returns the ``ExportedProgram`` of a specmix module (a mixer, a
``Block`` or a ``SpecMixLM``) whose batch and length axes are symbols, so the program runs
at any length up to ``max_len``; :func:`export_onnx` writes it as an ONNX file that
onnxruntime runs (the FFTs become ONNX ``DFT`` nodes). The forward traced is the module's
traceable form (:mod:`specmix.traceable`): exact at every length, equal to eager mode up to
float rounding. An LM's program maps token ids ``(B, N)`` to logits ``(B, N, V)``.

Needs the ``export`` extra (onnx, onnxscript; onnxruntime to run the file) for ONNX only.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim

__all__ = ["export_program", "export_onnx", "LogitsOnly"]


class LogitsOnly(nn.Module):
    """A ``SpecMixLM`` that returns the logits alone (export wants tensors, not a pair)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm(idx)[0]                                         # (B, N, V)


def _example(module: nn.Module, example_len: int) -> tuple[nn.Module, torch.Tensor]:
    """The module as exported (an LM returns its logits only) and an input of length N."""
    from .model import SpecMixLM
    param = next(module.parameters())
    if isinstance(module, SpecMixLM):
        return LogitsOnly(module).eval(), torch.zeros(2, example_len, dtype=torch.long, device=param.device)
    d_model = getattr(module, "d_model", None)
    if d_model is None:
        raise TypeError(f"export: expected a SpecMixLM or a module with d_model (a mixer or Block), "
                        f"got {type(module).__name__}")
    return module, torch.randn(2, example_len, d_model, device=param.device, dtype=param.dtype)


def _traced_call(module: nn.Module, max_len: int, example_len: int | None):
    """``(target, args, dynamic_shapes)`` of an export in eval mode: batch and N symbolic
    (``N <= max_len``), traced at ``example_len`` (default ``min(64, max_len)``)."""
    example_len = min(64, max_len) if example_len is None else example_len
    if not 2 <= example_len <= max_len:
        raise ValueError(f"export: need 2 <= example_len <= max_len, got example_len={example_len}, "
                         f"max_len={max_len}")
    target, example = _example(module.eval(), example_len)
    return target, (example,), ({0: Dim("batch"), 1: Dim("seq_len", max=max_len)},)


def export_program(module: nn.Module, *, max_len: int, example_len: int | None = None):
    """``torch.export.export`` of ``module`` in eval mode with dynamic batch and length
    (``1 .. max_len``). ``example_len`` (default ``min(64, max_len)``) is the traced length."""
    target, args, axes = _traced_call(module, max_len, example_len)
    return torch.export.export(target, args, dynamic_shapes=axes)


def export_onnx(module: nn.Module, path: str, *, max_len: int, example_len: int | None = None) -> str:
    """Write ``module`` (eval mode) as ONNX to ``path`` with dynamic batch and length; returns path."""
    target, args, axes = _traced_call(module, max_len, example_len)
    program = torch.onnx.export(target, args, dynamic_shapes=axes, dynamo=True,
                                input_names=["input"], output_names=["output"], verbose=False)
    program.save(path)
    return path
