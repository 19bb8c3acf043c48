"""Long-context sampling speed: cached generation after prompts of 1K .. 32K tokens.

For each model kind and prompt length P, a freshly initialised SpecMixLM (same width and
depth for every kind, no position embedding, so the models differ only in their mixers)
with context ``P + new_tokens`` runs :meth:`SpecMixLM.decode` twice per repeat: once for 1
token (the prefill: the prompt's forward plus building the caches) and once for
``1 + new_tokens`` tokens. Their difference is the time of ``new_tokens`` cached steps.
Speed does not depend on the weights, so untrained models are measured.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

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


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name}: expected a comma list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--{name}: expected positive integers, got {text!r}")
    return values


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(kind: str, prompt: int, cfg: DecodeBenchConfig, device: torch.device) -> dict:
    torch.manual_seed(0)
    model_cfg = LMConfig(vocab_size=65, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                         context=prompt + cfg.new_tokens, mixers=kind, pos_emb="none")
    model = SpecMixLM(model_cfg).to(device).eval()
    idx = torch.randint(0, 65, (1, prompt), device=device)            # (1, P)
    greedy = lambda logits: logits.argmax(-1)                          # noqa: E731
    model.decode(idx, 2, greedy)                                       # warm-up
    prefill, total = [], []
    for _ in range(cfg.repeats):
        prefill.append(_timed(lambda: model.decode(idx, 1, greedy), device))
        total.append(_timed(lambda: model.decode(idx, 1 + cfg.new_tokens, greedy), device))
    steps_s = max(float(np.median(total)) - float(np.median(prefill)), 1e-9)
    return {"mixers": kind, "prompt": prompt, "new_tokens": cfg.new_tokens, "params": model.num_params(),
            "prefill_ms": float(np.median(prefill)) * 1e3, "ms_per_token": steps_s / cfg.new_tokens * 1e3,
            "tokens_per_s": cfg.new_tokens / steps_s}


def run_decode_bench(cfg: DecodeBenchConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    from .train import resolve_device
    kinds = [k.strip() for k in cfg.mixers.split(",") if k.strip()]
    for kind in kinds:
        parse_mixer(kind)
    prompts = _ints(cfg.prompts, "prompts")
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
