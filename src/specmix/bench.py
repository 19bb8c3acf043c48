"""The scaling benchmark: time and peak memory of each op vs sequence length.

Every (op, n) runs in a fresh child process, so that one op's allocator state or a crash
cannot touch another's: the child warms the op up, measures its peak resident memory over
one call (Linux ``VmHWM`` after a reset, minus the resident size just before), then times
``repeats`` calls (median, min, max). On CUDA it synchronises and reads the allocator's
peak instead. Ops are swept from short to long; an op stops growing n once one call takes
longer than ``max_seconds`` (or would not fit in memory), and the table says so.
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import json
import math
import multiprocessing
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .bench_ops import LM_OPS, NUMPY_OPS, TORCH_OPS, OpSpec, memory_estimate_bytes, spectral_n_fft
from .flags import parse_int_list

# The note's table: "CPU / NumPy, single block", d_model 64.
PUBLISHED = {
    "n": [128, 256, 512, 1024, 2048, 4096],
    "attention": [2.39, 2.83, 4.18, 9.58, 29.35, 106.21],
    "spectral": [0.24, 0.47, 0.96, 1.92, 3.88, 9.50],
}
# glibc keeps freed memory for reuse instead of unmapping it (no first-touch page faults
# on every call); applied to every op's child process alike, recorded in the env.
MALLOC_TUNE = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}


@dataclass
class BenchConfig:
    backend: str = field(default="torch", metadata={"help": "numpy (the published setup), torch (ops) "
                                                    "or lm (whole models: --ops are mixer kinds)",
                                                    "choices": ["numpy", "torch", "lm"]})
    ops: str = field(default="", metadata={"help": "comma list; empty = all of the backend"})
    lengths: str = field(default="", metadata={"help": "comma list of n; empty = backend default"})
    d_model: int = field(default=0, metadata={"help": "width; 0 = 64 (numpy) or 256 (torch)"})
    dtype: str = field(default="", metadata={"help": "float32/float64; empty = numpy float64, torch float32"})
    repeats: int = field(default=5, metadata={"help": "timed calls per config (fewer if slow)"})
    mode: str = field(default="forward", metadata={"help": "forward (inference) or train (fwd+bwd)",
                                                   "choices": ["forward", "train"]})
    heads: int = field(default=4, metadata={"help": "heads of the sdpa/local/layer ops"})
    n_layers: int = field(default=4, metadata={"help": "layers of the lm backend's models"})
    batch: int = field(default=1, metadata={"help": "batch size"})
    window: int = field(default=256, metadata={"help": "window of the local op"})
    max_seconds: float = field(default=20.0, metadata={"help": "stop growing n for an op after a call this slow"})
    device: str = field(default="cpu", metadata={"help": "auto, cpu or cuda", "choices": ["auto", "cpu", "cuda"]})
    fit_range: str = field(default="", metadata={"help": "lo,hi of the slope fit; empty = backend default"})
    malloc_tune: bool = field(default=True, metadata={"help": "keep freed memory mapped in children (glibc)"})
    out: str = field(default="runs/bench", metadata={"help": "output folder"})


DEFAULTS = {
    "numpy": dict(ops=NUMPY_OPS, lengths=(128, 256, 512, 1024, 2048, 4096), d_model=64,
                  dtype="float64", fit=(512, 16384)),
    "torch": dict(ops=TORCH_OPS, lengths=(256, 1024, 4096, 4099, 16384, 65536, 65537,
                                          262144, 1048576), d_model=256, dtype="float32",
                  fit=(4096, 1 << 20)),
    "lm": dict(ops=LM_OPS, lengths=(256, 1024, 4096, 8192, 16384, 32768, 65536), d_model=128,
               dtype="float32", fit=(4096, 65536)),
}


def resolve(cfg: BenchConfig) -> tuple[BenchConfig, tuple[str, ...], tuple[int, ...], tuple[int, int]]:
    """Fill backend defaults and validate; raises ValueError naming the flag."""
    base = DEFAULTS[cfg.backend]
    ops = tuple(o.strip() for o in cfg.ops.split(",") if o.strip()) or base["ops"]
    unknown = [o for o in ops if o not in base["ops"]]
    if unknown:
        raise ValueError(f"--ops: unknown {cfg.backend} op(s) {unknown}; choose from {base['ops']}")
    lengths = tuple(sorted(set(parse_int_list(cfg.lengths, "lengths")))) if cfg.lengths else base["lengths"]
    fit = parse_int_list(cfg.fit_range, "fit-range") if cfg.fit_range else base["fit"]
    if len(fit) != 2 or fit[0] >= fit[1]:
        raise ValueError(f"--fit-range: expected lo,hi with lo < hi, got {cfg.fit_range!r}")
    device = cfg.device
    if device == "auto" or device == "cuda":
        import torch
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available")
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.backend == "numpy" and device != "cpu":
        raise ValueError("--device: the numpy backend runs on the CPU only")
    if cfg.n_layers < 1:
        raise ValueError(f"--n-layers must be >= 1, got {cfg.n_layers}")
    if cfg.heads < 1 or (cfg.d_model or base["d_model"]) % cfg.heads:
        raise ValueError(f"--heads must divide --d-model, got {cfg.heads}")
    if cfg.dtype not in ("", "float32", "float64"):
        raise ValueError(f"--dtype: expected float32 or float64, got {cfg.dtype!r}")
    cfg = replace(cfg, d_model=cfg.d_model or base["d_model"], dtype=cfg.dtype or base["dtype"],
                  device=device)
    return cfg, ops, lengths, (fit[0], fit[1])


# ----------------------------------------------------------------------------- child side
def _proc_kb(key: str, path: str = "/proc/self/status") -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                       # resets VmHWM to the current VmRSS
        return True
    except OSError:
        return False


def run_one(spec: OpSpec, repeats: int, max_seconds: float) -> dict:
    """Build, warm up, measure peak memory, then time one op (runs in a child process)."""
    if spec.backend == "numpy":
        from .bench_ops import make_numpy_op
        fn, sync = make_numpy_op(spec), (lambda: None)
    else:
        import torch

        from .bench_ops import make_lm_op, make_torch_op
        fn = make_lm_op(spec) if spec.backend == "lm" else make_torch_op(spec)
        sync = torch.cuda.synchronize if spec.device == "cuda" else (lambda: None)
    start = time.perf_counter()
    peak_mb = _measure_peak_mb(spec, fn, sync)                 # the first call: also a warm-up
    first = time.perf_counter() - start
    if first > max_seconds:       # too slow to repeat: one-time costs are noise at this size
        return {"ms": first * 1e3, "ms_min": first * 1e3, "ms_max": first * 1e3,
                "repeats": 1, "peak_mb": peak_mb}
    fn()
    sync()                                                     # warm-up: plans, caches, pages
    peak_mb = _measure_peak_mb(spec, fn, sync)
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    n_calls = max(1, min(repeats, int(2 * max_seconds / max(first, 1e-9))))
    times = []
    for _ in range(n_calls):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return {"ms": float(np.median(times)), "ms_min": min(times), "ms_max": max(times),
            "repeats": n_calls, "peak_mb": peak_mb}


def _measure_peak_mb(spec: OpSpec, fn, sync) -> float | None:
    if spec.device == "cuda":
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        sync()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    if not _reset_peak_rss():
        return None
    before = _proc_kb("VmRSS")
    fn()
    peak = _proc_kb("VmHWM")
    return None if before is None or peak is None else max(peak - before, 0) / 1024


# ----------------------------------------------------------------------------- parent side
def environment(cfg: BenchConfig) -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(),
           "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "numpy": np.__version__,
           "numpy_fft": "pocketfft (numpy.fft)", "malloc_tune": MALLOC_TUNE if cfg.malloc_tune else None,
           "device": cfg.device}
    if cfg.backend != "numpy":
        import torch
        env.update(torch=torch.__version__, threads=torch.get_num_threads(),
                   torch_fft="cuFFT" if cfg.device == "cuda" else
                   ("MKL" if torch.backends.mkl.is_available() else "pocketfft"))
        if cfg.device == "cuda":
            env["gpu"] = torch.cuda.get_device_name()
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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


def _new_pool(cfg: BenchConfig) -> cf.ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1)


def run_sweep(cfg: BenchConfig, progress: bool = True) -> dict:
    """Run the whole sweep; returns ``{"env", "config", "results", "slopes", "fit_range"}``."""
    from tqdm.auto import tqdm

    cfg, ops, lengths, fit = resolve(cfg)
    if cfg.malloc_tune:
        os.environ.update(MALLOC_TUNE)         # inherited by the spawned children
    available = _proc_kb("MemAvailable", "/proc/meminfo")
    rows, stopped, pool = [], {}, _new_pool(cfg)
    bar = tqdm(total=len(ops) * len(lengths), disable=not progress, desc=f"bench {cfg.backend}")
    try:
        for n in lengths:
            for op in ops:
                bar.update(1)
                if op in stopped:
                    continue
                spec = OpSpec(cfg.backend, op, n, cfg.d_model, cfg.batch, cfg.heads, cfg.window,
                              cfg.dtype, cfg.mode, cfg.device, cfg.n_layers)
                row = {"op": op, "backend": cfg.backend, "mode": cfg.mode, "n": n,
                       "d_model": cfg.d_model, "batch": cfg.batch}
                if op in ("spectral", "fft-floor", "spectral-layer"):
                    row["n_fft"] = spectral_n_fft(n)
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
                except Exception as err:   # a crashed or killed child: report, stop this op
                    stopped[op] = f"stopped at n={n}: {type(err).__name__}: {err}"
                    pool.shutdown(cancel_futures=True)
                    pool = _new_pool(cfg)
                    continue
                rows.append(row)
                if row["ms"] > cfg.max_seconds * 1e3:
                    stopped[op] = f"stopped after n={n}: one call took {row['ms'] / 1e3:.1f} s"
    finally:
        bar.close()
        pool.shutdown()
    report = {"env": environment(cfg), "config": asdict(cfg), "results": rows,
              "slopes": fit_slopes(rows, fit), "fit_range": list(fit), "stopped": stopped}
    if cfg.backend == "numpy":
        report["published"] = PUBLISHED
    return report


def ms_of(report: dict, op: str, n: int) -> float | None:
    for r in report["results"]:
        if r["op"] == op and r["n"] == n:
            return r["ms"]
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def write_outputs(report: dict, out_dir: str) -> list[str]:
    """Write bench.json, bench.csv and bench_scaling_loglog.png atomically; return the paths."""
    from .io import atomic_write_text
    from .plots import plot_scaling

    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name in ("bench.json", "bench.csv",
                                                      "bench_scaling_loglog.png")]
    atomic_write_text(paths[0], json.dumps(report, indent=2) + "\n")
    cols = ["op", "backend", "mode", "n", "d_model", "batch", "ms", "ms_min", "ms_max",
            "peak_mb", "repeats", "n_fft"]
    lines = [",".join(cols)] + [",".join("" if r.get(c) is None else str(r.get(c)) for c in cols)
                                for r in report["results"]]
    atomic_write_text(paths[1], "\n".join(lines) + "\n")
    plot_scaling(report, paths[2])
    return paths


def format_report(report: dict) -> str:
    """Markdown tables of a report (the CLI prints them; the README embeds them)."""
    backend = report["config"]["backend"]
    lines = {"numpy": _numpy_table, "torch": _torch_table, "lm": _lm_table}[backend](report)
    slopes = ", ".join(f"{op} {s:.2f}" for op, s in report["slopes"].items())
    lo, hi = report["fit_range"]
    lines += ["", f"Fitted log-log slopes over n = {lo}..{hi}: {slopes or '-'}"]
    lines += [f"- {op}: {why}" for op, why in report.get("stopped", {}).items()]
    return "\n".join(lines)


def _numpy_table(report: dict) -> list[str]:
    lines = ["| n | attention ms (published) | attention ms (ours) | spectral ms (published) "
             "| spectral ms (ours, causal exact) | circular ms (ours, the note's operator) "
             "| ratio attention/spectral (published) | ratio (ours) |",
             "|---|---|---|---|---|---|---|---|"]
    for n in sorted({r["n"] for r in report["results"]}):
        pub = PUBLISHED["n"].index(n) if n in PUBLISHED["n"] else None
        pa = PUBLISHED["attention"][pub] if pub is not None else None
        ps = PUBLISHED["spectral"][pub] if pub is not None else None
        a, s = ms_of(report, "attention", n), ms_of(report, "spectral", n)
        c = ms_of(report, "spectral-circular", n)
        lines.append(f"| {n} | {fmt(pa)} | {fmt(a)} | {fmt(ps)} | {fmt(s)} | {fmt(c)} "
                     f"| {fmt(ratio(pa, ps), '.1f')} | {fmt(ratio(a, s), '.1f')} |")
    return lines


def _torch_table(report: dict) -> list[str]:
    ops = list(dict.fromkeys(r["op"] for r in report["results"]))
    mem = {(r["op"], r["n"]): r.get("peak_mb") for r in report["results"]}
    head = ["n"] + [f"{op} ms" for op in ops] + ["spectral / fft-floor", "sdpa / spectral",
                                                  "spectral MB", "sdpa MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sorted({r["n"] for r in report["results"]}):
        cells = [str(n)] + [fmt(ms_of(report, op, n)) for op in ops]
        spec = ms_of(report, "spectral", n)
        cells += [fmt(ratio(spec, ms_of(report, "fft-floor", n))),
                  fmt(ratio(ms_of(report, "sdpa", n), spec), ".1f"),
                  fmt(mem.get(("spectral", n)), ".0f"), fmt(mem.get(("sdpa", n)), ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _lm_table(report: dict) -> list[str]:
    """Tokens/s and peak MB per stack, and attention's time over each spectral stack's."""
    ops = list(dict.fromkeys(r["op"] for r in report["results"]))
    by = {(r["op"], r["n"]): r for r in report["results"]}
    spectral = [op for op in ops if op.startswith("spectral")]
    head = (["n"] + [f"{op} tok/s" for op in ops] + [f"{op} MB" for op in ops]
            + [f"attention / {op}" for op in spectral])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sorted({r["n"] for r in report["results"]}):
        rows = [by.get((op, n)) for op in ops]
        cells = [str(n)] + [fmt(r and r["batch"] * n / (r["ms"] / 1e3), ".0f") for r in rows]
        cells += [fmt(r and r.get("peak_mb"), ".0f") for r in rows]
        cells += [fmt(ratio(ms_of(report, "attention", n), ms_of(report, op, n)), ".1f") for op in spectral]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
