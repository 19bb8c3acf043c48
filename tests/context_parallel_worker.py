"""Run under ``torchrun``: a context-parallel forward/backward of a small SpecMixLM against the
single-process run of the same model and batch, computed on every rank. Writes the largest
deviations to ``$CP_OUT/rank{R}.json``; the test reads them."""
from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from specmix.model import LMConfig, SpecMixLM
from specmix.sharding import SequenceShard


def full_and_sharded(cfg: LMConfig, seq_len: int, shard: SequenceShard) -> dict:
    torch.manual_seed(0)
    model = SpecMixLM(cfg).double()
    idx = torch.randint(0, cfg.vocab_size, (2, seq_len + 1))
    x, y = idx[:, :-1], idx[:, 1:]
    _, loss = model(x, y)
    loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    n = seq_len // shard.world
    part = slice(shard.index * n, (shard.index + 1) * n)
    logits, local = model(x[:, part], y[:, part], shard=shard)
    (local / shard.world).backward()            # equal slices: the global mean is the mean of slice means
    got_loss = shard.all_reduce(local.detach() / shard.world)
    full_logits = model(x)[0][:, part]
    worst = 0.0
    for name, p in model.named_parameters():
        g = shard.all_reduce(p.grad.clone())
        worst = max(worst, float((g - want[name]).abs().max() / want[name].abs().max().clamp_min(1e-30)))
    return {"loss": float(abs(got_loss - loss.detach())), "grad": worst,
            "logits": float((logits - full_logits).abs().max())}


def main() -> None:
    dist.init_process_group("gloo")
    shard = SequenceShard.of_group()
    results = {}
    for name, mixers, filt, head_dim in [("spectral", ("spectral",), "frequency", 1),
                                         ("gated-implicit", ("spectral-gated",), "implicit", 1),
                                         ("gated-heads", ("spectral-gated", "spectral"), "frequency", 2)]:
        cfg = LMConfig(vocab_size=11, d_model=8, n_layers=2, context=24, mixers=mixers,
                       filter=filt, head_dim=head_dim, mlp_ratio=2.0)
        results[name] = full_and_sharded(cfg, int(sys.argv[1]), shard)
    with open(os.path.join(os.environ["CP_OUT"], f"rank{dist.get_rank()}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
