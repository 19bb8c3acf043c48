"""Training: ``train(model_cfg, train_cfg) -> metrics``, with exact resume and atomic checkpoints.

Files in ``out``: ``checkpoints/`` (each checkpoint one unit, see :mod:`specmix.app.checkpoint`
and :mod:`specmix.app.run_folder`), and reading copies ``config.json``, ``metrics.jsonl``
(one JSON object per evaluation) and ``loss.png``. One run owns ``out`` at a time (a kernel
lock); every argument is checked before anything is written; a non-finite loss stops the run
(:class:`Diverged`) with the last finite checkpoint kept.
An interrupted run resumed with ``resume=True`` produces the same metrics as one that was
never interrupted (same seed): the data order's generator state is part of the checkpoint.
Neither config is mutated: what the data resolves (the vocabulary) comes back as a new config.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..data.batches import TaskData, TokenData, load_data
from ..data.corpus import CharTokenizer
from ..data.tasks import IGNORE
from ..model import LMConfig, SpecMixLM
from ..validation import UsageError, check_fields
from .checkpoint import check_same_run, config_record, find_checkpoint, load_config, load_state, load_trained_model
from .checkpoint_store import remove_leftovers
from . import fsdp
from .context_parallel import ContextParallel, check_context_parallel
from .evaluate import evaluate
from .peer_lm import PeerConfig, PeerLM
from .optim import describe_groups, get_lr, make_optimizer, muon_momentum  # noqa: F401  (get_lr: tests patch it here)
from .precision import Precision, resolve_precision
from .run_folder import Diverged, RunFolder, check_finite_loss, check_out_folder, clear_run  # noqa: F401
from .run_lock import RunLock
from .runtime import Dist, resolve_device


@dataclass(frozen=True)
class TrainConfig:
    """How to train; validated on construction. The sequence length is ``LMConfig.context``."""

    data: str | None = field(default=None, metadata={"help": "UTF-8 text file; omitted = the default corpus 'shakespeare'"})
    task: Literal["lm", "recall", "copy", "mqar"] = field(default="lm", metadata={
        "help": "lm (next character of --data) or a synthetic task"})
    task_vocab: int = field(default=30, metadata={"help": "vocabulary of --task recall/copy/mqar"})
    kv_pairs: int = field(default=4, metadata={"help": "--task mqar: key-value pairs per sequence"})
    target_acc: float | None = field(default=None, metadata={
        "help": "synthetic tasks: stop (evaluate, save) once the val accuracy over scored positions "
                "reaches this (none = never)"})
    steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW; Muon matches its RMS)"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "the schedule ends at lr * this"})
    warmup: int = field(default=50, metadata={"help": "linear warmup steps"})
    schedule: Literal["cosine", "wsd"] = field(default="cosine", metadata={
        "help": "cosine decay after warmup, or wsd: the peak until the last --cooldown of the run, then linear"})
    cooldown: float = field(default=0.4, metadata={"help": "--schedule wsd: fraction of the run spent decaying"})
    optimizer: Literal["adamw", "muon"] = field(default="adamw", metadata={
        "help": "adamw, or muon: torch.optim.Muon on the hidden 2D matrices, AdamW on the rest"})
    weight_decay: float = field(default=0.1, metadata={"help": "weight decay on matrices"})
    filter_weight_decay: float = field(default=0.0, metadata={"help": "weight decay on filter parameters"})
    filter_lr: float | None = field(default=None, metadata={
        "help": "cap on the filter parameters' learning rate (none = the schedule's)"})
    grad_clip: float | None = field(default=1.0, metadata={"help": "max gradient norm (none = off)"})
    eval_every: int = field(default=100, metadata={"help": "steps between evaluations + checkpoints"})
    eval_batches: int = field(default=20, metadata={"help": "fixed batches per evaluation"})
    seed: int = field(default=1337, metadata={"help": "seed of init and data order"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    out: str = field(default="runs/train", metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue from the checkpoint in --out"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace the run in --out (without it, a folder that holds a run is refused)"})
    stop_at: int | None = field(default=None, metadata={"help": "save and stop after this step (none = run to --steps)"})
    time_limit: float | None = field(default=None, metadata={
        "help": "end (evaluate, save) at the first step after this many seconds of training; the cosine "
                "schedule then ends at --steps or --time-limit, whichever comes first (none = no limit)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches of --batch-size per optimizer step "
                                                 "(effective batch = batch_size x grad_accum)"})
    dtype: Literal["float32", "bfloat16", "float16"] | None = field(default=None, metadata={
        "help": "autocast compute dtype (FFTs stay float32); none = float32 on CPU, bfloat16 on CUDA "
                "(float16 with a GradScaler where CUDA lacks bfloat16)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model for training steps"})
    context_parallel: int = field(default=1, metadata={
        "help": "processes that share each sequence (spectral layers only; under torchrun, "
                "world = data-parallel groups x this)"})
    fsdp: bool = field(default=False, metadata={
        "help": "under torchrun: shard parameters, gradients and optimizer states over the processes "
                "(FSDP2 per block; checkpoints hold full tensors)"})

    # fields a resumed run must share with its checkpoint (the rest may change between runs)
    SAME_RUN = ("data", "task", "task_vocab", "steps", "batch_size", "lr", "min_lr_ratio", "warmup",
                "weight_decay", "grad_clip", "eval_every", "eval_batches", "seed", "grad_accum", "kv_pairs",
                "schedule", "cooldown", "optimizer", "filter_weight_decay", "filter_lr")

    def __post_init__(self) -> None:
        check_fields(self, minimum={"task_vocab": 2, "steps": 1, "batch_size": 1, "lr": 0.0, "min_lr_ratio": 0.0,
                                    "warmup": 0, "weight_decay": 0.0, "grad_clip": 0.0, "eval_every": 1,
                                    "eval_batches": 1, "stop_at": 1, "time_limit": 0.0, "grad_accum": 1,
                                    "kv_pairs": 1, "target_acc": 0.0,
                                    "context_parallel": 1, "filter_weight_decay": 0.0, "filter_lr": 0.0})
        if not 0.0 < self.cooldown <= 1.0:
            raise UsageError(f"--cooldown must be in (0, 1], got {self.cooldown}")

    @classmethod
    def from_dict(cls, record: dict) -> "TrainConfig":
        """A config from ``config.json``; files from before typed configs wrote 0 for unset
        ``stop_at`` / ``time_limit`` / ``grad_clip`` and a ``seq_len`` that had already been
        copied into the model's context."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        for name in ("stop_at", "time_limit", "grad_clip"):
            if values.get(name) == 0:
                values[name] = None
        return cls(**values)


