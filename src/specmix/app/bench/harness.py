"""The one timing harness of every benchmark: warm-up, device sync, median / min / max,
peak memory of one call, and the environment record.

Peak memory on CPU is Linux ``VmHWM`` after a reset (``/proc/self/clear_refs``) minus the
resident size just before the call; on CUDA the allocator's peak minus what was allocated
before. Benchmarks run each configuration in a fresh child process, so that one op's
allocator state cannot touch another's (see :mod:`specmix.app.bench.sweep`).
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import platform
import time
from typing import Callable

import numpy as np

__all__ = ["MALLOC_TUNE", "fresh_process_pool", "synchronizer", "timed", "summarize", "peak_memory_mb", "measure",
           "environment", "proc_kb"]

# glibc keeps freed memory for reuse instead of unmapping it (no first-touch page faults
# on every call); applied to every benchmark child process alike, recorded in the env.
MALLOC_TUNE = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}


def fresh_process_pool() -> cf.ProcessPoolExecutor:
    """One worker, spawned (no forked allocator or thread state), a new process per task:
    where every benchmark configuration runs, so that none sees another's heap."""
    ctx = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1)


def synchronizer(device: str) -> Callable[[], None]:
    """What to call before reading the clock: CUDA work is asynchronous."""
    if device == "cuda":
        import torch
        return torch.cuda.synchronize
    return lambda: None


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, object]:
    """``(seconds, result)`` of one call of ``fn``, synchronised."""
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


def summarize(times_ms: list[float]) -> dict:
    """``{ms (median), ms_min, ms_max, repeats}`` of a list of times in ms."""
    return {"ms": float(np.median(times_ms)), "ms_min": float(min(times_ms)),
            "ms_max": float(max(times_ms)), "repeats": len(times_ms)}


def proc_kb(key: str, path: str = "/proc/self/status") -> int | None:
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


def peak_memory_mb(fn: Callable[[], object], device: str, sync: Callable[[], None]) -> float | None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        sync()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    if not _reset_peak_rss():
        return None
    before = proc_kb("VmRSS")
    fn()
    peak = proc_kb("VmHWM")
    return None if before is None or peak is None else max(peak - before, 0) / 1024


def measure(fn: Callable[[], object], *, device: str, repeats: int, max_seconds: float) -> dict:
    """The protocol of every timed op: a first call (peak memory, warm-up); if it took longer
    than ``max_seconds`` that one time is the result; else one more warm-up, peak memory of a
    warm call, then up to ``repeats`` timed calls (fewer when slow). Median, min, max in ms."""
    sync = synchronizer(device)
    start = time.perf_counter()
    peak_mb = peak_memory_mb(fn, device, sync)                 # the first call: also a warm-up
    first = time.perf_counter() - start
    if first > max_seconds:       # too slow to repeat: one-time costs are noise at this size
        return summarize([first * 1e3]) | {"peak_mb": peak_mb}
    timed(fn, sync)                                            # warm-up: plans, caches, pages
    peak_mb = peak_memory_mb(fn, device, sync)
    first = timed(fn, sync)[0]
    n_calls = max(1, min(repeats, int(2 * max_seconds / max(first, 1e-9))))
    times = [timed(fn, sync)[0] * 1e3 for _ in range(n_calls)]
    return summarize(times) | {"peak_mb": peak_mb}


def environment(device: str, *, with_torch: bool = True, malloc_tune: bool = False) -> dict:
    """Where and when a benchmark ran: date (UTC), Python, platform, CPU, NumPy, and torch's
    threads and FFT."""
    env = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "python": platform.python_version(), "platform": platform.platform(),
           "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "numpy": np.__version__,
           "numpy_fft": "pocketfft (numpy.fft)", "malloc_tune": MALLOC_TUNE if malloc_tune else None,
           "device": device}
    if with_torch:
        import torch
        env.update(torch=torch.__version__, threads=torch.get_num_threads(),
                   cpu_capability=torch.backends.cpu.get_cpu_capability(),   # AVX2 / AVX512: the
                   # shared hosts differ, and without AVX-512 bfloat16 GEMMs are emulated (~80x slower)
                   torch_fft="cuFFT" if device == "cuda" else
                   ("MKL" if torch.backends.mkl.is_available() else "pocketfft"))
        if device == "cuda":
            env["gpu"] = torch.cuda.get_device_name()
    return env


def cpu_label(env: dict) -> str:
    """``"AMD EPYC AVX2"``: the CPU model and, where recorded, torch's CPU capability."""
    return " ".join(filter(None, (env.get("cpu"), env.get("cpu_capability"))))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
