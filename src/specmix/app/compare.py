"""``specmix compare``: train several mixer stacks with one budget, side by side.

Every variant gets the same seed (so the same data order), steps, batch, context and
optimizer. Parameter counts are matched to the first variant within ``tolerance`` by
adjusting each variant's MLP width (``mlp_ratio``), the only free knob that leaves the
mixers as they are; the counts are reported. A variant that crashes is reported and the
others still run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

from ..data.batches import load_data
from ..io import atomic_write_text
from ..model import LMConfig, SpecMixLM
from ..validation import UsageError, check_fields
from .plots import optional_plot
from .run_folder import check_out_folder
from .tables import markdown_table
from .train import TrainConfig, train


@dataclass(frozen=True)
class CompareConfig:
    """What ``specmix compare`` varies: one mixer pattern per variant."""

    variants: tuple[str, ...] = field(default=("attention", "spectral-gated"), metadata={
        "flag": "--mixers", "nargs": "+",
        "help": "one pattern per variant, e.g. attention spectral-gated 'spectral,local:64'"})
    tolerance: float = field(default=0.05, metadata={"help": "parameter match, relative"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"tolerance": 0.0})
        if not self.variants:
            raise UsageError("--mixers: give at least one variant")


def params_of(cfg: LMConfig) -> int:
    return SpecMixLM(cfg).num_params()


def match_params(cfg: LMConfig, target: int, tolerance: float) -> LMConfig:
    """Return ``cfg`` with the ``mlp_ratio`` whose parameter count is closest to ``target``.

    Parameters are affine in the MLP width, so two evaluations give the slope; the hidden
    width is rounded to an integer, and a ValueError says so if that misses the tolerance.
    """
    d = cfg.d_model
    p1, p2 = params_of(dataclasses.replace(cfg, mlp_ratio=1.0)), params_of(dataclasses.replace(cfg, mlp_ratio=2.0))
    per_unit = (p2 - p1) / d                                 # params per hidden unit
    hidden = max(1, round(d + (target - p1) / per_unit))
    matched = dataclasses.replace(cfg, mlp_ratio=hidden / d)
    got = params_of(matched)
    if abs(got - target) > tolerance * target:
        raise UsageError(f"cannot match {target} parameters within {tolerance:.0%} for "
                         f"mixers {cfg.mixers!r} (closest: {got})")
    return matched


def run_compare(variants: tuple[str, ...], base: LMConfig, train_cfg: TrainConfig, out: str,
                tolerance: float = 0.05, progress: bool = True) -> dict:
    """Train each variant in turn into ``out/<i>-<name>``; write ``out/compare.json``.
    Every variant is validated before the first one trains."""
    data = load_data(task=train_cfg.task, data=train_cfg.data, task_vocab=train_cfg.task_vocab,
                     context=base.context, kv_pairs=train_cfg.kv_pairs)
    base = dataclasses.replace(base, vocab_size=data.vocab_size)
    configs = [dataclasses.replace(base, mixers=mixers) for mixers in variants]
    run_dirs = [os.path.join(out, f"{i}-{mixers.replace(',', '_').replace(':', '')}") for i, mixers in enumerate(variants)]
    for run_dir in run_dirs:                  # refuse before any variant writes (or compare.json is replaced)
        check_out_folder(run_dir, resume=False, overwrite=train_cfg.overwrite)
    results, target = [], None
    for i, (mixers, cfg) in enumerate(zip(variants, configs)):
        entry = {"mixers": mixers}
        try:
            if target is None:
                target = params_of(cfg)
            else:
                cfg = match_params(cfg, target, tolerance)
            entry.update(params=params_of(cfg), mlp_ratio=cfg.mlp_ratio)
            run_dir = run_dirs[i]
            start = time.perf_counter()
            metrics = train(cfg, dataclasses.replace(train_cfg, out=run_dir, resume=False), progress)
            if "val_answer_acc" in metrics[-1]:
                entry.update(final_answer_acc=metrics[-1]["val_answer_acc"],
                             best_answer_acc=max(m["val_answer_acc"] for m in metrics))
            elif "val_scored_acc" in metrics[-1]:           # mqar: every query is an answer
                entry.update(final_answer_acc=metrics[-1]["val_scored_acc"],
                             best_answer_acc=max(m["val_scored_acc"] for m in metrics))
            entry.update(wall_s=time.perf_counter() - start, final_val_loss=metrics[-1]["val_loss"],
                         best_val_loss=min(m["val_loss"] for m in metrics),
                         tokens_per_s=sum(m["tokens_per_s"] for m in metrics) / len(metrics),
                         curve=metrics, out=run_dir)
        except Exception as err:          # report the crash, keep comparing the others
            entry["error"] = f"{type(err).__name__}: {err}"
            entry["traceback"] = traceback.format_exc(limit=5)
            print(f"compare: variant {mixers!r} failed:\n{entry['traceback']}", file=sys.stderr)
        results.append(entry)
    report = {"model": base.to_dict(), "train": dataclasses.asdict(train_cfg), "variants": results}
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "compare.json"), json.dumps(report, indent=2) + "\n")
    optional_plot("plot_compare", report, os.path.join(out, "compare_loss.png"))
    return report


def _first_above(curve: list[dict], level: float = 0.95) -> str:
    key = "val_answer_acc" if "val_answer_acc" in curve[0] else "val_scored_acc"
    hit = next((m for m in curve if m[key] >= level), None)
    return "-" if hit is None else f"step {hit['step']} ({hit['elapsed_s']:.0f} s)"


def format_compare(report: dict) -> str:
    task = report["train"].get("task", "lm") != "lm"
    head = ["mixers", "params", "final val", "best val"]
    head += ["final answer acc", "best answer acc", "first >= 0.95"] if task else []
    head += ["tokens/s", "wall s", "steps"]
    rows = []
    for v in report["variants"]:
        if "error" in v:
            rows.append([f"`{v['mixers']}`", v.get("params", "-"), f"failed: {v['error']}"]
                        + [""] * (len(head) - 3))
            continue
        acc = [f"{v['final_answer_acc']:.3f}", f"{v['best_answer_acc']:.3f}", _first_above(v["curve"])] if task else []
        rows.append([f"`{v['mixers']}`", v["params"], f"{v['final_val_loss']:.3f}", f"{v['best_val_loss']:.3f}",
                     *acc, f"{v['tokens_per_s']:.0f}", f"{v['wall_s']:.0f}", v["curve"][-1]["step"]])
    t, m = report["train"], report["model"]
    what = (f"task {t['task']} (vocab {t['task_vocab']}), " if task else "")
    lines = markdown_table(head, rows)
    lines += ["", f"{what}d_model {m['d_model']}, {m['n_layers']} layers, context {m['context']}, batch "
              f"{t['batch_size']}, {t['steps']} steps, lr {t['lr']} (cosine to {t['min_lr_ratio']}x), "
              f"dropout {m['dropout']}, seed {t['seed']}; MLP widths adjusted to match parameters."]
    return "\n".join(lines)
