"""``specmix export``: the ONNX file of a trained run, with dynamic batch and length.

Writes ``<checkpoint>/model.onnx`` (or ``--onnx``): input ``input`` token ids ``(B, N)``
int64, output ``output`` logits ``(B, N, V)`` float32, for any ``N <= context`` (any N for an
implicit-filter model up to ``--max-len``). When onnxruntime is installed the file is run at
three lengths and compared with the PyTorch model before the command reports success.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from ..validation import UsageError, check_fields

__all__ = ["ExportConfig", "export_run"]


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str = field(default="runs/train", metadata={"help": "folder written by specmix train"})
    weights: Literal["best", "last"] = field(default="best", metadata={"help": "best (lowest val loss) or last"})
    onnx: str | None = field(default=None, metadata={"help": "file to write (none: <checkpoint>/model.onnx)"})
    max_len: int | None = field(default=None, metadata={
        "help": "longest sequence the file accepts (none: the model's context)"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"max_len": 2})


def _check_against_eager(model, path: str, max_len: int) -> list[tuple[int, float]]:
    """``(N, max |onnx - eager| / max |eager|)`` at three lengths (empty without onnxruntime)."""
    import importlib.util
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    import onnxruntime
    import torch
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in sorted({1, max(1, max_len // 3), max_len}):
        idx = torch.randint(0, model.config.vocab_size, (2, n), generator=gen)
        with torch.no_grad():
            expected = model(idx)[0]
        got = torch.from_numpy(session.run(None, {"input": idx.numpy()})[0])
        rows.append((n, float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-30))))
    return rows


def export_run(cfg: ExportConfig) -> str:
    """Write the ONNX file; returns a report (the path and the checks)."""
    import importlib.util
    if importlib.util.find_spec("onnxscript") is None:
        raise UsageError("specmix export needs the export extra: pip install -e '.[export]' "
                         "(onnx, onnxscript, onnxruntime)")
    from ..export import export_onnx
    from .checkpoint import load_model
    model, _ = load_model(cfg.checkpoint, "cpu", which=cfg.weights, context=cfg.max_len)
    model.eval()
    max_len = min(cfg.max_len or model.config.context, model.config.context)
    path = cfg.onnx or os.path.join(cfg.checkpoint, "model.onnx")
    partial = path + ".partial"                     # renamed into place once complete
    export_onnx(model, partial, max_len=max_len, example_len=min(64, max_len))
    os.replace(partial, path)
    lines = [f"wrote {path}: input token ids (B, N) int64 for N <= {max_len}, output logits (B, N, "
             f"{model.config.vocab_size}) float32"]
    checks = _check_against_eager(model, path, max_len)
    lines += [f"onnxruntime vs PyTorch at N={n}: max relative difference {rel:.1e}" for n, rel in checks]
    worst = max((rel for _, rel in checks), default=0.0)
    if worst > 1e-3:
        raise RuntimeError(f"the ONNX file differs from the model by {worst:.1e} (relative); {path} is not usable")
    return "\n".join(lines)
