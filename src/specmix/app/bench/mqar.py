"""Multi-query associative recall (MQAR, Zoology): a sweep of models over (seq, pairs, d_model).

Each cell trains one model on the task (``specmix train --task mqar``, in-process, Zoology's
vocabulary 8192 and no MLP) for a budget of training examples at a few learning rates, and
keeps the best. It reports, per cell: the accuracy over every query of the fixed held-out
set at the budget (equal examples for every model), the examples seen when accuracy first
reached 0.9, and the training tokens/s. Two tiers: ``cpu`` (about an hour on 2 cores: the
cells that decide the comparison, with budgets in the tens of thousands of examples) and
``full`` (Zoology's sizes: 100K examples x 64 epochs, every cell; meant for a GPU).

``python -m specmix.app.bench.mqar run --tier cpu --device cpu --out DIR`` writes
``DIR/mqar.json`` (rewritten after every run, so an interrupted sweep keeps what it has) and
``DIR/mqar.png``; ``... report DIR`` prints the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass

from ...io import atomic_write_text
from ...model import LMConfig
from ..plots import optional_plot
from ..tables import markdown_table
from ..train import TrainConfig, train

__all__ = ["Model", "Cell", "TIERS", "run_tier", "format_mqar", "ZOOLOGY"]

VOCAB = 8192
BATCH = 64


@dataclass(frozen=True)
class Model:
    """One model of the sweep: its layers and the fields of LMConfig that differ."""

    name: str
    mixers: tuple[str, ...]
    n_layers: int
    head_dim: int = 1
    n_heads: int = 2
    pos_emb: str = "auto"

    def config(self, seq_len: int, d_model: int) -> LMConfig:
        return LMConfig(vocab_size=VOCAB, d_model=d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                        context=seq_len, mixers=self.mixers, head_dim=self.head_dim, mlp_ratio=0.0,
                        pos_emb=self.pos_emb)


MODELS = {m.name: m for m in [
    # attention as Zoology trains it (2 layers), with rotary positions: with learned absolute
    # positions the same recipe stayed on the 1/pairs plateau far longer (see the README)
    Model("attention", ("attention",), 2, pos_emb="rope"),
    Model("spectral-gated hd1", ("spectral-gated",), 4),
    Model("spectral-gated hd8", ("spectral-gated",), 4, head_dim=8),
    Model("spectral-taylor hd4", ("spectral-taylor",), 2, head_dim=4),
    Model("hybrid (gated hd8 + attention)", ("spectral-gated", "attention"), 2, head_dim=8, pos_emb="rope"),
]}


@dataclass(frozen=True)
class Cell:
    model: str
    seq_len: int
    kv_pairs: int
    d_model: int
    examples: int                 # training budget
    lrs: tuple[float, ...]


def _cpu_tier() -> list[Cell]:
    cells = [Cell("attention", 64, 4, 64, 64_000, (1e-3, 3e-3))]
    for model in MODELS:
        cells.append(Cell(model, 128, 8, 128, 64_000, (1e-3, 3e-3) if model == "attention" else (3e-3,)))
    cells += [Cell("spectral-taylor hd4", 256, 16, 128, 32_000, (3e-3,)),
              Cell("attention", 256, 16, 128, 32_000, (3e-3,))]
    return cells


def _full_tier() -> list[Cell]:
    lrs = (3e-4, 1e-3, 3e-3)
    return [Cell(model, seq, pairs, d, 6_400_000, lrs) for seq, pairs in ((64, 4), (128, 8), (256, 16), (512, 64))
            for d in (64, 128, 256) for model in MODELS]


def _smoke_tier() -> list[Cell]:
    """Seconds: the driver end to end (tests)."""
    return [Cell(model, 16, 2, 16, 2 * BATCH, (3e-3,)) for model in ("attention", "spectral-taylor hd4")]


TIERS = {"cpu": _cpu_tier, "full": _full_tier, "smoke": _smoke_tier}

# Zoology (Arora et al. 2023), figure 2, read from the paper's plot at d_model 128: the
# accuracies the issue quotes (gated convolutions ~ BaseConv, closest to spectral-gated)
ZOOLOGY = {(128, 8): {"attention": 1.0, "BaseConv": 0.61, "Hyena": 0.63, "H3": 0.72},
           (256, 16): {"attention": 1.0, "BaseConv": 0.34, "Hyena": 0.14, "H3": 0.63},
           (512, 64): {"attention": 1.0, "BaseConv": 0.03}}


def _train_cell(cell: Cell, lr: float, device: str, out: str) -> dict:
    steps = max(1, cell.examples // BATCH)
    eval_every = max(10, steps // 20)
    model_cfg = MODELS[cell.model].config(cell.seq_len, cell.d_model)
    cfg = TrainConfig(task="mqar", task_vocab=VOCAB, kv_pairs=cell.kv_pairs, steps=steps, batch_size=BATCH,
                      lr=lr, warmup=min(50, steps // 10), eval_every=eval_every, eval_batches=8,
                      target_acc=0.995, device=device, out=out, seed=0, overwrite=True)   # the sweep's own folders
    start = time.perf_counter()
    metrics = train(model_cfg, cfg, progress=False)
    curve = [{"examples": m["step"] * BATCH, "acc": m["val_scored_acc"]} for m in metrics]
    reached = next((p["examples"] for p in curve if p["acc"] >= 0.9), None)
    return {"lr": lr, "acc": curve[-1]["acc"], "best_acc": max(p["acc"] for p in curve),
            "examples_to_0.9": reached, "examples_seen": curve[-1]["examples"], "curve": curve,
            "tokens_per_s": sum(m["tokens_per_s"] for m in metrics) / len(metrics),
            "wall_s": time.perf_counter() - start}


def _key(cell: dict) -> tuple:
    return cell["model"], cell["seq_len"], cell["kv_pairs"], cell["d_model"]


def _previous(path: str, tier: str, device: str) -> list[dict]:
    """The cells of an earlier run of the same tier and device in ``path`` (else none)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        old = json.load(f)
    return old["cells"] if (old.get("tier"), old.get("device")) == (tier, device) else []