# ----------------------------------------------------------------------------- the loop
@dataclass
class _Run:
    """Everything the loop mutates, restored from the checkpoint when resuming."""

    model: SpecMixLM | PeerLM
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    step: int
    metrics: list


def _new_model(model_cfg: LMConfig | PeerConfig) -> SpecMixLM | PeerLM:
    return PeerLM(model_cfg) if isinstance(model_cfg, PeerConfig) else SpecMixLM(model_cfg)


def _setup(model_cfg: LMConfig | PeerConfig, cfg: TrainConfig, resumed: bool, device) -> _Run:
    torch.manual_seed(cfg.seed)
    found = find_checkpoint(cfg.out).path if resumed else None     # verified once, read twice
    model = load_trained_model(found, device) if resumed else _new_model(model_cfg).to(device)
    model = fsdp.shard_model(model, device) if cfg.fsdp else model    # before the optimizer sees it
    run = _Run(model, make_optimizer(model, cfg), np.random.default_rng(cfg.seed), 0, [])
    if resumed:
        state = load_state(found)
        saved = state["optimizer"]
        run.opt.load_state_dict(fsdp.shard_optimizer_state(run.opt, saved) if cfg.fsdp else saved)
        run.rng.bit_generator.state = state["data_rng"]
        torch.set_rng_state(state["torch_rng"])
        run.step, run.metrics = state["step"], state["metrics"]
    return run


