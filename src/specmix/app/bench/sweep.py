"""The scaling benchmark: time and peak memory of each op vs sequence length.

Every (op, n) runs in a fresh child process, so that one op's allocator state or a crash
cannot touch another's; the child times the op with the one harness of
:mod:`specmix.app.bench.harness`. Ops are swept from short to long; an op stops growing n
once one call takes longer than ``max_seconds`` (or would not fit in memory), and the
table says so.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from ...validation import UsageError, check_fields
from .harness import MALLOC_TUNE, environment, fresh_process_pool, measure, proc_kb
from .ops import LM_OPS, NUMPY_OPS, TORCH_OPS, OpSpec, memory_estimate_bytes, spectral_n_fft

DEFAULTS = {
    "numpy": dict(ops=NUMPY_OPS, lengths=(128, 256, 512, 1024, 2048, 4096), d_model=64,
                  dtype="float64", fit_range=(512, 16384)),
    "torch": dict(ops=TORCH_OPS, lengths=(256, 1024, 4096, 4099, 16384, 65536, 65537,
                                          262144, 1048576), d_model=256, dtype="float32",
                  fit_range=(4096, 1 << 20)),
    "lm": dict(ops=LM_OPS, lengths=(256, 1024, 4096, 8192, 16384, 32768, 65536), d_model=128,
               dtype="float32", fit_range=(4096, 65536)),
}


@dataclass(frozen=True)
class BenchConfig:
    """A sweep; ``None`` fields take the backend's defaults in :meth:`resolved`."""

    backend: Literal["numpy", "torch", "lm"] = field(default="torch", metadata={
        "help": "numpy (the published setup), torch (ops) or lm (whole models: --ops are mixer kinds)"})
    ops: tuple[str, ...] | None = field(default=None, metadata={
        "help": "comma list (lm: mixer kinds such as local:256); none = all of the backend"})
    lengths: tuple[int, ...] | None = field(default=None, metadata={"help": "comma list of n; none = backend default"})
    d_model: int | None = field(default=None, metadata={"help": "width; none = 64 (numpy), 256 (torch), 128 (lm)"})
    dtype: Literal["float32", "float64", "bfloat16"] | None = field(default=None, metadata={
        "help": "none = numpy float64, torch float32; bfloat16 (lm only): float32 weights under "
                "autocast, as specmix train --dtype bfloat16"})
    repeats: int = field(default=5, metadata={"help": "timed calls per config (fewer if slow)"})
    mode: Literal["forward", "train"] = field(default="forward", metadata={
        "help": "forward (inference) or train (fwd+bwd)"})
    n_heads: int = field(default=4, metadata={"help": "heads of the sdpa/local/layer ops and attention layers"})
    n_layers: int = field(default=4, metadata={"help": "layers of the lm backend's models"})
    batch_size: int = field(default=1, metadata={"help": "batch size"})
    window: int = field(default=256, metadata={"help": "window of the torch backend's local op"})
    max_seconds: float = field(default=20.0, metadata={"help": "stop growing n for an op after a call this slow"})
    device: Literal["auto", "cpu", "cuda"] = field(default="cpu", metadata={"help": "auto, cpu or cuda"})
    fit_range: tuple[int, ...] | None = field(default=None, metadata={
        "help": "lo,hi of the slope fit; none = backend default"})
    malloc_tune: bool = field(default=True, metadata={"help": "keep freed memory mapped in children (glibc)"})
    out: str = field(default="runs/bench", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"d_model": 1, "repeats": 1, "n_heads": 1, "n_layers": 1,
                                    "batch_size": 1, "window": 1, "max_seconds": 0.0})
        base = DEFAULTS[self.backend]
        if self.ops is not None:
            if self.backend == "lm":
                from ...model import MixerKind
                for op in self.ops:
                    MixerKind.parse(op)
            else:
                unknown = [o for o in self.ops if o not in base["ops"]]
                if unknown:
                    raise UsageError(f"--ops: unknown {self.backend} op(s) {unknown}; choose from {base['ops']}")
        if self.lengths is not None and (not self.lengths or min(self.lengths) < 1):
            raise UsageError(f"--lengths: expected integers >= 1, got {self.lengths}")
        fit = self.fit_range
        if fit is not None and (len(fit) != 2 or fit[0] >= fit[1]):
            raise UsageError(f"--fit-range: expected lo,hi with lo < hi, got {fit}")
        if (self.d_model or base["d_model"]) % self.n_heads:
            raise UsageError(f"--n-heads {self.n_heads} must divide --d-model {self.d_model or base['d_model']}")
        if self.dtype == "bfloat16" and self.backend != "lm":
            raise UsageError("--dtype bfloat16: only the lm backend runs under autocast; ops take float32 or float64")
        if self.backend == "numpy" and self.device != "cpu":
            raise UsageError("--device: the numpy backend runs on the CPU only")

    def resolved(self) -> "BenchConfig":
        """Every ``None`` filled from the backend's defaults and ``auto`` device resolved."""
        base = DEFAULTS[self.backend]
        device = self.device
        if device != "cpu":
            import torch
            if device == "cuda" and not torch.cuda.is_available():
                raise UsageError("--device cuda: no CUDA device is available")
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return replace(self, ops=self.ops or base["ops"],
                       lengths=tuple(sorted(set(self.lengths or base["lengths"]))),
                       d_model=self.d_model or base["d_model"], dtype=self.dtype or base["dtype"],
                       fit_range=self.fit_range or base["fit_range"], device=device)


