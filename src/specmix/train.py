"""Training: ``train(model_cfg, train_cfg) -> metrics``, with exact resume and atomic checkpoints.

Files in ``out``: ``config.json`` (model + training config + tokenizer), ``model.safetensors``,
``state.pt`` (optimizer, data-order and torch RNG states, step), ``metrics.jsonl`` (one JSON
object per evaluation) and ``loss.png``. Every write is atomic (temp file + rename).
An interrupted run resumed with ``resume=True`` produces the same metrics as one that was
never interrupted (same seed): the data order's generator state is part of the checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .corpus import CharTokenizer
from .data import TaskData, TokenData
from .io import atomic_path, atomic_write_text
from .model import LMConfig, SpecMixLM
from .tasks import IGNORE, TaskSpec


class CheckpointError(ValueError):
    """A missing or mismatched checkpoint: printed as a one-line error."""


@dataclass
class TrainConfig:
    data: str | None = field(default=None, metadata={"help": "UTF-8 text file; omitted = the default corpus 'shakespeare'"})
    task: str = field(default="lm", metadata={"help": "lm (next character of --data) or a synthetic task",
                                              "choices": ["lm", "recall", "copy"]})
    task_vocab: int = field(default=30, metadata={"help": "vocabulary of --task recall/copy"})
    seq_len: int = field(default=0, metadata={"help": "training sequence length; sets the model's --context (0 = keep it)"})
    steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decay ends at lr * this"})
    warmup: int = field(default=50, metadata={"help": "linear warmup steps"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay on matrices"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm (0 = off)"})
    eval_every: int = field(default=100, metadata={"help": "steps between evaluations + checkpoints"})
    eval_batches: int = field(default=20, metadata={"help": "fixed batches per evaluation"})
    seed: int = field(default=1337, metadata={"help": "seed of init and data order"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda", "choices": ["auto", "cpu", "cuda"]})
    out: str = field(default="runs/train", metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue from the checkpoint in --out"})
    stop_at: int = field(default=0, metadata={"help": "save and stop after this step (0 = run to --steps)"})
    time_limit: float = field(default=0.0, metadata={"help": "end (evaluate, save) at the first step after "
                                                     "this many seconds of the run (0 = no limit)"})


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


@dataclass
class Dist:
    """This process' place in a data-parallel run (``torchrun`` sets the environment)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def _init_distributed(dist: Dist, device: torch.device) -> torch.device:
    """Join the process group: gloo on CPU, nccl on CUDA (one GPU per local rank)."""
    import torch.distributed as td
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    td.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay only on matrices of projections and embeddings, not on filters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and ".filter." not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


@torch.no_grad()
def evaluate(model: SpecMixLM, data, split: str, cfg: TrainConfig, device) -> dict[str, float]:
    """Mean loss over ``eval_batches`` fixed batches (the same at every evaluation).

    For a synthetic task also ``answer_acc`` (the last position: the query's answer) and
    ``scored_acc`` (every scored position).
    """
    rng = np.random.default_rng(cfg.seed + (1 if split == "train" else 2))
    task = isinstance(data, TaskData)
    was_training = model.training
    model.eval()
    losses, answer_hits, hits, scored = [], 0, 0, 0
    for _ in range(cfg.eval_batches):
        x, y = data.batch(split, cfg.batch_size, model.config.context, rng, device)
        logits, loss = model(x, y)
        losses.append(loss.item())
        if task:
            guess, keep = logits.argmax(-1), y != IGNORE               # (B, N) each
            answer_hits += int((guess[:, -1] == y[:, -1]).sum())
            hits, scored = hits + int((guess == y)[keep].sum()), scored + int(keep.sum())
    model.train(was_training)
    out = {"loss": float(np.mean(losses))}
    if task:
        out.update(answer_acc=answer_hits / (cfg.eval_batches * cfg.batch_size), scored_acc=hits / scored)
    return out


# ----------------------------------------------------------------------------- checkpoints
def _config_record(model_cfg: LMConfig, train_cfg: TrainConfig, data) -> dict:
    record = {"model": model_cfg.to_dict(), "train": asdict(train_cfg)}
    if isinstance(data, TaskData):
        return dict(record, task=data.spec.to_dict())
    return dict(record, tokenizer=data.tokenizer.to_dict())


