"""Long-context sampling speed: cached generation after prompts of 1K .. 32K tokens.

For each prompt length P, one :func:`~specmix.app.bench.ops.untrained_lm` per model kind, with
context ``P + new_tokens``, runs :meth:`SpecMixLM.prefill` (the prompt's forward plus building
the per-layer states), then ``new_tokens`` greedy :meth:`SpecMixLM.step` calls; the two are
timed separately with the harness' clock. The kinds take turns repeat by repeat (A B A B ...),
so each repeat gives a ratio of the first kind's tokens/s to every other's measured minutes
apart at most; rows hold medians, ``ratios`` the median of those per-repeat ratios (on these
shared machines a run's speed drifts by 1.5x between minutes).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
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
    filter: Literal["frequency", "implicit"] = field(default="frequency", metadata={
        "help": "filter of the spectral layers (frequency: D x context parameters per layer)"})
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


def _row(kind: str, prompt: int, model, prefill_s: list[float], steps_s: list[float], new_tokens: int) -> dict:
    steps_ms = summarize([s * 1e3 for s in steps_s])["ms"]             # medians
    return {"mixers": kind, "prompt": prompt, "new_tokens": new_tokens, "params": model.num_params(),
            "prefill_ms": summarize([s * 1e3 for s in prefill_s])["ms"],
            "ms_per_token": steps_ms / new_tokens, "tokens_per_s": new_tokens / (steps_ms / 1e3),
            "steps_ms_per_repeat": [s * 1e3 for s in steps_s]}


def measure_prompt(prompt: int, cfg: DecodeBenchConfig, device: torch.device) -> tuple[list[dict], dict]:
    """Every kind at one prompt length, their repeats alternating: the rows and, for each
    kind after the first, the median per-repeat ratio ``its step time / the first kind's``."""
    models = {kind: untrained_lm(kind, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                 context=prompt + cfg.new_tokens, device=str(device),
                                 filter=cfg.filter).eval()
              for kind in cfg.mixers}
    idx = torch.randint(0, models[cfg.mixers[0]].config.vocab_size, (1, prompt), device=device)   # (1, P)
    sync = synchronizer(device.type)
    for model in models.values():
        _generate(model, idx, 2, sync)                                             # warm-up
    times = {kind: [] for kind in models}                                          # (prefill s, steps s)
    for _ in range(cfg.repeats):
        for kind, model in models.items():
            times[kind].append(_generate(model, idx, cfg.new_tokens, sync))
    rows = [_row(kind, prompt, models[kind], *zip(*times[kind]), cfg.new_tokens) for kind in models]
    first = [steps for _, steps in times[cfg.mixers[0]]]
    ratios = {kind: float(np.median([s / f for (_, s), f in zip(times[kind], first)]))
              for kind in cfg.mixers[1:]}
    return rows, ratios


def run_decode_bench(cfg: DecodeBenchConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    device = resolve_device(cfg.device)
    rows, ratios = [], {}
    for prompt in tqdm(cfg.prompts, disable=not progress, desc="decode"):
        prompt_rows, ratios[str(prompt)] = measure_prompt(prompt, cfg, device)
        rows += prompt_rows
    env = environment(device.type)
    report = {"config": asdict(cfg), "device": str(device), "torch": env["torch"],
              "threads": env["threads"], "env": env, "rows": rows,
              "ratios": ratios}     # prompt -> kind -> median per-repeat (kind's time / first kind's)
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "decode.json"), json.dumps(report, indent=2) + "\n")
    optional_plot("plot_decode", report, os.path.join(cfg.out, "decode.png"))
    return report


def format_decode(report: dict) -> str:
    """Tokens/s and prefill per kind; then, per other kind, the first kind's speed-up over it
    (median of the per-repeat ratios, the figure to quote)."""
    kinds = list(dict.fromkeys(r["mixers"] for r in report["rows"]))
    by = {(r["mixers"], r["prompt"]): r for r in report["rows"]}
    ratios = report.get("ratios", {})
    head = (["prompt"] + [f"{k} tok/s" for k in kinds] + [f"{k} prefill ms" for k in kinds]
            + [f"{kinds[0]} speed-up over {k}" for k in kinds[1:] if ratios])
    rows = [[prompt] + [f"{by[(k, prompt)]['tokens_per_s']:.1f}" for k in kinds]
            + [f"{by[(k, prompt)]['prefill_ms']:.0f}" for k in kinds]
            + [f"{ratios[str(prompt)][k]:.2f}x" for k in kinds[1:] if ratios]
            for prompt in dict.fromkeys(r["prompt"] for r in report["rows"])]
    return "\n".join(markdown_table(head, rows))
