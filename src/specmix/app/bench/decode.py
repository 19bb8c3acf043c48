"""Long-context sampling speed: cached generation after prompts of 1K .. 32K tokens.

For each model kind and prompt length P, an :func:`~specmix.app.bench.ops.untrained_lm` with
context ``P + new_tokens`` runs :meth:`SpecMixLM.prefill` (the prompt's forward plus building
the per-layer states), then ``new_tokens`` greedy :meth:`SpecMixLM.step` calls; the two are
timed separately with the harness' clock, median over repeats.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch

from ...io import atomic_write_text
from ...validation import UsageError, check_fields
from ..plots import optional_plot
from ..runtime import resolve_device
from ..tables import markdown_table
from .harness import environment, summarize, synchronizer, timed
from .ops import untrained_lm


@dataclass(frozen=True)
class DecodeBenchConfig:
    mixers: tuple[str, ...] = field(default=("spectral-gated", "attention"), metadata={
        "help": "comma list of model kinds (one model per kind, all layers of it)"})
    prompts: tuple[int, ...] = field(default=(1024, 8192, 32768), metadata={"help": "comma list of prompt lengths"})
    new_tokens: int = field(default=128, metadata={"help": "tokens generated after each prompt"})
    d_model: int = field(default=128, metadata={"help": "width of every model"})
    n_layers: int = field(default=4, metadata={"help": "depth of every model"})
    n_heads: int = field(default=4, metadata={"help": "heads of attention layers"})
    repeats: int = field(default=3, metadata={"help": "timed repeats (median)"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    out: str = field(default="runs/decode", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"new_tokens": 1, "d_model": 1, "n_layers": 1, "n_heads": 1, "repeats": 1})
        if not self.prompts or min(self.prompts) < 1:
            raise UsageError(f"--prompts: expected integers >= 1, got {self.prompts}")
        if self.d_model % self.n_heads:
            raise UsageError(f"--n-heads {self.n_heads} must divide --d-model {self.d_model}")
        from ...model import MixerKind
        for kind in self.mixers:
            MixerKind.parse(kind)


def _generate(model, idx: torch.Tensor, new_tokens: int, sync) -> tuple[float, float]:
    """Seconds of the prefill and of ``new_tokens`` greedy cached steps after it."""
    prefill_s, (logits, states) = timed(lambda: model.prefill(idx), sync)

    def steps():
        token = logits.argmax(-1)
        for pos in range(idx.shape[1], idx.shape[1] + new_tokens):
            token = model.step(token, pos, states).argmax(-1)
    return prefill_s, timed(steps, sync)[0]


def measure_decode(kind: str, prompt: int, cfg: DecodeBenchConfig, device: torch.device) -> dict:
    model = untrained_lm(kind, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                         context=prompt + cfg.new_tokens, device=str(device)).eval()
    idx = torch.randint(0, model.config.vocab_size, (1, prompt), device=device)   # (1, P)
    sync = synchronizer(device.type)
    _generate(model, idx, 2, sync)                                                 # warm-up
    prefill, steps = zip(*(_generate(model, idx, cfg.new_tokens, sync) for _ in range(cfg.repeats)))
    steps_ms = summarize([s * 1e3 for s in steps])["ms"]             # medians
    return {"mixers": kind, "prompt": prompt, "new_tokens": cfg.new_tokens, "params": model.num_params(),
            "prefill_ms": summarize([s * 1e3 for s in prefill])["ms"],
            "ms_per_token": steps_ms / cfg.new_tokens, "tokens_per_s": cfg.new_tokens / (steps_ms / 1e3)}


def run_decode_bench(cfg: DecodeBenchConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    device = resolve_device(cfg.device)
    rows = []
    for prompt in tqdm(cfg.prompts, disable=not progress, desc="decode"):
        rows += [measure_decode(kind, prompt, cfg, device) for kind in cfg.mixers]
    env = environment(device.type)
    report = {"config": asdict(cfg), "device": str(device), "torch": env["torch"],
              "threads": env["threads"], "env": env, "rows": rows}
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "decode.json"), json.dumps(report, indent=2) + "\n")
    optional_plot("plot_decode", report, os.path.join(cfg.out, "decode.png"))
    return report


def format_decode(report: dict) -> str:
    kinds = list(dict.fromkeys(r["mixers"] for r in report["rows"]))
    by = {(r["mixers"], r["prompt"]): r for r in report["rows"]}
    head = ["prompt"] + [f"{k} tok/s" for k in kinds] + [f"{k} prefill ms" for k in kinds]
    rows = [[prompt] + [f"{by[(k, prompt)]['tokens_per_s']:.1f}" for k in kinds]
            + [f"{by[(k, prompt)]['prefill_ms']:.0f}" for k in kinds]
            for prompt in dict.fromkeys(r["prompt"] for r in report["rows"])]
    return "\n".join(markdown_table(head, rows))