# ----------------------------------------------------------------------------- child side
def run_one(spec: OpSpec, repeats: int, max_seconds: float) -> dict:
    """Build one op and time it with the harness (runs in a child process)."""
    if spec.backend == "numpy":
        from .ops import make_numpy_op
        fn = make_numpy_op(spec)
    else:
        from .ops import make_lm_op, make_torch_op
        fn = make_lm_op(spec) if spec.backend == "lm" else make_torch_op(spec)
    return measure(fn, device=spec.device, repeats=repeats, max_seconds=max_seconds)


# ----------------------------------------------------------------------------- parent side
def fit_slopes(rows: list[dict], fit: tuple[int, int]) -> dict[str, float]:
    """Least-squares slope of log(ms) against log(n) per op, over lo <= n <= hi."""
    slopes = {}
    for op in dict.fromkeys(r["op"] for r in rows):
        pts = [(r["n"], r["ms"]) for r in rows if r["op"] == op and fit[0] <= r["n"] <= fit[1]
               and r.get("ms") is not None]
        if len(pts) >= 2 and max(p[0] for p in pts) >= 2 * min(p[0] for p in pts):
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            slopes[op] = float(np.polyfit(x, y, 1)[0])
    return slopes


def _predict_ms(rows: list[dict], op: str, n: int) -> float:
    """Extrapolate an op's time to n by a power law through its last point and the last
    one at most half as long (slope clamped to [1, 3]); 0 when there is no such pair."""
    pts = sorted((r["n"], r["ms"]) for r in rows if r["op"] == op)
    if not pts:
        return 0.0
    n1, ms1 = pts[-1]
    earlier = [p for p in pts if 2 * p[0] <= n1]
    if not earlier:
        return 0.0
    n0, ms0 = earlier[-1]
    slope = min(3.0, max(1.0, math.log(ms1 / ms0) / math.log(n1 / n0)))
    return ms1 * (n / n1) ** slope


def run_sweep(cfg: BenchConfig, progress: bool = True) -> dict:
    """Run the whole sweep; returns ``{"env", "config", "results", "slopes", "fit_range"}``."""
    from tqdm.auto import tqdm

    cfg = cfg.resolved()
    ops, lengths, fit = cfg.ops, cfg.lengths, cfg.fit_range
    if cfg.malloc_tune:
        os.environ.update(MALLOC_TUNE)         # inherited by the spawned children
    available = proc_kb("MemAvailable", "/proc/meminfo")
    rows, stopped, pool = [], {}, fresh_process_pool()
    bar = tqdm(total=len(ops) * len(lengths), disable=not progress, desc=f"bench {cfg.backend}")
    try:
        for n in lengths:
            for op in ops:
                bar.update(1)
                if op in stopped:
                    continue
                spec = OpSpec(cfg.backend, op, n, cfg.d_model, cfg.batch_size, cfg.n_heads, cfg.window,
                              cfg.dtype, cfg.mode, cfg.device, cfg.n_layers)
                row = {"op": op, "backend": cfg.backend, "mode": cfg.mode, "n": n,
                       "d_model": cfg.d_model, "batch": cfg.batch_size}
                if cfg.backend != "lm" and op in ("spectral", "fft-floor", "spectral-layer"):
                    row["n_fft"] = spectral_n_fft(n, cfg.backend)
                if available and memory_estimate_bytes(spec) > 0.6 * available * 1024:
                    stopped[op] = f"stopped before n={n}: would not fit in memory"
                    continue
                predicted = _predict_ms(rows, op, n)
                if predicted > 4 * cfg.max_seconds * 1e3:
                    stopped[op] = (f"stopped before n={n}: one call would take about "
                                   f"{predicted / 1e3:.0f} s (power law through earlier lengths)")
                    continue
                bar.set_postfix_str(f"{op} n={n}")
                try:
                    row.update(pool.submit(run_one, spec, cfg.repeats, cfg.max_seconds).result())
                except (cf.process.BrokenProcessPool, MemoryError) as err:   # a killed child (e.g. out
                    # of memory): report it, stop this op; any other error is a bug and propagates
                    stopped[op] = f"stopped at n={n}: {type(err).__name__}: {err}"
                    pool.shutdown(cancel_futures=True)
                    pool = fresh_process_pool()
                    continue
                rows.append(row)
                if row["ms"] > cfg.max_seconds * 1e3:
                    stopped[op] = f"stopped after n={n}: one call took {row['ms'] / 1e3:.1f} s"
    finally:
        bar.close()
        pool.shutdown()
    report = {"env": environment(cfg.device, with_torch=cfg.backend != "numpy", malloc_tune=cfg.malloc_tune),
              "config": asdict(cfg), "results": rows,
              "slopes": fit_slopes(rows, fit), "fit_range": list(fit), "stopped": stopped}
    if cfg.backend == "numpy":
        from .report import PUBLISHED
        report["published"] = PUBLISHED
    return report
