"""Long-context sampling speed: cached generation after prompts of 1K .. 32K tokens, batched.

For each prompt length P and batch size B, one :func:`~specmix.app.bench.ops.untrained_lm` per
model kind, with context ``P + new_tokens``, runs :meth:`SpecMixLM.prefill` on B prompts (the
prompts' forward plus building the per-layer states, timed once), then ``new_tokens``
greedy :meth:`SpecMixLM.step` calls for all B sequences together, timed ``repeats`` times,
each from a copy of the prefilled states. The kinds take turns repeat by repeat
(A B A B ...), so each repeat gives a ratio of the first kind's tokens/s to every other's
measured minutes apart at most; rows hold medians, ``ratios`` the median of those per-repeat
ratios (on these shared machines a run's speed drifts by 1.5x between minutes). Tokens/s
count every sequence's tokens; ``state_mb_per_seq`` is the decoding state's memory per
sequence (the states' ``batch_tensors``: KV caches, folded convolution inputs and buffers).
"""
from __future__ import annotations

import copy
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
        "help": "comma list of model kinds (one model per kind, all layers of it); hf-gpt2, hf-mamba, "
                "hf-rwkv: transformers' models, shaped to match the first kind's parameters (depth, then MLP width)"})
    prompts: tuple[int, ...] = field(default=(1024, 8192, 32768), metadata={"help": "comma list of prompt lengths"})
    batch: tuple[int, ...] = field(default=(1,), metadata={"help": "comma list of batch sizes (sequences decoded together)"})
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
        if not self.batch or min(self.batch) < 1:
            raise UsageError(f"--batch: expected integers >= 1, got {self.batch}")
        if self.d_model % self.n_heads:
            raise UsageError(f"--n-heads {self.n_heads} must divide --d-model {self.d_model}")
        from ...model import MixerKind
        from .peer_decode import PEER_KINDS
        for kind in self.mixers:
            if kind not in PEER_KINDS:
                MixerKind.parse(kind)
        if "hf-rwkv" in self.mixers and max(self.batch) > 1:
            raise UsageError("--mixers hf-rwkv decodes one sequence at a time (--batch 1): transformers' RWKV "
                             "broadcasts its one-token step wrongly at batch > 1 (its token-shift state is (B, D), "
                             "not (B, 1, D)), giving other logits")
        if self.mixers[0] in PEER_KINDS:
            raise UsageError(f"--mixers: the first kind must be a specmix one (the peers match its parameters), "
                             f"got {self.mixers[0]!r}")


def _steps(model, logits: torch.Tensor, states: list, start: int, new_tokens: int, sync) -> float:
    """Seconds of ``new_tokens`` greedy cached steps from ``states`` (updated in place)."""
    def steps():
        token = logits.argmax(-1)
        for pos in range(start, start + new_tokens):
            token = model.step(token, pos, states).argmax(-1)
    return timed(steps, sync)[0]


def state_bytes_per_sequence(states: list, batch: int) -> int:
    """Bytes of the decoding states' per-sequence tensors (each state's ``batch_tensors()``:
    KV caches, folded convolution inputs and buffers, pending short-conv sums), per sequence;
    a storage shared by several views counts once."""
    storages = {}
    for state in states:
        for t in state.batch_tensors():
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values()) // batch


def _row(kind: str, prompt: int, batch: int, model, prefill_s: float, steps_s: list[float], new_tokens: int,
         state_bytes: int) -> dict:
    steps_ms = summarize([s * 1e3 for s in steps_s])["ms"]             # medians
    return {"mixers": kind, "prompt": prompt, "batch": batch, "new_tokens": new_tokens, "params": model.num_params(),
            "n_layers": model.config.n_layers, "d_ff": getattr(model.config, "d_ff", None),
            "prefill_ms": prefill_s * 1e3, "ms_per_token": steps_ms / new_tokens,
            "tokens_per_s": batch * new_tokens / (steps_ms / 1e3), "state_mb_per_seq": state_bytes / 2**20,
            "steps_ms_per_repeat": [s * 1e3 for s in steps_s]}


def _models(cfg: DecodeBenchConfig, context: int, device: torch.device) -> dict:
    """One untrained model per kind; a transformers peer (``hf-*``) shaped to match the first
    kind's parameter count (:func:`~specmix.app.bench.peer_decode.matched_config`)."""
    from .peer_decode import PEER_KINDS, PeerDecoder, matched_config
    models = {}
    for kind in cfg.mixers:
        if kind in PEER_KINDS:
            first = models[cfg.mixers[0]]
            config = matched_config(kind, first.num_params(), vocab_size=first.config.vocab_size,
                                    d_model=cfg.d_model, n_heads=cfg.n_heads, context=context)
            models[kind] = PeerDecoder(config, device=device)
        else:
            models[kind] = untrained_lm(kind, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                        context=context, device=str(device), filter=cfg.filter).eval()
    return models