def _local_batch(data: TokenData, cfg: TrainConfig, run: _Run, dist: Dist, device):
    """The global batch (``batch_size * grad_accum`` rows) is drawn identically on every rank;
    each data-parallel rank keeps its share of every micro-batch (whole sequences: a
    context-parallel step slices them)."""
    x, y = data.batch("train", cfg.batch_size * cfg.grad_accum, run.model.config.context, run.rng, device)
    per_rank = cfg.batch_size // dist.data_world
    rows = torch.cat([torch.arange(m * cfg.batch_size + dist.data_rank * per_rank,
                                   m * cfg.batch_size + (dist.data_rank + 1) * per_rank)
                      for m in range(cfg.grad_accum)]).to(x.device)
    return x[rows], y[rows]


def _eval_row(run: _Run, data: TokenData, cfg: TrainConfig, device, tokens_per_s: float,
              elapsed_s: float, stepper) -> dict:
    row = {"step": run.step}
    sharded = stepper if isinstance(stepper, ContextParallel) else None
    for split in ("train", "val"):
        row.update({f"{split}_{k}": v for k, v in evaluate(run.model, data, split, cfg, device, sharded).items()})
    row.update(tokens_per_s=tokens_per_s, elapsed_s=elapsed_s)
    run.metrics.append(row)
    return row


@dataclass
class _Plan:
    """What validation resolved: nothing of it has touched the output folder yet."""

    data: TokenData | TaskData
    model_cfg: LMConfig | PeerConfig  # with the data's vocabulary
    record: dict                     # the checkpoints' config.json
    resumed: bool
    device: torch.device
    precision: Precision


def _validate(model_cfg: LMConfig | PeerConfig, cfg: TrainConfig, dist: Dist) -> _Plan:
    """Every check that can refuse the run (flags, folder, checkpoint, data), before anything
    is written: a refused command leaves ``out`` as it was."""
    device = resolve_device(cfg.device)
    if cfg.batch_size % dist.data_world:
        raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the {dist.data_world} "
                         "data-parallel processes")
    if dist.main:
        check_out_folder(cfg.out, cfg.resume, cfg.overwrite)
    saved = load_config(cfg.out) if cfg.resume else None
    tok = CharTokenizer.from_dict(saved["tokenizer"]) if saved and saved.get("tokenizer") else None
    data = load_data(task=cfg.task, data=cfg.data, task_vocab=cfg.task_vocab, context=model_cfg.context,
                     tokenizer=tok, kv_pairs=cfg.kv_pairs)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=data.vocab_size)
    if saved:
        check_same_run(saved, model_cfg, cfg, TrainConfig.SAME_RUN, cfg.out)
    if isinstance(model_cfg, PeerConfig) and (cfg.context_parallel > 1 or cfg.fsdp):
        raise UsageError(f"--{'fsdp' if cfg.fsdp else 'context-parallel'} is for specmix LMs; "
                         f"{model_cfg.family} trains in one process or with data parallelism")
    check_context_parallel(model_cfg, cfg.context_parallel, cfg.compile)
    if cfg.fsdp:
        fsdp.check_fsdp(dist.world, cfg.context_parallel, cfg.optimizer)
    precision = resolve_precision(cfg.dtype, device)
    if cfg.optimizer == "muon" and precision.dtype == torch.float16:
        raise UsageError("--optimizer muon with --dtype float16 (a GradScaler) is not supported; use bfloat16")
    record = config_record(model_cfg, dataclasses.asdict(cfg), data)
    return _Plan(data, model_cfg, record, saved is not None, device, precision)


