"""Two ops or two lengths timed side by side: ratios that a shared machine's drift cannot fake.

The scaling sweep runs every (op, n) in its own child process, minutes apart, so on a shared
machine the ratio of two of its rows (4099 vs 4096, spectral vs fft-floor) carries the drift
between them. Here both sides of a pair, ``(op, base)`` and ``(against, neighbour)``, are
built in one process and timed in alternating rounds (A B, then B A, ...), so that a slow
minute hits both; the ratio is the median of the per-round ratios. Each pair runs in a fresh
child process with the sweep's allocator settings (``MALLOC_TUNE``), so that both benchmarks
time large calls alike (without them, glibc unmaps and re-faults every big buffer: an
unchunked rfft + irfft pair at 16K took twice as long).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from ...io import atomic_write_text
from ...validation import UsageError, check_fields
from ..tables import markdown_table
from .harness import MALLOC_TUNE, cpu_label, environment, fresh_process_pool, synchronizer, timed
from .ops import OpSpec, make_torch_op


Op = Literal["sdpa", "local", "spectral", "fft-floor", "sdpa-layer", "spectral-layer"]


@dataclass(frozen=True)
class PairBenchConfig:
    op: Op = field(default="spectral", metadata={
        "help": "the torch op of side A (as in specmix bench --backend torch)"})
    against: Op | None = field(default=None, metadata={"help": "the op of side B; none = --op"})
    bases: tuple[int, ...] = field(default=(4096, 65536), metadata={"help": "comma list of side A's lengths"})
    neighbours: tuple[int, ...] = field(default=(4099, 65537), metadata={
        "help": "comma list of side B's lengths, one per base"})
    mode: Literal["forward", "train"] = field(default="train", metadata={"help": "forward or train (fwd+bwd)"})
    d_model: int = field(default=256, metadata={"help": "channels"})
    rounds: int = field(default=31, metadata={"help": "alternating rounds (each times both sides once)"})
    device: Literal["cpu", "cuda"] = field(default="cpu", metadata={"help": "cpu or cuda"})
    malloc_tune: bool = field(default=True, metadata={"help": "keep freed memory mapped in the child (glibc)"})
    out: str = field(default="runs/pairs", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"d_model": 1, "rounds": 1})
        if len(self.bases) != len(self.neighbours) or not self.bases:
            raise UsageError(f"--neighbours: expected one length per base {self.bases}, got {self.neighbours}")
        if min(self.bases + self.neighbours) < 1:
            raise UsageError(f"--bases/--neighbours: expected lengths >= 1, got {self.bases}, {self.neighbours}")


def _op(cfg: PairBenchConfig, op: str, n: int):
    return make_torch_op(OpSpec(backend="torch", op=op, n=n, d_model=cfg.d_model, batch=1, heads=4,
                                window=256, dtype="float32", mode=cfg.mode, device=cfg.device))


def measure_pair(cfg: PairBenchConfig, base: int, neighbour: int) -> dict:
    """Median ms of each side and the median per-round ratio B / A, A = (op, base) and
    B = (against, neighbour)."""
    sync = synchronizer(cfg.device)
    b_op = cfg.against or cfg.op
    calls = (_op(cfg, cfg.op, base), _op(cfg, b_op, neighbour))
    for fn in calls:                                            # warm-up: plans, caches, pages
        for _ in range(2):
            timed(fn, sync)
    ms = ([], [])
    for r in range(cfg.rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            ms[side].append(timed(calls[side], sync)[0] * 1e3)
    ratios = np.array(ms[1]) / np.array(ms[0])
    return {"base_op": cfg.op, "base": base, "neighbour_op": b_op, "neighbour": neighbour,
            "base_ms": float(np.median(ms[0])), "neighbour_ms": float(np.median(ms[1])),
            "ratio": float(np.median(ratios)), "ratio_min": float(ratios.min()),
            "ratio_max": float(ratios.max()), "rounds": cfg.rounds}


def run_pair_bench(cfg: PairBenchConfig) -> dict:
    import torch

    from ..runtime import resolve_device
    resolve_device(cfg.device)                                  # --device cuda without CUDA: a usage error
    if cfg.malloc_tune:
        os.environ.update(MALLOC_TUNE)         # inherited by the spawned children
    rows = []
    for base, neighbour in zip(cfg.bases, cfg.neighbours):
        with fresh_process_pool() as pool:
            rows.append(pool.submit(measure_pair, cfg, base, neighbour).result())
    env = environment(cfg.device, malloc_tune=cfg.malloc_tune)
    report = {"config": asdict(cfg), "torch": torch.__version__, "env": env, "rows": rows}
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "pairs.json"), json.dumps(report, indent=2) + "\n")
    return report


def format_pairs(report: dict) -> str:
    cfg, env = report["config"], report["env"]
    head = ["A", "B", "A ms", "B ms", "B / A (median of rounds)", "range"]
    rows = [[f"{r.get('base_op', cfg['op'])} {r['base']}", f"{r.get('neighbour_op', cfg['op'])} {r['neighbour']}",
             f"{r['base_ms']:.2f}", f"{r['neighbour_ms']:.2f}", f"{r['ratio']:.3f}",
             f"{r['ratio_min']:.2f} - {r['ratio_max']:.2f}"] for r in report["rows"]]
    return ("\n".join(markdown_table(head, rows)) + "\n\n"
            f"{cfg['mode']}, d_model {cfg['d_model']}, batch 1, float32, {cfg['rounds']} "
            f"alternating rounds; {cpu_label(env)}, torch {env.get('torch')} with {env.get('threads')} threads.")
