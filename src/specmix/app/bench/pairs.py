"""Two ops or two lengths timed side by side: ratios that a shared machine's drift cannot fake.

The scaling sweep runs every (op, n) in its own child process, minutes apart, so on a shared
machine the ratio of two of its rows (4099 vs 4096, spectral vs fft-floor) carries the drift
between them. Here both sides of a pair, ``(op, base)`` and ``(against, neighbour)``, are
built in one process and timed in alternating rounds (A B, then B A, ...), so that a slow
minute hits both; the ratio is the median of the per-round ratios. Each pair runs in a fresh
child process with the sweep's allocator settings (``MALLOC_TUNE``), so that both benchmarks
time large calls alike (without them, glibc unmaps and re-faults every big buffer: an
unchunked rfft + irfft pair at 16K took twice as long).

When the two sides differ much in duration, a long call evicts the short one's data from
the caches before its next call; ``--calls K`` times each side in blocks of K calls per
round, the first only warming the caches, so that both are timed warm and still side by side.

``--backend lm`` pairs two whole language models instead (``specmix bench --backend lm``'s
step: forward, backward, the training CLI's AdamW), e.g. spectral-gated against attention
at one context: the LM step points of the performance issue, side by side.
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
from .harness import peak_memory_mb
from .ops import GATED_CEILING, TORCH_OPS, OpSpec, make_lm_op, make_torch_op
from .encoders import ENCODER_KINDS
from .peer_decode import PEER_KINDS, peer_versions
from .peers import PEER_OPS, fla_version


# bench's torch ops but its naive attention (the quadratic reference, not a contender), and
# whole-model kinds: specmix's LMs, the gated stack's ceiling, transformers' LMs and encoders
PAIR_TORCH_OPS = tuple(op for op in TORCH_OPS if op != "naive")
PAIR_LM_OPS = ("attention", "spectral", "spectral-gated", GATED_CEILING, *PEER_KINDS, *ENCODER_KINDS)
Op = Literal[tuple(dict.fromkeys(PAIR_TORCH_OPS + PAIR_LM_OPS))]   # either backend's; checked per backend
DEFAULT_WIDTH = {"torch": 256, "lm": 128}                   # d_model when --d-model is not given


@dataclass(frozen=True)
class PairBenchConfig:
    backend: Literal["torch", "lm"] = field(default="torch", metadata={
        "help": "torch: one op (d_model 256 by default); lm: a whole LM's training step (d_model 128)"})
    op: Op = field(default="spectral", metadata={
        "help": f"side A: a torch op {PAIR_TORCH_OPS} or, --backend lm, a mixer kind {PAIR_LM_OPS[:3]}, "
                f"{GATED_CEILING} (the gated stack with nothing mixed along N: its ceiling) or a transformers "
                f"LM {PEER_KINDS} shaped to match the spectral-gated LM's parameters, or a bidirectional "
                f"masked-LM encoder {ENCODER_KINDS} (swapped BERT, BERT, FNet; same width and depth)"})
    against: Op | None = field(default=None, metadata={"help": "the op of side B; none = --op"})
    bases: tuple[int, ...] = field(default=(4096, 65536), metadata={"help": "comma list of side A's lengths"})
    neighbours: tuple[int, ...] = field(default=(4099, 65537), metadata={
        "help": "comma list of side B's lengths, one per base"})
    mode: Literal["forward", "train"] = field(default="train", metadata={"help": "forward or train (fwd+bwd)"})
    d_model: int | None = field(default=None, metadata={"help": "channels; none = 256 (torch) or 128 (lm)"})
    batch: int = field(default=1, metadata={"help": "sequences per call (both sides)"})
    n_layers: int = field(default=4, metadata={"help": "--backend lm: layers of each model"})
    dtype: Literal["float32", "bfloat16"] = field(default="float32", metadata={
        "help": "--backend lm: float32, or bfloat16 autocast (the training CLI's)"})
    filter: Literal["frequency", "implicit"] = field(default="frequency", metadata={
        "help": "--backend lm: the spectral layers' filter (implicit: parameters independent of the length)"})
    rounds: int = field(default=31, metadata={"help": "alternating rounds (each times both sides)"})
    calls: int = field(default=1, metadata={
        "help": "calls of each side per round; above 1 the first of each block only warms the "
                "caches and the median of the rest is the round's time (each side timed warm)"})
    device: Literal["cpu", "cuda"] = field(default="cpu", metadata={"help": "cpu or cuda"})
    malloc_tune: bool = field(default=True, metadata={"help": "keep freed memory mapped in the child (glibc)"})
    out: str = field(default="runs/pairs", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"d_model": 1, "rounds": 1, "n_layers": 1, "calls": 1, "batch": 1})
        choices = PAIR_LM_OPS if self.backend == "lm" else PAIR_TORCH_OPS
        for name in ("op", "against"):
            if getattr(self, name) not in (*choices, None):
                raise UsageError(f"--{name}: --backend {self.backend} takes one of {choices}, "
                                 f"got {getattr(self, name)!r}")
        if self.backend == "torch" and self.dtype != "float32":
            raise UsageError("--dtype: only --backend lm runs bfloat16 (the torch ops run float32)")
        if len(self.bases) != len(self.neighbours) or not self.bases:
            raise UsageError(f"--neighbours: expected one length per base {self.bases}, got {self.neighbours}")
        if min(self.bases + self.neighbours) < 1:
            raise UsageError(f"--bases/--neighbours: expected lengths >= 1, got {self.bases}, {self.neighbours}")

    @property
    def width(self) -> int:
        """The channels used: ``d_model``, or the backend's default."""
        return self.d_model or DEFAULT_WIDTH[self.backend]