def _optimizer_step(run: _Run, stepper, data, cfg: TrainConfig, dist: Dist, device,
                    precision: Precision, scaler, elapsed_s: float) -> torch.Tensor:
    """One optimizer step on this rank's share of the global batch, in ``grad_accum``
    micro-batches; returns the loss over the rank's rows (the mean over scored targets)."""
    lr = get_lr(run.step, cfg, elapsed_s)
    for group in run.opt.param_groups:
        group["lr"] = lr if group.get("lr_max") is None else min(lr, group["lr_max"])
        if "ns_steps" in group:                                         # Muon's group
            group["momentum"] = muon_momentum(run.step)
    x, y = _local_batch(data, cfg, run, dist, device)                   # (rows, N) each
    scored = (y != IGNORE).sum()
    sparse = isinstance(data, TaskData) and not isinstance(stepper, ContextParallel)   # head where scored
    total = torch.zeros((), device=device)
    for i, (xm, ym) in enumerate(zip(x.chunk(cfg.grad_accum), y.chunk(cfg.grad_accum))):
        last = i == cfg.grad_accum - 1
        if cfg.fsdp:                                    # reduce-scatter after the last micro-batch only
            run.model.set_requires_gradient_sync(last)
        with (stepper.no_sync() if hasattr(stepper, "no_sync") and not last else contextlib.nullcontext()), \
                precision.autocast():
            _, loss = stepper(xm, ym) if not sparse else stepper(xm, ym, scored_only=True)
        loss = loss * ((ym != IGNORE).sum() / scored)       # micro means weighted to the global mean
        (scaler.scale(loss) if scaler else loss).backward()
        total += loss.detach()
    if isinstance(stepper, ContextParallel):
        total = stepper.sync(total, dist.data_world)
    if scaler:
        scaler.unscale_(run.opt)
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    if scaler:
        scaler.step(run.opt)
        scaler.update()
    else:
        run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.step += 1
    return total


def _report(row: dict, bar) -> None:
    acc = f"  answer acc {row['val_answer_acc']:.3f}" if "val_answer_acc" in row else \
        (f"  scored acc {row['val_scored_acc']:.3f}" if "val_scored_acc" in row else "")
    bar.write(f"step {row['step']:5d}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}"
              f"{acc}  {row['tokens_per_s']:.0f} tok/s")


def _stepper(run: _Run, cfg: TrainConfig, dist: Dist, device):
    """What runs the training forward: the model, compiled and/or wrapped in DDP, or a
    context-parallel step (gradients synced by :meth:`ContextParallel.sync`)."""
    if dist.context > 1:
        return ContextParallel(run.model, dist.context_shard())
    stepper = torch.compile(run.model) if cfg.compile else run.model
    if dist.world > 1 and not cfg.fsdp:
        from torch.nn.parallel import DistributedDataParallel
        stepper = DistributedDataParallel(stepper, device_ids=[device] if device.type == "cuda" else None)
    return stepper


def _reached_target(run: _Run, cfg: TrainConfig) -> bool:
    """The last evaluation, if it was this step, reached ``target_acc``."""
    last = run.metrics[-1] if run.metrics else None
    return (cfg.target_acc is not None and last is not None and last["step"] == run.step
            and last.get("val_scored_acc", 0.0) >= cfg.target_acc)


def train(model_cfg: LMConfig | PeerConfig, cfg: TrainConfig, progress: bool = True) -> list[dict]:
    """Train (or resume) and return the metrics rows; see the module docstring for files.
    ``model_cfg`` is a specmix LM's or, for ``specmix train-peer``, a transformers peer's.

    Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel,
    each rank takes ``batch_size / world`` rows of every micro-batch of the same global
    batch, and only rank 0 logs and writes files: the loss curve equals a single-process run
    of the same global batch. With ``context_parallel=P`` consecutive groups of P ranks share
    each sequence (:mod:`specmix.app.context_parallel`) and the groups split the batch.
    ``tokens_per_s`` counts every token of the effective batch.
    Raises :class:`Diverged` when a loss or the weights stop being finite.
    """
    dist = Dist.from_env(cfg.context_parallel)
    plan = _validate(model_cfg, cfg, dist)
    with RunLock(cfg.out) if dist.main else contextlib.nullcontext():
        if dist.main:
            clear_run(cfg.out) if cfg.overwrite else remove_leftovers(cfg.out)
        device = dist.join(plan.device) if dist.world > 1 else plan.device
        run = _setup(plan.model_cfg, cfg, plan.resumed, device)
        folder = RunFolder(cfg.out, plan.record, run.step if plan.resumed else None) if dist.main else None
        if folder is not None and plan.resumed:
            folder.publish(run.metrics)                 # finish what a crash may have cut short
        try:
            return _loop(run, plan, cfg, dist, device, folder, progress)
        finally:
            dist.leave()