def save_checkpoint(out: str, model, opt, rng: np.random.Generator, step: int, metrics: list) -> None:
    from safetensors.torch import save_model
    with atomic_path(os.path.join(out, "model.safetensors")) as tmp:
        save_model(model, tmp, metadata={"step": str(step)})
    state = {"step": step, "optimizer": opt.state_dict(), "data_rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(), "metrics": metrics}
    with atomic_path(os.path.join(out, "state.pt")) as tmp:
        torch.save(state, tmp)


def load_config(out: str) -> dict:
    path = os.path.join(out, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint in {out}: {path} does not exist")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_model(out: str, device="cpu", context: int | None = None) -> tuple[SpecMixLM, CharTokenizer | None]:
    """The model and tokenizer of the checkpoint in ``out`` (tokenizer None for a task run).

    ``context`` longer than the trained one rebuilds the model for longer inputs: allowed
    only when nothing in it is tied to the trained length (implicit filters or attention,
    no learned positions); a frequency filter has no taps beyond its ``max_len``.
    """
    from safetensors.torch import load_model as st_load
    record = load_config(out)
    cfg = LMConfig(**record["model"])
    if context is not None and context > cfg.context:
        _check_extensible(cfg, context)
        cfg.context = context
    model = SpecMixLM(cfg).to(device)
    weights = os.path.join(out, "model.safetensors")
    if not os.path.isfile(weights):
        raise CheckpointError(f"no checkpoint in {out}: {weights} does not exist")
    st_load(model, weights, device=str(device))
    tok = record.get("tokenizer")
    return model, CharTokenizer.from_dict(tok) if tok else None


def _check_extensible(cfg: LMConfig, context: int) -> None:
    spectral = any(k.startswith("spectral") for k in cfg.mixer_kinds())
    if cfg.uses_positions():
        raise CheckpointError(f"context {context} > the trained {cfg.context}: this model has learned "
                              "position embeddings, which stop at the trained context")
    if spectral and cfg.filter == "frequency":
        raise CheckpointError(f"context {context} > the trained {cfg.context}: the frequency filter "
                              f"has taps for lags < max_len={cfg.context} only; train with "
                              "--filter implicit for a length-free model")


def _check_same_run(record: dict, model_cfg: LMConfig, train_cfg: TrainConfig, out: str) -> None:
    # fields a checkpoint predates take their defaults
    saved_model = dict(LMConfig(**record["model"]).to_dict(), vocab_size=model_cfg.vocab_size)
    diffs = [f"{k}: {saved_model.get(k)!r} in the checkpoint vs {v!r} now"
             for k, v in model_cfg.to_dict().items() if saved_model.get(k) != v]
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    saved_train = asdict(TrainConfig(**{k: v for k, v in record["train"].items() if k in known}))
    for k in ("data", "task", "task_vocab", "seq_len", "steps", "batch_size", "lr", "min_lr_ratio",
              "warmup", "weight_decay", "grad_clip", "eval_every", "eval_batches", "seed"):
        if saved_train[k] != getattr(train_cfg, k):
            diffs.append(f"{k}: {saved_train[k]!r} in the checkpoint vs {getattr(train_cfg, k)!r} now")
    if diffs:
        raise CheckpointError(f"the checkpoint in {out} is from another config ({'; '.join(diffs)})")


# ----------------------------------------------------------------------------- the loop
def _write_metrics(out: str, metrics: list[dict]) -> None:
    atomic_write_text(os.path.join(out, "metrics.jsonl"), "".join(json.dumps(m) + "\n" for m in metrics))
    try:
        from .plots import plot_losses
        plot_losses(metrics, os.path.join(out, "loss.png"))
    except ImportError:            # matplotlib is an optional extra
        pass


@dataclass
class _Run:
    """Everything the loop mutates, restored from the checkpoint when resuming."""

    model: SpecMixLM
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    step: int
    metrics: list


def _setup(model_cfg: LMConfig, cfg: TrainConfig, data: TokenData, record, device) -> _Run:
    torch.manual_seed(cfg.seed)
    model = load_model(cfg.out, device)[0] if record else SpecMixLM(model_cfg).to(device)
    run = _Run(model, make_optimizer(model, cfg), np.random.default_rng(cfg.seed), 0, [])
    if record:
        state = torch.load(os.path.join(cfg.out, "state.pt"), weights_only=False)
        run.opt.load_state_dict(state["optimizer"])
        run.rng.bit_generator.state = state["data_rng"]
        torch.set_rng_state(state["torch_rng"])
        run.step, run.metrics = state["step"], state["metrics"]
    return run


def _local_batch(data: TokenData, cfg: TrainConfig, run: _Run, dist: Dist, device):
    """The global batch is drawn identically on every rank; each rank keeps its rows."""
    x, y = data.batch("train", cfg.batch_size, run.model.config.context, run.rng, device)
    rows = slice(dist.rank * cfg.batch_size // dist.world, (dist.rank + 1) * cfg.batch_size // dist.world)
    return x[rows], y[rows]


def _eval_row(run: _Run, data: TokenData, cfg: TrainConfig, device, tokens_per_s: float,
              elapsed_s: float) -> dict:
    row = {"step": run.step}
    for split in ("train", "val"):
        row.update({f"{split}_{k}": v for k, v in evaluate(run.model, data, split, cfg, device).items()})
    row.update(tokens_per_s=tokens_per_s, elapsed_s=elapsed_s)
    run.metrics.append(row)
    return row


def _load_data(model_cfg: LMConfig, cfg: TrainConfig, record: dict | None):
    """The corpus (``task="lm"``) or the synthetic task; ``seq_len`` sets the model's context."""
    if cfg.seq_len < 0:
        raise ValueError(f"--seq-len must be >= 0, got {cfg.seq_len}")
    if cfg.seq_len:
        model_cfg.context = cfg.seq_len
    if cfg.task != "lm":
        return TaskData.load(TaskSpec(cfg.task, cfg.task_vocab, model_cfg.context))
    tok = CharTokenizer.from_dict(record["tokenizer"]) if record and record.get("tokenizer") else None
    return TokenData.load(cfg.data, model_cfg.context, tok)


def _prepare(model_cfg: LMConfig, cfg: TrainConfig, dist: Dist):
    """Data, device and the run state (fresh or resumed); config.json written by rank 0."""
    device = resolve_device(cfg.device)
    if cfg.batch_size % dist.world:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the {dist.world} processes")
    record = load_config(cfg.out) if cfg.resume else None
    data = _load_data(model_cfg, cfg, record)
    model_cfg.vocab_size = data.vocab_size
    if record:
        _check_same_run(record, model_cfg, cfg, cfg.out)
    if dist.world > 1:
        device = _init_distributed(dist, device)
    run = _setup(model_cfg, cfg, data, record, device)
    if dist.main:
        os.makedirs(cfg.out, exist_ok=True)
        atomic_write_text(os.path.join(cfg.out, "config.json"),
                          json.dumps(_config_record(model_cfg, cfg, data), indent=2) + "\n")
    return data, device, run


def _optimizer_step(run: _Run, stepper, data, cfg: TrainConfig, dist: Dist, device) -> torch.Tensor:
    """One step on this rank's share of the global batch; returns the (unreduced) loss."""
    for group in run.opt.param_groups:
        group["lr"] = get_lr(run.step, cfg)
    x, y = _local_batch(data, cfg, run, dist, device)
    _, loss = stepper(x, y)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.step += 1
    return loss


def _report(row: dict, bar) -> None:
    acc = f"  answer acc {row['val_answer_acc']:.3f}" if "val_answer_acc" in row else ""
    bar.write(f"step {row['step']:5d}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}"
              f"{acc}  {row['tokens_per_s']:.0f} tok/s")


def train(model_cfg: LMConfig, cfg: TrainConfig, progress: bool = True) -> list[dict]:
    """Train (or resume) and return the metrics rows; see the module docstring for files.

    Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel,
    each rank takes ``batch_size / world`` rows of the same global batch, and only rank 0
    logs and writes files: the loss curve equals a single-process run of the same global
    batch.
    """
    from tqdm.auto import tqdm

    dist = Dist.from_env()
    data, device, run = _prepare(model_cfg, cfg, dist)
    stepper = run.model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        stepper = DistributedDataParallel(run.model, device_ids=[device] if device.type == "cuda" else None)
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
    bar = tqdm(total=end, initial=run.step, disable=not (progress and dist.main), desc="train")
    tick, tokens, t0 = time.perf_counter(), 0, time.perf_counter()
    elapsed0 = run.metrics[-1]["elapsed_s"] if run.metrics else 0.0
    save = (lambda: save_checkpoint(cfg.out, run.model, run.opt, run.rng, run.step, run.metrics)) \
        if dist.main else (lambda: None)
    try:
        while run.step < end:
            loss = _optimizer_step(run, stepper, data, cfg, dist, device)
            tokens += cfg.batch_size * run.model.config.context
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / (time.perf_counter() - tick):.0f}")
            out_of_time = cfg.time_limit > 0 and elapsed0 + time.perf_counter() - t0 >= cfg.time_limit
            if run.step % cfg.eval_every == 0 or run.step == cfg.steps or out_of_time:
                row = _eval_row(run, data, cfg, device, tokens / (time.perf_counter() - tick),
                                elapsed0 + time.perf_counter() - t0)
                if dist.main:
                    _report(row, bar)
                    save()
                    _write_metrics(cfg.out, run.metrics)
                tick, tokens = time.perf_counter(), 0
            if out_of_time:
                bar.write(f"time limit: {cfg.time_limit:.0f} s reached at step {run.step}")
                break
        if not run.metrics or run.metrics[-1]["step"] != run.step:   # stop_at between evaluations
            save()
    except KeyboardInterrupt:
        save()
        bar.write(f"interrupted: checkpoint saved at step {run.step} in {cfg.out} (resume with --resume)")
    finally:
        bar.close()
        if dist.world > 1:
            import torch.distributed as td
            td.destroy_process_group()
    return run.metrics
