"""``specmix sample``: generate text from a checkpoint with cached decoding."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..validation import UsageError, check_fields

__all__ = ["SampleConfig", "sample"]


@dataclass(frozen=True)
class SampleConfig:
    checkpoint: str = field(default="runs/train", metadata={"help": "folder written by specmix train"})
    prompt: str | None = field(default=None, metadata={"help": "text to continue (none: a newline)"})
    tokens: int = field(default=200, metadata={"help": "new tokens"})
    temperature: float = field(default=0.8, metadata={"help": "softmax temperature (> 0)"})
    top_k: int | None = field(default=None, metadata={"help": "sample from the k likeliest (none: all)"})
    seed: int = field(default=0, metadata={"help": "seed of the sampler"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    weights: Literal["best", "last"] = field(default="best", metadata={
        "help": "best (lowest val loss) or last; best falls back to last when the run has no best "
                "checkpoint yet"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"tokens": 0, "top_k": 1})
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be > 0, got {self.temperature}")
        if self.prompt == "":
            raise UsageError("--prompt must not be empty")


def sample(cfg: SampleConfig) -> str:
    """The prompt followed by ``cfg.tokens`` sampled characters."""
    import torch

    from .checkpoint import load_model
    from .runtime import resolve_device
    device = resolve_device(cfg.device)
    model, tok = load_model(cfg.checkpoint, device, which=cfg.weights)
    if tok is None:
        raise UsageError(f"--checkpoint {cfg.checkpoint} was trained on a synthetic task; "
                         "sampling text needs a language-model checkpoint")
    prompt = cfg.prompt if cfg.prompt is not None else ("\n" if "\n" in tok.chars else tok.chars[0])
    ids = torch.from_numpy(tok.encode(prompt))[None, -model.config.context:].to(device)   # (1, N)
    if cfg.tokens == 0:
        return prompt
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    out = model.eval().generate(ids, cfg.tokens, temperature=cfg.temperature, top_k=cfg.top_k, generator=gen)
    return prompt + tok.decode(out[0, ids.shape[1]:].tolist())
