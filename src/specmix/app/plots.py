"""Matplotlib figures (headless backend), each written atomically.

matplotlib is an optional extra (``specmix[plot]``): callers draw through
:func:`optional_plot`, the one place that decides to skip a figure when it is missing.
NumPy only, like the NumPy reference that draws here too.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from ..io import atomic_path


def optional_plot(name: str, *args) -> bool:
    """Draw the figure ``name`` of this module when matplotlib is installed; return whether it
    was drawn. Errors inside the drawing are not swallowed."""
    if importlib.util.find_spec("matplotlib") is None:
        return False
    globals()[name](*args)
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str) -> None:
    """Tight layout, write the PNG atomically, close the figure."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)


def plot_scaling(report: dict, path: str) -> None:
    """Log-log time vs n (one line per op, fitted slopes in the legend, n log n and n^2
    guides) and, beside it, peak memory vs n."""
    plt = _pyplot()
    rows, slopes = report["results"], report["slopes"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5))
    ops = list(dict.fromkeys(r["op"] for r in rows))
    for op in ops:
        pts = sorted((r["n"], r["ms"], r.get("peak_mb")) for r in rows if r["op"] == op)
        n = np.array([p[0] for p in pts], dtype=float)
        label = op + (f" (slope {slopes[op]:.2f})" if op in slopes else "")
        ax_t.plot(n, [p[1] for p in pts], "o-", label=label)
        mem = [(a, m) for a, _, m in pts if m is not None and m > 0]
        if mem:
            ax_m.plot([a for a, _ in mem], [m for _, m in mem], "o-", label=op)
    published = report.get("published")
    if published:
        for op in ("attention", "spectral"):
            ax_t.plot(published["n"], published[op], "x:", label=f"{op} (published note)")
    if rows:
        n_all = np.array(sorted({r["n"] for r in rows}), dtype=float)
        ref = min(r["ms"] for r in rows if r["n"] == n_all[0])
        ax_t.plot(n_all, ref * (n_all * np.log2(n_all)) / (n_all[0] * np.log2(n_all[0])),
                  "k--", lw=0.8, label="O(n log n) guide")
        ax_t.plot(n_all, ref * (n_all / n_all[0]) ** 2, "k:", lw=0.8, label="O(n^2) guide")
        ax_t.set_ylim(bottom=min(r["ms"] for r in rows) / 2, top=max(r["ms"] for r in rows) * 2)
    cfg = report.get("config", {})
    title = (f"{cfg.get('backend', '')} {cfg.get('mode', '')}, d_model={cfg.get('d_model')}, "
             f"batch={cfg.get('batch_size', cfg.get('batch'))}, {cfg.get('dtype')}")
    for ax, ylabel in ((ax_t, "time per call (ms, median)"), (ax_m, "peak memory over one call (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_t.set_title("time: " + title)
    ax_m.set_title("memory")
    save_figure(fig, path)


def plot_losses(metrics: list[dict], path: str, title: str = "training") -> None:
    """Train and val loss vs step from ``metrics.jsonl`` rows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = [m["step"] for m in metrics]
    ax.plot(steps, [m["train_loss"] for m in metrics], "o-", label="train")
    ax.plot(steps, [m["val_loss"] for m in metrics], "o-", label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_compare(report: dict, path: str) -> None:
    """Val loss (answer accuracy for a synthetic task) vs step and vs wall-clock seconds,
    one line per variant."""
    plt = _pyplot()
    task = report["train"].get("task", "lm") != "lm"
    key, ylabel = ("val_answer_acc", "held-out answer accuracy") if task else ("val_loss", "val loss (nats/char)")
    if task and report["train"].get("task") == "mqar":
        key = "val_scored_acc"
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(13, 4.8))
    for v in report["variants"]:
        if "curve" not in v:
            continue
        label = f"{v['mixers']} ({v['params'] / 1e6:.2f}M)"
        ax_s.plot([m["step"] for m in v["curve"]], [m[key] for m in v["curve"]], "o-", ms=3, label=label)
        ax_t.plot([m["elapsed_s"] for m in v["curve"]], [m[key] for m in v["curve"]], "o-", ms=3, label=label)
    for ax, xlabel in ((ax_s, "step"), (ax_t, "wall-clock seconds")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_lengths(report: dict, path: str) -> None:
    """Val loss vs position, one line per evaluated context; the trained context marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in report["rows"]:
        b = row["by_position"]
        centres = [np.sqrt(max(a, 1) * z) for a, z in zip(b["start"], b["stop"])]   # log-midpoints
        ax.plot(centres, b["loss"], "o-", ms=3, label=f"context {row['context']} ({row['windows']} windows)")
    ax.axvline(report["trained_context"], color="k", ls=":", lw=1, label="trained context")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("position in the window")
    ax.set_ylabel("val loss (nats/char) over positions [2^k, 2^(k+1))")
    mixers = report["model"]["mixers"]
    mixers = ",".join(mixers) if isinstance(mixers, list) else mixers
    ax.set_title(f"{mixers} ({report['model']['filter']} filter), trained at "
                 f"context {report['trained_context']}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_decode(report: dict, path: str) -> None:
    """Cached generation tokens/s vs prompt length, one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in dict.fromkeys(r["mixers"] for r in report["rows"]):
        rows = [r for r in report["rows"] if r["mixers"] == kind]
        ax.plot([r["prompt"] for r in rows], [r["tokens_per_s"] for r in rows], "o-", label=kind)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("generated tokens/s (cached, batch 1)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, path)


def plot_reference(r: dict, path: str) -> None:
    """The NumPy reference LM's train/val curves, its no-mixing ablation and the bigram line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = [p["step"] for p in r["loss_curve"]]
    ax.plot(steps, [p["train"] for p in r["loss_curve"]], "o-", label="spectral: train")
    ax.plot(steps, [p["val"] for p in r["loss_curve"]], "o-", label="spectral: val")
    ax.plot([p["step"] for p in r["no_mixing_curve"]], [p["val"] for p in r["no_mixing_curve"]],
            "s--", label="no mixing (identity): val")
    ax.axhline(r["bigram_val_loss"], color="gray", ls=":", label="exact bigram: val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.set_title("NumPy reference char LM")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_quality(report: dict, path: str) -> None:
    """Val loss vs minutes of training, one line per run (benchmarks/quality.sh)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for run in report["runs"]:
        curve = run["curve"]
        second_corpus = run["run"].startswith("stdlib-")                  # another corpus: dashed
        ax.plot([c["minutes"] for c in curve], [c["val_loss"] for c in curve], "--" if second_corpus else "-",
                lw=1.5, label=f"{run['run']} ({run['params'] / 1e6:.1f}M, best {run['best_val']:.3f})")
    ax.axhline(1.4697, color="gray", ls=":", lw=1, label="nanoGPT baby GPT on an A100 (1.4697)")
    ax.set_xlabel("minutes of training (2 CPU cores)")
    ax.set_ylabel("val loss (nats/char)")
    ax.set_ylim(top=min(3.5, max([2.2] + [run["best_val"] + 0.3 for run in report["runs"]])))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_mqar(report: dict, path: str) -> None:
    """MQAR accuracy vs training examples, one panel per (seq, pairs), the best lr per cell."""
    plt = _pyplot()
    tasks = sorted({(c["seq_len"], c["kv_pairs"]) for c in report["cells"]})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False)
    for ax, (seq, pairs) in zip(axes[0], tasks):
        for c in (c for c in report["cells"] if (c["seq_len"], c["kv_pairs"]) == (seq, pairs)):
            curve = c["best"]["curve"]
            ax.plot([p["examples"] for p in curve], [p["acc"] for p in curve], "o-", ms=3,
                    label=f"{c['model']} d{c['d_model']}")
        ax.axhline(0.9, color="gray", ls=":", lw=1)
        ax.set_title(f"MQAR ({seq} tokens, {pairs} pairs)")
        ax.set_xlabel("training examples")
        ax.set_ylabel("accuracy over queries")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)
