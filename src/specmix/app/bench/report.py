"""The scaling benchmark's outputs: ``bench.json``, ``bench.csv``, the log-log plot, and the
markdown tables that the CLI prints and the README embeds."""
from __future__ import annotations

import json
import os

from ...io import atomic_write_text
from ..plots import optional_plot
from ..tables import fmt, markdown_table, ratio

__all__ = ["write_outputs", "format_report", "ms_of"]

# The note's table: "CPU / NumPy, single block", d_model 64.
PUBLISHED = {
    "n": [128, 256, 512, 1024, 2048, 4096],
    "attention": [2.39, 2.83, 4.18, 9.58, 29.35, 106.21],
    "spectral": [0.24, 0.47, 0.96, 1.92, 3.88, 9.50],
}


def ms_of(report: dict, op: str, n: int) -> float | None:
    for r in report["results"]:
        if r["op"] == op and r["n"] == n:
            return r["ms"]
    return None


def write_outputs(report: dict, out_dir: str) -> list[str]:
    """Write bench.json, bench.csv and (with matplotlib) bench_scaling_loglog.png atomically;
    return the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name in ("bench.json", "bench.csv",
                                                      "bench_scaling_loglog.png")]
    atomic_write_text(paths[0], json.dumps(report, indent=2) + "\n")
    cols = ["op", "backend", "mode", "n", "d_model", "batch", "ms", "ms_min", "ms_max",
            "peak_mb", "repeats", "n_fft"]
    lines = [",".join(cols)] + [",".join("" if r.get(c) is None else str(r.get(c)) for c in cols)
                                for r in report["results"]]
    atomic_write_text(paths[1], "\n".join(lines) + "\n")
    return paths if optional_plot("plot_scaling", report, paths[2]) else paths[:2]


def format_report(report: dict) -> str:
    """Markdown tables of a report (the CLI prints them; the README embeds them)."""
    backend = report["config"]["backend"]
    lines = {"numpy": _numpy_table, "torch": _torch_table, "lm": _lm_table}[backend](report)
    slopes = ", ".join(f"{op} {s:.2f}" for op, s in report["slopes"].items())
    lo, hi = report["fit_range"]
    if slopes:                  # none when fewer than two lengths fall in the fit range
        lines += ["", f"Fitted log-log slopes over n = {lo}..{hi}: {slopes}"]
    lines += [f"- {op}: {why}" for op, why in report.get("stopped", {}).items()]
    return "\n".join(lines)


def _lengths(report: dict) -> list[int]:
    return sorted({r["n"] for r in report["results"]})


def _numpy_table(report: dict) -> list[str]:
    head = ["n", "attention ms (published)", "attention ms (ours)", "spectral ms (published)",
            "spectral ms (ours, causal exact)", "circular ms (ours, the note's operator)",
            "ratio attention/spectral (published)", "ratio (ours)"]
    rows = []
    for n in _lengths(report):
        pub = PUBLISHED["n"].index(n) if n in PUBLISHED["n"] else None
        pa = PUBLISHED["attention"][pub] if pub is not None else None
        ps = PUBLISHED["spectral"][pub] if pub is not None else None
        a, s = ms_of(report, "attention", n), ms_of(report, "spectral", n)
        rows.append([n, fmt(pa), fmt(a), fmt(ps), fmt(s), fmt(ms_of(report, "spectral-circular", n)),
                     fmt(ratio(pa, ps), ".1f"), fmt(ratio(a, s), ".1f")])
    return markdown_table(head, rows)


def _torch_table(report: dict) -> list[str]:
    ops = list(dict.fromkeys(r["op"] for r in report["results"]))
    mem = {(r["op"], r["n"]): r.get("peak_mb") for r in report["results"]}
    head = ["n"] + [f"{op} ms" for op in ops] + ["spectral / fft-floor", "sdpa / spectral",
                                                  "spectral MB", "sdpa MB"]
    rows = []
    for n in _lengths(report):
        spec = ms_of(report, "spectral", n)
        rows.append([n] + [fmt(ms_of(report, op, n)) for op in ops]
                    + [fmt(ratio(spec, ms_of(report, "fft-floor", n))),
                       fmt(ratio(ms_of(report, "sdpa", n), spec), ".1f"),
                       fmt(mem.get(("spectral", n)), ".0f"), fmt(mem.get(("sdpa", n)), ".0f")])
    return markdown_table(head, rows)


def _lm_table(report: dict) -> list[str]:
    """Tokens/s and peak MB per stack, and attention's time over each spectral stack's."""
    ops = list(dict.fromkeys(r["op"] for r in report["results"]))
    by = {(r["op"], r["n"]): r for r in report["results"]}
    spectral = [op for op in ops if op.startswith("spectral")]
    head = (["n"] + [f"{op} tok/s" for op in ops] + [f"{op} MB" for op in ops]
            + [f"attention / {op}" for op in spectral])
    rows = []
    for n in _lengths(report):
        found = [by.get((op, n)) for op in ops]
        rows.append([n] + [fmt(r and r["batch"] * n / (r["ms"] / 1e3), ".0f") for r in found]
                    + [fmt(r and r.get("peak_mb"), ".0f") for r in found]
                    + [fmt(ratio(ms_of(report, "attention", n), ms_of(report, op, n)), ".2f")
                       for op in spectral])
    return markdown_table(head, rows)
