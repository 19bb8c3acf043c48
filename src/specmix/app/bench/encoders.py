"""Bidirectional encoders side by side: transformers' BERT (SDPA attention), transformers' FNet
(a fixed 2-D Fourier transform in place of attention, no learned mixing) and the same BERT with
its self-attention swapped for spectral mixing (``swap_attention(causal=False)``: a learned
frequency filter along the sequence). Each is a ``*ForMaskedLM`` built from a config of one
width, depth and MLP width (4 x), positions learned up to ``context``.

- ``bench-pairs --backend lm --op enc-spectral --against enc-bert``: forward or training step
  (masked-LM loss, AdamW) of two of them, alternating (``make_encoder_op``).
- ``bench-mlm``: masked-character modelling on a corpus with the same wall-clock budget per
  encoder (:func:`run_mlm_bench`): BERT's masking (15% of positions; 80% of those become
  ``[MASK]``, 10% a random character, 10% stay), loss over the masked positions only.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ...io import atomic_write_text
from ...validation import UsageError, check_fields
from ..tables import markdown_table

__all__ = ["ENCODER_KINDS", "build_encoder", "mask_characters", "MLMBenchConfig", "run_mlm_bench",
           "format_mlm", "make_encoder_op"]

ENCODER_KINDS = ("enc-spectral", "enc-bert", "enc-fnet")
MASK_RATE, IGNORE = 0.15, -100


def build_encoder(kind: str, *, vocab: int, d_model: int, n_layers: int, n_heads: int, context: int,
                  dropout: float = 0.0) -> torch.nn.Module:
    """An untrained masked-LM encoder of ``kind`` (see the module docstring)."""
    import transformers
    if kind not in ENCODER_KINDS:
        raise ValueError(f"build_encoder: kind must be one of {ENCODER_KINDS}, got {kind!r}")
    torch.manual_seed(0)
    shape = dict(vocab_size=vocab, hidden_size=d_model, num_hidden_layers=n_layers, intermediate_size=4 * d_model,
                 max_position_embeddings=context, hidden_dropout_prob=dropout, type_vocab_size=1,
                 pad_token_id=None)
    if kind == "enc-fnet":
        return transformers.FNetForMaskedLM(transformers.FNetConfig(**shape))
    model = transformers.BertForMaskedLM(transformers.BertConfig(
        **shape, num_attention_heads=n_heads, attention_probs_dropout_prob=0.0, attn_implementation="sdpa"))
    if kind == "enc-spectral":
        from ...swap import swap_attention
        swap_attention(model, max_len=context, causal=False)
    return model


def mask_characters(tokens: torch.Tensor, vocab: int, mask_id: int, gen: torch.Generator) -> tuple:
    """BERT's masking of ``tokens`` (B, N): inputs (B, N) and labels (B, N), labels ``-100``
    outside the chosen 15% (at least one position per row)."""
    chosen = torch.rand(tokens.shape, generator=gen) < MASK_RATE                # (B, N)
    chosen[:, 0] |= ~chosen.any(1)
    roll = torch.rand(tokens.shape, generator=gen)
    inputs = tokens.clone()
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = torch.randint(0, vocab, (int(swap.sum()),), generator=gen)
    labels = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE))
    return inputs, labels


def make_encoder_op(kind: str, *, n: int, d_model: int, n_layers: int, batch: int, mode: str, dtype: str,
                    device: str):
    """One forward, or one training step (masked-LM loss, AdamW), of an untrained encoder on
    random characters at length ``n``; ``params`` on the returned function."""
    model = build_encoder(kind, vocab=66, d_model=d_model, n_layers=n_layers, n_heads=4, context=n).to(device)
    gen = torch.Generator().manual_seed(0)
    inputs, labels = mask_characters(torch.randint(0, 65, (batch, n), generator=gen), 65, 65, gen)
    inputs, labels = inputs.to(device), labels.to(device)
    precision = (lambda: torch.autocast(torch.device(device).type, dtype=torch.bfloat16)) \
        if dtype == "bfloat16" else contextlib.nullcontext
    if mode != "train":
        model.eval().requires_grad_(False)

        def forward():
            with precision():
                return model(input_ids=inputs).logits
        fn = forward
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            with precision():
                loss = model(input_ids=inputs, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        fn = step
    fn.params = sum(p.numel() for p in model.parameters())
    return fn


@dataclass(frozen=True)
class MLMBenchConfig:
    kinds: tuple[str, ...] = field(default=ENCODER_KINDS, metadata={"help": f"comma list of {ENCODER_KINDS}"})
    data: str | None = field(default=None, metadata={"help": "UTF-8 text file; omitted = the default corpus"})
    seconds: float = field(default=240.0, metadata={"help": "training budget of each encoder (wall clock)"})
    d_model: int = field(default=128, metadata={"help": "width of every encoder"})
    n_layers: int = field(default=4, metadata={"help": "depth of every encoder"})
    n_heads: int = field(default=4, metadata={"help": "BERT's attention heads"})
    context: int = field(default=256, metadata={"help": "characters per sequence"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW peak lr (warmup 50 steps, cosine to 0.1x over the budget)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on embeddings and residual branches"})
    eval_every: int = field(default=100, metadata={"help": "steps between evaluations"})
    eval_batches: int = field(default=16, metadata={"help": "fixed val batches per evaluation"})
    seed: int = field(default=1337, metadata={"help": "seed of init, data order and masking"})
    out: str = field(default="runs/mlm", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"seconds": 0.0, "d_model": 1, "n_layers": 1, "n_heads": 1, "context": 2,
                                    "batch_size": 1, "lr": 0.0, "dropout": 0.0, "eval_every": 1,
                                    "eval_batches": 1})
        for kind in self.kinds:
            if kind not in ENCODER_KINDS:
                raise UsageError(f"--kinds: expected some of {ENCODER_KINDS}, got {kind!r}")
        if self.d_model % self.n_heads:
            raise UsageError(f"--n-heads {self.n_heads} must divide --d-model {self.d_model}")


def _masked_batch(tokens: np.ndarray, cfg: MLMBenchConfig, vocab: int, rng: np.random.Generator,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = rng.integers(0, len(tokens) - cfg.context, cfg.batch_size)
    rows = torch.from_numpy(np.stack([tokens[s:s + cfg.context] for s in starts]).astype(np.int64))   # (B, N)
    return mask_characters(rows, vocab, vocab, gen)


@torch.no_grad()
def _val_loss(model, tokens: np.ndarray, cfg: MLMBenchConfig, vocab: int) -> float:
    rng, gen = np.random.default_rng(cfg.seed + 2), torch.Generator().manual_seed(cfg.seed + 2)
    model.eval()
    losses = []
    for _ in range(cfg.eval_batches):
        inputs, labels = _masked_batch(tokens, cfg, vocab, rng, gen)
        losses.append(float(model(input_ids=inputs, labels=labels).loss))
    model.train()
    return float(np.mean(losses))


def train_encoder(kind: str, cfg: MLMBenchConfig, data) -> dict:
    """Train one encoder for ``cfg.seconds``; its val curve (masked positions' mean loss)."""
    vocab = data.vocab_size
    model = build_encoder(kind, vocab=vocab + 1, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                          context=cfg.context, dropout=cfg.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.01)
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    curve, step, start = [], 0, time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        progress = min(1.0, elapsed / cfg.seconds) if cfg.seconds else 1.0
        peak = cfg.lr * min(1.0, (step + 1) / 50)
        for group in opt.param_groups:
            group["lr"] = peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
        inputs, labels = _masked_batch(data.train, cfg, vocab, rng, gen)
        model(input_ids=inputs, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        done = time.perf_counter() - start >= cfg.seconds
        if step % cfg.eval_every == 0 or done:
            curve.append({"step": step, "minutes": (time.perf_counter() - start) / 60,
                          "val_loss": _val_loss(model, data.val, cfg, vocab)})
        if done:
            break
    return {"kind": kind, "params": sum(p.numel() for p in model.parameters()), "steps": step,
            "best_val": min(c["val_loss"] for c in curve), "final_val": curve[-1]["val_loss"],
            "tokens_seen": step * cfg.batch_size * cfg.context, "curve": curve}


def run_mlm_bench(cfg: MLMBenchConfig, progress: bool = True) -> dict:
    import transformers

    from ...data.batches import TokenData
    from .harness import environment
    data = TokenData.load(cfg.data, cfg.context)
    runs = []
    for kind in cfg.kinds:
        if progress:
            print(f"{kind}: {cfg.seconds:.0f} s of masked-character training", flush=True)
        runs.append(train_encoder(kind, cfg, data))
    report = {"config": asdict(cfg), "corpus": data.name, "env": environment("cpu"),
              "transformers": transformers.__version__, "runs": runs}
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "mlm.json"), json.dumps(report, indent=2) + "\n")
    return report


def format_mlm(report: dict) -> str:
    cfg = report["config"]
    head = ["encoder", "params", "steps", "tokens seen", "best val (masked chars)", "final val"]
    rows = [[r["kind"], r["params"], r["steps"], f"{r['tokens_seen'] / 1e6:.1f}M", f"{r['best_val']:.4f}",
             f"{r['final_val']:.4f}"] for r in report["runs"]]
    return ("\n".join(markdown_table(head, rows)) + "\n\n"
            f"{cfg['n_layers']} layers, d_model {cfg['d_model']}, context {cfg['context']}, batch {cfg['batch_size']}, "
            f"{cfg['seconds'] / 60:.1f} minutes each on {report['corpus']}, float32; transformers "
            f"{report['transformers']}.")