def measure_prompt(prompt: int, batch: int, cfg: DecodeBenchConfig, device: torch.device) -> tuple[list[dict], dict]:
    """Every kind at one prompt length and batch, their repeats alternating: the rows and, for
    each kind after the first, the median per-repeat ratio ``its step time / the first kind's``."""
    models = _models(cfg, prompt + cfg.new_tokens, device)
    gen = torch.Generator(device=device).manual_seed(0)
    idx = torch.randint(0, models[cfg.mixers[0]].config.vocab_size, (batch, prompt), device=device,
                        generator=gen)                                              # (B, P)
    sync = synchronizer(device.type)
    prefilled = {}
    for kind, model in models.items():
        warm_logits, warm_states = model.prefill(idx[:, :min(prompt, 64)])        # warm-up, short
        _steps(model, warm_logits, warm_states, min(prompt, 64), 2, sync)
        prefill_s, (logits, states) = timed(lambda: model.prefill(idx), sync)
        prefilled[kind] = (prefill_s, logits, states)
    times = {kind: [] for kind in models}                                          # steps s per repeat
    for _ in range(cfg.repeats):
        for kind, model in models.items():
            _, logits, states = prefilled[kind]
            times[kind].append(_steps(model, logits, copy.deepcopy(states), prompt, cfg.new_tokens, sync))
    rows = [_row(kind, prompt, batch, models[kind], prefilled[kind][0], times[kind], cfg.new_tokens,
                 state_bytes_per_sequence(prefilled[kind][2], batch)) for kind in models]
    first = times[cfg.mixers[0]]
    ratios = {kind: float(np.median([s / f for s, f in zip(times[kind], first)])) for kind in cfg.mixers[1:]}
    return rows, ratios


def run_decode_bench(cfg: DecodeBenchConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    device = resolve_device(cfg.device)
    rows, ratios = [], {}
    for prompt in tqdm(cfg.prompts, disable=not progress, desc="decode"):
        for batch in cfg.batch:
            key = str(prompt) if batch == 1 else f"{prompt}x{batch}"
            prompt_rows, ratios[key] = measure_prompt(prompt, batch, cfg, device)
            rows += prompt_rows
    env = environment(device.type)
    report = {"config": asdict(cfg), "device": str(device), "torch": env["torch"],
              "threads": env["threads"], "env": env, "rows": rows,
              "ratios": ratios}     # "P" or "PxB" -> kind -> median per-repeat (kind's time / first kind's)
    if any(k.startswith("hf-") for k in cfg.mixers):
        from .peer_decode import peer_versions
        report["peers"] = peer_versions(cfg.mixers)
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "decode.json"), json.dumps(report, indent=2) + "\n")
    optional_plot("plot_decode", report, os.path.join(cfg.out, "decode.png"))
    return report


def format_decode(report: dict) -> str:
    """Tokens/s (all sequences) and prefill per kind; then, per other kind, the first kind's
    speed-up over it (median of the per-repeat ratios, the figure to quote); with batches,
    one row per (prompt, batch) and the state's memory per sequence."""
    kinds = list(dict.fromkeys(r["mixers"] for r in report["rows"]))
    by = {(r["mixers"], r["prompt"], r.get("batch", 1)): r for r in report["rows"]}
    ratios = report.get("ratios", {})
    batched = any(r.get("batch", 1) > 1 for r in report["rows"])
    head = (["prompt"] + (["batch"] if batched else []) + [f"{k} tok/s" for k in kinds]
            + [f"{k} prefill ms" for k in kinds] + [f"{kinds[0]} speed-up over {k}" for k in kinds[1:] if ratios]
            + ([f"{k} state MB / sequence" for k in kinds] if batched else []))
    rows = []
    for prompt, batch in dict.fromkeys((r["prompt"], r.get("batch", 1)) for r in report["rows"]):
        key = str(prompt) if batch == 1 else f"{prompt}x{batch}"
        rows.append([prompt] + ([batch] if batched else [])
                    + [f"{by[(k, prompt, batch)]['tokens_per_s']:.1f}" for k in kinds]
                    + [f"{by[(k, prompt, batch)]['prefill_ms']:.0f}" for k in kinds]
                    + [f"{ratios[key][k]:.2f}x" for k in kinds[1:] if ratios]
                    + ([f"{by[(k, prompt, batch)]['state_mb_per_seq']:.1f}" for k in kinds] if batched else []))
    first = {k: by[(k, *next(iter(by))[1:])] for k in kinds}
    sizes = ", ".join(f"{k} {r['params'] / 1e6:.2f}M ({r.get('n_layers', '?')} layers"
                      + (f", MLP width {r['d_ff']})" if r.get("d_ff") else ")") for k, r in first.items())
    versions = "".join(f", {name} {v}" for name, v in report.get("peers", {}).items())
    return "\n".join(markdown_table(head, rows)) + (f"\n\nParameters at the first prompt: {sizes}{versions}."
                                                    if any(k.startswith("hf-") for k in kinds) else "")