def run_tier(tier: str, device: str, out: str, only: str | None = None,
             lrs: tuple[float, ...] | None = None) -> dict:
    """Run every cell of ``tier`` (or those whose model name contains ``only``), at the cell's
    learning rates or ``lrs``; rewrite ``out/mqar.json`` after each run. Cells and runs of an
    earlier sweep of the same tier in ``out`` are kept (a run at the same lr is replaced), so
    a sweep can be extended or resumed; the best learning rate per cell is reported."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "mqar.json")
    report = {"tier": tier, "device": device, "vocab": VOCAB, "batch": BATCH,
              "cells": _previous(path, tier, device)}
    for cell in TIERS[tier]():
        if only and only not in cell.model:
            continue
        before = next((c for c in report["cells"] if _key(c) == _key(dataclasses.asdict(cell))), None)
        runs = [] if before is None else [r for r in before["runs"] if r["lr"] not in (lrs or cell.lrs)]
        for lr in lrs or cell.lrs:
            run_dir = os.path.join(out, "runs", f"{cell.model}-{cell.seq_len}-{cell.kv_pairs}-{cell.d_model}-{lr}"
                                   .replace(" ", "_").replace("(", "").replace(")", "").replace("+", ""))
            runs.append(_train_cell(cell, lr, device, run_dir))
            shutil.rmtree(run_dir, ignore_errors=True)        # checkpoints are not kept
            entry = dict(dataclasses.asdict(cell), runs=runs,
                         best=max(runs, key=lambda r: (r["acc"], -(r["examples_to_0.9"] or 1e18))))
            entry["lrs"] = sorted(r["lr"] for r in runs)
            at = next((i for i, c in enumerate(report["cells"]) if _key(c) == _key(entry)), None)
            if at is None:
                report["cells"].append(entry)
            else:
                report["cells"][at] = entry
            atomic_write_text(path, json.dumps(report, indent=2) + "\n")
            print(f"mqar {cell.model} ({cell.seq_len},{cell.kv_pairs}) d{cell.d_model} lr {lr}: "
                  f"acc {runs[-1]['acc']:.3f}, to 0.9 {runs[-1]['examples_to_0.9']}", flush=True)
    optional_plot("plot_mqar", report, os.path.join(out, "mqar.png"))
    return report


def format_mqar(report: dict) -> str:
    head = ["model", "(seq, pairs)", "d_model", "budget (examples)", "accuracy at budget",
            "examples to 0.9", "best lr (tried)", "tokens/s", "Zoology (d 128)"]
    rows = []
    for c in report["cells"]:
        b = c["best"]
        zoo = ZOOLOGY.get((c["seq_len"], c["kv_pairs"]), {})
        rows.append([c["model"], f"({c['seq_len']}, {c['kv_pairs']})", c["d_model"], f"{c['examples']:,}",
                     f"{b['acc']:.3f}" + ("" if b["examples_seen"] >= c["examples"] else
                                          f" (stopped at {b['examples_seen']:,})"),
                     "not reached" if b["examples_to_0.9"] is None else f"{b['examples_to_0.9']:,}",
                     f"{b['lr']:g} (of {', '.join(format(r['lr'], 'g') for r in c['runs'])})",
                     f"{b['tokens_per_s']:,.0f}",
                     ", ".join(f"{k} {v:.2f}" for k, v in zoo.items()) if c["d_model"] == 128 else ""])
    lines = markdown_table(head, rows)
    lines += ["", f"tier {report['tier']} on {report['device']}: vocabulary {report['vocab']}, batch "
              f"{report['batch']}, no MLP, AdamW with cosine decay over the budget; accuracy over every "
              "query of a fixed held-out set (8 batches); a run stops early at 0.995. Zoology's numbers "
              "are from its paper (figure 2, read off the plot), not from this harness."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m specmix.app.bench.mqar")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a tier of the sweep")
    run.add_argument("--tier", choices=sorted(TIERS), default="cpu")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--out", required=True)
    run.add_argument("--only", default=None, help="only the models whose name contains this")
    run.add_argument("--lrs", default=None, help="comma list of learning rates instead of the cells' own")
    rep = sub.add_parser("report", help="print the table of DIR/mqar.json")
    rep.add_argument("dir")
    args = parser.parse_args(argv)
    if args.cmd == "run":
        lrs = None if args.lrs is None else tuple(float(v) for v in args.lrs.split(","))
        print(format_mqar(run_tier(args.tier, args.device, args.out, args.only, lrs)))
    else:
        with open(os.path.join(args.dir, "mqar.json")) as f:
            print(format_mqar(json.load(f)))


if __name__ == "__main__":
    main()