def _check_step_loss(loss: torch.Tensor, run: _Run, cfg: TrainConfig, dist: Dist, stepper,
                     folder: RunFolder | None) -> float:
    """The step's loss as a float, the same on every rank; :class:`Diverged` if not finite."""
    if dist.world > 1 and not isinstance(stepper, ContextParallel):
        loss = loss.detach().clone()
        torch.distributed.all_reduce(loss)              # a NaN anywhere stops every rank
        loss = loss / dist.world
    value = loss.item()
    check_finite_loss(value, "the training loss", run.step, cfg.lr, folder)
    return value


def _saver(run: _Run, folder: RunFolder | None, cfg: TrainConfig, resumed: bool):
    """``save()``, called by every rank: commit the checkpoint of the current step (rank 0
    writes; once per step). Sharded, every process gathers the full tensors first (the
    same collectives everywhere) and rank 0 writes them through a plain copy of the model."""
    if not cfg.fsdp:
        return (lambda: folder.save(run.model, run.opt.state_dict(), run.rng, run.step, run.metrics)) \
            if folder is not None else (lambda: None)
    plain = SpecMixLM(run.model.config) if folder is not None else None
    saved = [run.step if resumed else None]                             # known alike on every rank

    def save():
        if saved[0] == run.step:
            return
        weights, opt_state = fsdp.full_model_state(run.model), fsdp.full_optimizer_state(run.opt)
        if folder is not None:
            plain.load_state_dict(weights)
            folder.save(plain, opt_state, run.rng, run.step, run.metrics)
        saved[0] = run.step
    return save


def _loop(run: _Run, plan: _Plan, cfg: TrainConfig, dist: Dist, device, folder: RunFolder | None,
          progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    data, precision = plan.data, plan.precision
    scaler, stepper = precision.scaler(), _stepper(run, cfg, dist, device)
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
    bar = tqdm(total=end, initial=run.step, disable=not (progress and dist.main), desc="train")
    if dist.main:
        bar.write(f"optimizer {cfg.optimizer}, schedule {cfg.schedule}, peak lr {cfg.lr:g}:\n{describe_groups(run.opt)}")
    if dist.context > 1 and dist.main:
        bar.write(f"context parallel: {dist.context} processes per sequence of {run.model.config.context}, "
                  f"{dist.data_world} data-parallel group(s)")
    tick, tokens, t0 = time.perf_counter(), 0, time.perf_counter()
    elapsed0 = run.metrics[-1]["elapsed_s"] if run.metrics else 0.0
    elapsed = lambda: elapsed0 + time.perf_counter() - t0                      # noqa: E731
    save = _saver(run, folder, cfg, plan.resumed)
    try:
        while run.step < end:
            loss = _optimizer_step(run, stepper, data, cfg, dist, device, precision, scaler, elapsed())
            loss = _check_step_loss(loss, run, cfg, dist, stepper, folder)
            tokens += cfg.batch_size * cfg.grad_accum * run.model.config.context
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens / (time.perf_counter() - tick):.0f}")
            out_of_time = cfg.time_limit is not None and elapsed() >= cfg.time_limit
            if run.step % cfg.eval_every == 0 or run.step == cfg.steps or out_of_time:
                row = _eval_row(run, data, cfg, device, tokens / (time.perf_counter() - tick), elapsed(), stepper)
                for split in ("train", "val"):
                    check_finite_loss(row[f"{split}_loss"], f"the {split} loss", run.step, cfg.lr, folder)
                if dist.main:
                    _report(row, bar)
                save()
                tick, tokens = time.perf_counter(), 0
            if out_of_time:
                bar.write(f"time limit: {cfg.time_limit:.0f} s reached at step {run.step}")
                break
            if _reached_target(run, cfg):
                bar.write(f"target accuracy {cfg.target_acc} reached at step {run.step}")
                break
        save()                                   # stop_at between evaluations (no-op if saved)
    except KeyboardInterrupt:
        save()
        bar.write(f"interrupted: checkpoint saved at step {run.step} in {cfg.out} (resume with --resume)")
    finally:
        bar.close()
    return run.metrics
