"""Long-context sampling speed: cached generation after prompts of 1K .. 32K tokens.

For each model kind and prompt length P, a freshly initialised SpecMixLM (same width and
depth for every kind, no position embedding, so the models differ only in their mixers)
with context ``P + new_tokens`` runs :meth:`SpecMixLM.prefill` (the prompt's forward plus
building the caches), then ``new_tokens`` greedy :meth:`SpecMixLM.step` calls; the two are
timed separately, median over repeats. Speed does not depend on the weights, so untrained
models are measured.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .flags import parse_int_list
from .io import atomic_write_text
from .model import LMConfig, SpecMixLM, parse_mixer


@dataclass
class DecodeBenchConfig:
    mixers: str = field(default="spectral-gated,attention", metadata={"help": "comma list of model kinds"})
    prompts: str = field(default="1024,8192,32768", metadata={"help": "comma list of prompt lengths"})
    new_tokens: int = field(default=128, metadata={"help": "tokens generated after each prompt"})
    d_model: int = field(default=128, metadata={"help": "width of every model"})
    n_layers: int = field(default=4, metadata={"help": "depth of every model"})
    n_heads: int = field(default=4, metadata={"help": "heads of attention layers"})
    repeats: int = field(default=3, metadata={"help": "timed repeats (median)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda", "choices": ["auto", "cpu", "cuda"]})
    out: str = field(default="runs/decode", metadata={"help": "output folder"})


def _generate(model: SpecMixLM, idx: torch.Tensor, new_tokens: int, device) -> tuple[float, float]:
    """Seconds of the prefill and of ``new_tokens`` greedy cached steps after it."""
    start = time.perf_counter()
    logits, states = model.prefill(idx)
    token = logits.argmax(-1)
    _sync(device)
    prefill_s = time.perf_counter() - start
    start = time.perf_counter()
    for pos in range(idx.shape[1], idx.shape[1] + new_tokens):
        token = model.step(token, pos, states).argmax(-1)
    _sync(device)
    return prefill_s, time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(kind: str, prompt: int, cfg: DecodeBenchConfig, device: torch.device) -> dict:
    torch.manual_seed(0)
    model_cfg = LMConfig(vocab_size=65, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                         context=prompt + cfg.new_tokens, mixers=kind, pos_emb="none")
    model = SpecMixLM(model_cfg).to(device).eval()
    idx = torch.randint(0, 65, (1, prompt), device=device)            # (1, P)
    _generate(model, idx, 2, device)                                  # warm-up
    prefill, steps = zip(*(_generate(model, idx, cfg.new_tokens, device) for _ in range(cfg.repeats)))
    steps_s = float(np.median(steps))
    return {"mixers": kind, "prompt": prompt, "new_tokens": cfg.new_tokens, "params": model.num_params(),
            "prefill_ms": float(np.median(prefill)) * 1e3, "ms_per_token": steps_s / cfg.new_tokens * 1e3,
            "tokens_per_s": cfg.new_tokens / steps_s}


def run_decode_bench(cfg: DecodeBenchConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    from .train import resolve_device
    kinds = [k.strip() for k in cfg.mixers.split(",") if k.strip()]
    for kind in kinds:
        parse_mixer(kind)
    prompts = parse_int_list(cfg.prompts, "prompts")
    if cfg.new_tokens < 1 or cfg.repeats < 1:
        raise ValueError("--new-tokens and --repeats must be >= 1")
    if cfg.d_model % cfg.n_heads:
        raise ValueError(f"--n-heads {cfg.n_heads} must divide --d-model {cfg.d_model}")
    device = resolve_device(cfg.device)
    rows = []
    for prompt in tqdm(prompts, disable=not progress, desc="decode"):
        rows += [measure(kind, prompt, cfg, device) for kind in kinds]
    report = {"config": asdict(cfg), "device": str(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "rows": rows}
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "decode.json"), json.dumps(report, indent=2) + "\n")
    try:
        from .plots import plot_decode
        plot_decode(report, os.path.join(cfg.out, "decode.png"))
    except ImportError:            # matplotlib is an optional extra
        pass
    return report


def format_decode(report: dict) -> str:
    kinds = list(dict.fromkeys(r["mixers"] for r in report["rows"]))
    head = ["prompt"] + [f"{k} tok/s" for k in kinds] + [f"{k} prefill ms" for k in kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["mixers"], r["prompt"]): r for r in report["rows"]}
    for prompt in dict.fromkeys(r["prompt"] for r in report["rows"]):
        cells = [str(prompt)] + [f"{by[(k, prompt)]['tokens_per_s']:.1f}" for k in kinds]
        cells += [f"{by[(k, prompt)]['prefill_ms']:.0f}" for k in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
