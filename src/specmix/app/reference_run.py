"""``specmix reference``: train the NumPy reference LM, its no-mixing ablation, and the exact
bigram baseline; write ``reference.json`` and ``reference_loss.png``.

``run_reference(cfg)`` returns the metrics. NumPy only: neither this module nor what it
imports loads torch (a test checks it in a subprocess).
"""
from __future__ import annotations

import math
import time
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from ..data.corpus import CharTokenizer, load_corpus, sample_batch, split_tokens
from ..io import atomic_write_text
from ..reference.model import Adam, RefModelConfig, backward, forward, init_params
from ..validation import check_fields
from .plots import optional_plot
from .tables import markdown_table


@dataclass(frozen=True)
class RefTrainConfig:
    data: str | None = field(default=None, metadata={"help": "UTF-8 text file; omitted = the default corpus"})
    steps: int = field(default=500, metadata={"help": "Adam steps per model"})
    context: int = field(default=64, metadata={"help": "sequence length N (also the filter's max_len)"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    d_model: int = field(default=64, metadata={"help": "width D"})
    n_layers: int = field(default=1, metadata={"help": "spectral blocks"})
    lr: float = field(default=1e-2, metadata={"help": "peak Adam learning rate (warmup, then cosine to 10%)"})
    seed: int = field(default=0, metadata={"help": "seed of init and data order"})
    eval_every: int = field(default=100, metadata={"help": "steps between evaluations"})
    eval_batches: int = field(default=8, metadata={"help": "fixed batches per evaluation"})
    dtype: Literal["float32", "float64"] = field(default="float32", metadata={
        "help": "float32 or float64 (gradient checks use float64)"})
    out: str = field(default="runs/reference", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={name: 1 for name in ("steps", "context", "batch_size", "d_model",
                                                         "n_layers", "eval_every", "eval_batches")})


def get_lr(step: int, cfg: RefTrainConfig, warmup: int = 20) -> float:
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0))))


def bigram_loss(train: np.ndarray, val: np.ndarray, vocab_size: int, alpha: float = 1.0) -> float:
    """Exact val cross-entropy (nats/char) of the add-``alpha`` bigram table counted on train."""
    counts = np.full((vocab_size, vocab_size), alpha)
    np.add.at(counts, (train[:-1], train[1:]), 1.0)
    logp = np.log(counts / counts.sum(1, keepdims=True))
    return float(-logp[val[:-1], val[1:]].mean())


def _fixed_batches(tokens, cfg: RefTrainConfig, seed: int):
    rng = np.random.default_rng(seed)
    return [sample_batch(tokens, cfg.batch_size, cfg.context, rng) for _ in range(cfg.eval_batches)]


def _evaluate(params, batches, mcfg) -> float:
    return float(np.mean([forward(params, x, y, mcfg)[0] for x, y in batches]))


def train_one(cfg: RefTrainConfig, train, val, vocab_size: int, mixing: bool, progress: bool) -> dict:
    """Train one model; returns its curve and final losses."""
    from tqdm.auto import tqdm

    mcfg = RefModelConfig(vocab_size, cfg.d_model, cfg.context, cfg.n_layers, mixing=mixing,
                          dtype=cfg.dtype)
    params = init_params(mcfg, np.random.default_rng(cfg.seed))
    opt, rng = Adam(params, cfg.lr), np.random.default_rng(cfg.seed + 1)
    train_eval, val_eval = _fixed_batches(train, cfg, 1000), _fixed_batches(val, cfg, 2000)
    curve = [(0, _evaluate(params, train_eval, mcfg), _evaluate(params, val_eval, mcfg))]
    bar = tqdm(range(cfg.steps), disable=not progress, desc="spectral" if mixing else "no mixing")
    for step in bar:
        x, y = sample_batch(train, cfg.batch_size, cfg.context, rng)
        loss, caches = forward(params, x, y, mcfg)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss diverged at step {step}: {loss}")
        opt.step(params, backward(params, caches, mcfg), lr=get_lr(step, cfg))
        bar.set_postfix(loss=f"{loss:.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            curve.append((step + 1, _evaluate(params, train_eval, mcfg), _evaluate(params, val_eval, mcfg)))
            if progress:
                bar.write(f"  step {step + 1:4d}  train {curve[-1][1]:.4f}  val {curve[-1][2]:.4f}")
    return {"curve": curve, "initial_loss": curve[0][2], "final_train_loss": curve[-1][1],
            "final_val_loss": curve[-1][2]}


def run_reference(cfg: RefTrainConfig, progress: bool = True) -> dict:
    text, name = load_corpus(cfg.data)
    tok = CharTokenizer.from_text(text)
    train, val = split_tokens(tok.encode(text))
    start = time.perf_counter()
    spectral = train_one(cfg, train, val, tok.vocab_size, mixing=True, progress=progress)
    ablation = train_one(cfg, train, val, tok.vocab_size, mixing=False, progress=progress)
    return {
        "corpus": name, "vocab_size": tok.vocab_size, "config": asdict(cfg), "steps": cfg.steps,
        "initial_loss": spectral["initial_loss"], "final_train_loss": spectral["final_train_loss"],
        "final_val_loss": spectral["final_val_loss"],
        "bigram_val_loss": bigram_loss(train, val, tok.vocab_size),
        "no_mixing_val_loss": ablation["final_val_loss"],
        "seconds": time.perf_counter() - start,
        "loss_curve": [{"step": s, "train": a, "val": b} for s, a, b in spectral["curve"]],
        "no_mixing_curve": [{"step": s, "train": a, "val": b} for s, a, b in ablation["curve"]],
    }


def write_reference(result: dict, out: str) -> list[str]:
    """``reference.json`` and (with matplotlib) ``reference_loss.png`` in ``out``; the paths."""
    os.makedirs(out, exist_ok=True)
    json_path = os.path.join(out, "reference.json")
    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    png_path = os.path.join(out, "reference_loss.png")
    return [json_path] + ([png_path] if optional_plot("plot_reference", result, png_path) else [])


def format_reference(r: dict) -> str:
    rows = [("initial loss (val)", r["initial_loss"]),
            ("final train loss", r["final_train_loss"]),
            ("final val loss (spectral)", r["final_val_loss"]),
            ("val loss without mixing (identity ablation)", r["no_mixing_val_loss"]),
            ("exact bigram val loss (add-1 counts on train)", r["bigram_val_loss"])]
    lines = markdown_table(["metric", "nats/char"], [[k, f"{v:.3f}"] for k, v in rows])
    cfg = r["config"]
    lines += ["", f"{r['steps']} steps, d_model {cfg['d_model']}, context {cfg['context']}, "
              f"batch {cfg['batch_size']}, corpus {r['corpus']}; both models trained in "
              f"{r['seconds']:.0f} s. Mixing gain: {r['no_mixing_val_loss'] - r['final_val_loss']:.3f} nats."]
    return "\n".join(lines)
