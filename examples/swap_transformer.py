"""Swap the self-attention of a plain PyTorch transformer LM for spectral mixing.

A small causal char LM built from ``nn.TransformerEncoder`` (causal mask) is trained on a
corpus as is, then a fresh copy (same seed, same data order) is trained after
``specmix.swap_attention``. Both val losses and step times are printed and saved.

    python examples/swap_transformer.py --data ../shared/data/tinyshakespeare.txt \
        --out benchmarks/results/swap
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from specmix import swap_attention
from specmix.data.batches import TokenData
from specmix.io import atomic_write_text


class TorchLM(nn.Module):
    """Token + position embedding -> nn.TransformerEncoder (pre-norm, causal) -> head."""

    def __init__(self, vocab: int, d_model: int, n_layers: int, context: int):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=4 * d_model,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx):
        n = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(n, device=idx.device))      # (B, N, D)
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=idx.device)
        return self.head(self.encoder(x, mask=mask, is_causal=True))         # (B, N, V)


def run(model, data, args, label):
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for step in range(args.steps):
        x, y = data.batch("train", args.batch_size, args.context, rng, torch.device("cpu"))
        loss = loss_fn(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step_ms = (time.perf_counter() - start) / args.steps * 1e3
    model.eval()
    val_rng = np.random.default_rng(args.seed + 1)
    with torch.no_grad():
        val = float(np.mean([loss_fn(model(x).flatten(0, 1), y.flatten()).item()
                             for x, y in (data.batch("val", args.batch_size, args.context, val_rng,
                                                     torch.device("cpu")) for _ in range(20))]))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{label:28s} val loss {val:.3f}   {step_ms:6.1f} ms/step   {n_params} params")
    return {"model": label, "val_loss": val, "ms_per_step": step_ms, "params": n_params}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="UTF-8 text (default: the shakespeare corpus)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/swap")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data = TokenData.load(args.data, args.context)
    results = []
    torch.manual_seed(args.seed)
    model = TorchLM(data.tokenizer.vocab_size, args.d_model, args.n_layers, args.context)
    results.append(run(model, data, args, "nn.TransformerEncoder"))
    torch.manual_seed(args.seed)
    model = TorchLM(data.tokenizer.vocab_size, args.d_model, args.n_layers, args.context)
    names = swap_attention(model, max_len=args.context, gated=True)
    print(f"swap_attention replaced {names}")
    results.append(run(model, data, args, "after swap_attention"))
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "swap.json"),
                      json.dumps({"config": vars(args), "corpus": data.name, "results": results}, indent=2))


if __name__ == "__main__":
    main()