def _op(cfg: PairBenchConfig, op: str, n: int):
    spec = OpSpec(backend=cfg.backend, op=op, n=n, d_model=cfg.width, batch=cfg.batch, heads=4,
                  window=256, dtype=cfg.dtype, mode=cfg.mode, device=cfg.device, n_layers=cfg.n_layers,
                  filter=cfg.filter)
    return make_lm_op(spec) if cfg.backend == "lm" else make_torch_op(spec)


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
            block = [timed(calls[side], sync)[0] * 1e3 for _ in range(cfg.calls)]
            ms[side].append(float(np.median(block[1:] if cfg.calls > 1 else block)))
    ratios = np.array(ms[1]) / np.array(ms[0])
    peaks = [peak_memory_mb(fn, cfg.device, sync) for fn in calls]     # one warm call each
    params = {f"{side}_params": getattr(fn, "params", None) for side, fn in zip(("base", "neighbour"), calls)}
    return {"base_op": cfg.op, "base": base, "neighbour_op": b_op, "neighbour": neighbour, **params,
            "base_peak_mb": peaks[0], "neighbour_peak_mb": peaks[1],
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
    if {cfg.op, cfg.against} & set(PEER_OPS):
        report["peers"] = {"fla-core": fla_version()}
    if {cfg.op, cfg.against} & set(PEER_KINDS + ENCODER_KINDS):
        report["peers"] = peer_versions((cfg.op, cfg.against))
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_text(os.path.join(cfg.out, "pairs.json"), json.dumps(report, indent=2) + "\n")
    return report


def format_pairs(report: dict) -> str:
    cfg, env = report["config"], report["env"]
    head = ["A", "B", "A ms", "B ms", "B / A (median of rounds)", "range"]
    peaks = "base_peak_mb" in report["rows"][0] and report["rows"][0]["base_peak_mb"] is not None
    head += ["A peak MB", "B peak MB"] if peaks else []
    foreign = {cfg["op"], cfg.get("against")} & set(PEER_KINDS + ENCODER_KINDS)

    def side(r, which, op):                  # "op N", + parameters beside transformers' models
        params = r.get(f"{which}_params") if foreign else None
        return f"{r.get(f'{which}_op', op)} {r[which]}" + (f" ({params / 1e6:.2f}M)" if params else "")
    rows = [[side(r, "base", cfg["op"]), side(r, "neighbour", cfg["op"]),
             f"{r['base_ms']:.2f}", f"{r['neighbour_ms']:.2f}", f"{r['ratio']:.3f}",
             f"{r['ratio_min']:.2f} - {r['ratio_max']:.2f}"]
            + ([f"{r['base_peak_mb']:.0f}", f"{r['neighbour_peak_mb']:.0f}"] if peaks else [])
            for r in report["rows"]]
    versions = "".join(f", {k} {v}" for k, v in report.get("peers", {}).items())
    return ("\n".join(markdown_table(head, rows)) + "\n\n"
            f"{_what(cfg)}, batch {cfg.get('batch', 1)}, {cfg['rounds']} alternating rounds{_block(cfg)}; "
            f"{cpu_label(env)}, torch {env.get('torch')} with {env.get('threads')} threads{versions}.")


def _block(cfg: dict) -> str:
    calls = cfg.get("calls", 1)
    return "" if calls == 1 else f" of {calls} calls per side (the first untimed)"


def _what(cfg: dict) -> str:
    """What one call is, from a report's config (reports before ``--backend``: torch ops)."""
    backend = cfg.get("backend", "torch")
    width = cfg["d_model"] or DEFAULT_WIDTH[backend]
    if backend == "lm":
        mode = "one training step" if cfg["mode"] == "train" else "one forward"
        filt = f", {cfg['filter']} filter" if cfg.get("filter", "frequency") != "frequency" else ""
        ops = {cfg["op"], cfg.get("against")}
        peer = ("; transformers' LMs shaped to match the spectral-gated LM's parameters (depth, then MLP width)"
                if ops & set(PEER_KINDS) else "")
        if ops <= set(ENCODER_KINDS):
            return f"{mode} of {cfg['n_layers']}-layer masked-LM encoders, d_model {width}, {cfg['dtype']}"
        return f"{mode} of {cfg['n_layers']}-layer LMs, d_model {width}, {cfg['dtype']}{filt}{peer}"
    return f"{cfg['mode']}, d_model {width}, float32"
