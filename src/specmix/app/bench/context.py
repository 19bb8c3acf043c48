"""Context-parallel training step: per-rank peak memory and step time, 1 .. P processes.

One training step (forward, backward, gradient all-reduce) of one sequence of N tokens,
split over P processes (:mod:`specmix.app.context_parallel`). Every (N, P) runs in fresh
processes (``torchrun`` for P > 1): ``python -m specmix.app.bench.context worker ...`` on each
rank writes its row, ``... report`` gathers the rows into ``context.json`` and a table.

Peak memory is the harness' CPU measure (``VmHWM`` after a reset, minus the resident size
before the step) of each rank; the table shows the largest rank. Processes of one machine
share its memory and cores: threads per process are ``cores / P`` (at least 1), so the
step time shows the cost of the exchanges, not a speed-up. The communication volume per
rank and step comes from the formula of :func:`comm_bytes`.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time

import torch

from ...io import atomic_write_text
from ...model import LMConfig, SpecMixLM
from ..tables import fmt, markdown_table
from .harness import environment, peak_memory_mb, proc_kb, synchronizer

__all__ = ["bench_model_config", "comm_bytes", "format_context", "main"]


def bench_model_config(seq_len: int, d_model: int, n_layers: int) -> LMConfig:
    """The benchmark's model: gated spectral layers with the length-free implicit filter (a
    frequency filter would hold d_model x N parameters, replicated on every rank)."""
    return LMConfig(vocab_size=65, d_model=d_model, n_layers=n_layers, context=seq_len,
                    mixers=("spectral-gated",), filter="implicit")


def comm_bytes(cfg: LMConfig, seq_len: int, parts: int, n_params: int, batch: int = 1) -> dict:
    """Bytes one rank sends per training step (float32), by the formula:

    * per gated spectral layer, forward: the long convolution's input ``(B, D h, n)`` out and
      its output back, plus the implicit kernel ``(D, n)`` out; backward: the same three the
      other way; each all-to-all sends ``(P - 1) / P`` of the local tensor;
    * the short-conv halo: ``(B, 3D, 2)`` forward and back per layer;
    * the gradient all-reduce (ring): ``2 (P - 1) / P`` of the parameters.
    """
    if parts == 1:
        return {"all_to_all": 0, "halo": 0, "all_reduce": 0, "total": 0}
    n, share = seq_len // parts, (parts - 1) / parts
    width = cfg.d_model * cfg.head_dim
    a2a = cfg.n_layers * 2 * (2 * batch * width * n + cfg.d_model * n) * share * 4
    halo = cfg.n_layers * 2 * batch * 3 * cfg.d_model * 2 * 4
    reduce = 2 * share * n_params * 4
    return {"all_to_all": a2a, "halo": halo, "all_reduce": reduce, "total": a2a + halo + reduce}


def _train_step(model: SpecMixLM, x: torch.Tensor, y: torch.Tensor, sharded) -> None:
    model.zero_grad(set_to_none=True)
    if sharded is None:
        model(x, y)[1].backward()
        return
    loss = sharded(x, y)[1]
    loss.backward()
    sharded.sync(loss.detach(), data_world=1)


def worker(args) -> None:
    import torch.distributed as dist
    from ..context_parallel import ContextParallel
    from ..runtime import Dist

    parts = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // parts))
    place = Dist.from_env(parts)
    if parts > 1:
        place.join(torch.device("cpu"))
    torch.manual_seed(0)
    cfg = bench_model_config(args.seq_len, args.d_model, args.n_layers)
    model = SpecMixLM(cfg)
    sharded = ContextParallel(model, place.context_shard()) if parts > 1 else None
    idx = torch.randint(0, cfg.vocab_size, (1, args.seq_len + 1))
    x, y = idx[:, :-1], idx[:, 1:]
    barrier = dist.barrier if parts > 1 else (lambda: None)
    step = lambda: _train_step(model, x, y, sharded)             # noqa: E731
    barrier()
    peak_mb = peak_memory_mb(step, "cpu", synchronizer("cpu"))   # the first step: also the warm-up
    times = []
    for _ in range(args.repeats):
        barrier()
        start = time.perf_counter()
        step()
        barrier()
        times.append(time.perf_counter() - start)
    row = {"seq_len": args.seq_len, "processes": parts, "rank": place.rank, "peak_mb": peak_mb,
           "process_peak_mb": (proc_kb("VmHWM") or 0) / 1024, "step_s": sorted(times)[len(times) // 2],
           "threads": torch.get_num_threads(), "params": model.num_params(),
           "comm": comm_bytes(cfg, args.seq_len, parts, model.num_params())}
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, f"row-{args.seq_len}-{parts}-{place.rank}.json"), json.dumps(row))
    place.leave()


def report(args) -> None:
    """Gather the per-rank rows of ``args.out``: one record per (N, P), the largest rank's peak."""
    rows = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(args.out, "row-*.json")))]
    cells: dict[tuple[int, int], dict] = {}
    for r in rows:   # the largest rank: what each process of a machine must hold
        key = (r["seq_len"], r["processes"])
        old = cells.get(key, r)
        cells[key] = dict(max(old, r, key=lambda c: c["peak_mb"] or 0), step_s=max(old["step_s"], r["step_s"]))
    records = []
    for (n, p), r in sorted(cells.items()):
        single = cells.get((n, 1))
        ratio = r["peak_mb"] / single["peak_mb"] if single and single["peak_mb"] and r["peak_mb"] else None
        records.append(dict(r, peak_vs_one=ratio))
    result = {"rows": records, "env": environment("cpu")}
    atomic_write_text(os.path.join(args.out, "context.json"), json.dumps(result, indent=2) + "\n")
    print(format_context(result))


def format_context(result: dict) -> str:
    """The README table of :func:`report`'s ``context.json``."""
    table = []
    for r in result["rows"]:
        n = r["seq_len"]
        table.append([f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n), r["processes"], r["threads"],
                      fmt(r["peak_mb"], ".0f"), fmt(r["peak_vs_one"], ".2f"), fmt(r["process_peak_mb"], ".0f"),
                      fmt(r["step_s"], ".2f"), fmt(r["comm"]["total"] / 2**20, ".0f")])
    header = ["tokens", "processes", "threads each", "step peak MB (largest rank)", "vs 1 process",
              "process peak MB", "step s", "sent MB / rank / step (formula)"]
    env = result["env"]
    return (f"{env['cpu']} ({env['cpu_count']} cores), torch {env['torch']}, gloo; one machine's "
            f"processes share its memory and cores.\n\n" + "\n".join(markdown_table(header, table)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m specmix.app.bench.context")
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("worker", help="one (N, P) cell; run under torchrun for P > 1")
    w.add_argument("--seq-len", type=int, required=True)
    w.add_argument("--d-model", type=int, default=32)
    w.add_argument("--n-layers", type=int, default=2)
    w.add_argument("--repeats", type=int, default=1)
    w.add_argument("--out", required=True)
    r = sub.add_parser("report", help="gather the rows of --out into context.json and table.md")
    r.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    (worker if args.what == "worker" else report)(args)


if __name__ == "__main__":
    main()
