"""Rewrite the generated sections of README.md and docs/*.md from result JSON files.

A section is delimited by ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``;
NAME maps to a JSON file under benchmarks/results and a formatter. Run after the
benchmark scripts; never edit those sections by hand.

    python benchmarks/update_readme.py           # rewrite every page
    python benchmarks/update_readme.py --check   # exit 1 naming each stale or unknown section
"""
from __future__ import annotations

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))          # readme_headline, beside this script

from specmix.app.bench.harness import cpu_label  # noqa: E402
from specmix.app.bench.report import format_report  # noqa: E402
from specmix.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _kinds(model: dict) -> str:
    """The mixer pattern of a saved model config (a list since typed configs, a string before)."""
    mixers = model["mixers"]
    return ",".join(mixers) if isinstance(mixers, list) else mixers


def _bench(name: str):
    def render() -> str | None:
        path = RESULTS / name / "bench.json"
        if not path.exists():
            return None
        report = json.loads(path.read_text())
        env = report["env"]
        parts = [f"`{path.relative_to(ROOT)}`: {cpu_label(env)} ({env.get('cpu_count')} cores)"]
        if "torch" in env:
            parts.append(f"torch {env['torch']} with {env['threads']} threads, FFT {env['torch_fft']}")
        parts.append(f"numpy {env.get('numpy')}")
        if env.get("date"):
            parts.append(f"run on {env['date']}")
        head = ", ".join(parts)
        return head + "\n\n" + format_report(report)
    return render


def _json_section(filename: str, formatter_path: str):
    def render() -> str | None:
        path = RESULTS / filename
        if not path.exists():
            return None
        module, func = formatter_path.rsplit(".", 1)
        fmt = getattr(__import__(module, fromlist=[func]), func)
        return fmt(json.loads(path.read_text()))
    return render


def _swap() -> str | None:
    path = RESULTS / "swap" / "swap.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    cfg = r["config"]
    lines = ["| model | val loss | ms / step | params |", "|---|---|---|---|"]
    lines += [f"| {x['model']} | {x['val_loss']:.3f} | {x['ms_per_step']:.1f} | {x['params']} |"
              for x in r["results"]]
    lines += ["", f"{cfg['steps']} steps, batch {cfg['batch_size']}, context {cfg['context']}, "
              f"d_model {cfg['d_model']}, {cfg['n_layers']} layers, corpus {r['corpus']}."]
    return "\n".join(lines)


def _lm(name: str):
    def render() -> str | None:
        path = RESULTS / name / "metrics.jsonl"
        if not path.exists():
            return None
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        cfg = json.loads((RESULTS / name / "config.json").read_text())
        m, t = cfg["model"], cfg["train"]
        lines = ["| step | train loss | val loss | tokens/s | elapsed s |", "|---|---|---|---|---|"]
        lines += [f"| {r['step']} | {r['train_loss']:.3f} | {r['val_loss']:.3f} | "
                  f"{r['tokens_per_s']:.0f} | {r['elapsed_s']:.0f} |" for r in rows]
        lines += ["", f"mixers `{_kinds(m)}`, d_model {m['d_model']}, {m['n_layers']} layers, "
                  f"context {m['context']}, batch {t['batch_size']}, lr {t['lr']}."]
        return "\n".join(lines)
    return render


def _lengths() -> str | None:
    from specmix.app.eval_lengths import format_lengths
    path = RESULTS / "lengths" / "lengths.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    m, t = r["model"], json.loads((RESULTS / "lengths-train" / "config.json").read_text())["train"]
    last = [json.loads(x) for x in (RESULTS / "lengths-train" / "metrics.jsonl").read_text().splitlines()][-1]
    return (format_lengths(r) + "\n\n" +
            f"mixers `{_kinds(m)}`, filter {m['filter']}, d_model {m['d_model']}, {m['n_layers']} layers, "
            f"trained at context {m['context']}: {t['steps']} steps of batch {t['batch_size']}, "
            f"{last['elapsed_s']:.0f} s, val loss {last['val_loss']:.3f} (random windows) at the end.")


def _decode(folder: str):
    def render() -> str | None:
        from specmix.app.bench.decode import format_decode
        path = RESULTS / folder / "decode.json"
        if not path.exists():
            return None
        r = json.loads(path.read_text())
        c, rows = r["config"], r["rows"]
        params = ", ".join(f"{k}: {p}" for k, p in dict((x["mixers"], x["params"]) for x in rows).items())
        return (format_decode(r) + "\n\n" +
                f"{c['new_tokens']} new tokens after each prompt, d_model {c['d_model']}, {c['n_layers']} "
                f"layers, spectral filter {c.get('filter', 'frequency')}, parameters {params}; "
                f"{c['repeats']} alternating repeats; device {r['device']} ({cpu_label(r['env'])}), "
                f"torch {r['torch']}, {r['threads']} threads.")
    return render


def _hf_gpt2() -> str | None:
    from specmix.app.tables import fmt, markdown_table, ratio
    path = RESULTS / "hf-gpt2" / "hf_gpt2.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    c = r["config"]
    lines = markdown_table(["model", "val loss", "ms / step", "params"],
                           [[q["model"], f"{q['val_loss']:.3f}", f"{q['ms_per_step']:.1f}", q["params"]]
                            for q in r["quality"]])
    lines += ["", f"{c['steps']} steps, batch {c['batch_size']}, context {c['context']}, d_model {c['d_model']}, "
              f"{c['n_layers']} layers, corpus {r['corpus']}, val loss over 20 fixed batches.", ""]
    by = {(x["what"], x["n"], x["model"]): x for x in r["speed"]}
    swaps = [k for k in ("spectral", "spectral-gated") if any(m == k for _, _, m in by)]
    label = {"spectral": "swapped", "spectral-gated": "swapped gated"}
    rows = []
    for n in sorted({n for what, n, _ in by if what == "forward/train"}):
        a = by[("forward/train", n, "sdpa")]
        cells = [n, fmt(a["forward_ms"], ".1f")]
        for k in swaps:
            cells += [fmt(by[("forward/train", n, k)]["forward_ms"], ".1f"),
                      fmt(ratio(a["forward_ms"], by[("forward/train", n, k)]["forward_ms"]), ".1f") + "x"]
        cells.append(fmt(a["train_ms"], ".1f"))
        for k in swaps:
            cells += [fmt(by[("forward/train", n, k)]["train_ms"], ".1f"),
                      fmt(ratio(a["train_ms"], by[("forward/train", n, k)]["train_ms"]), ".1f") + "x"]
        rows.append(cells)
    head = ["tokens", "SDPA forward ms"] + [h for k in swaps for h in (f"{label[k]} forward ms", "speed-up")]
    head += ["SDPA train step ms"] + [h for k in swaps for h in (f"{label[k]} train step ms", "speed-up")]
    lines += markdown_table(head, rows)
    rows = []
    for n in sorted({n for what, n, _ in by if what == "generate"}):
        a = by[("generate", n, "sdpa")]
        cells = [n, fmt(a["tokens_per_s"], ".0f")]
        for k in swaps:
            s = by[("generate", n, k)]
            cells += [fmt(s["tokens_per_s"], ".0f"), fmt(ratio(s["tokens_per_s"], a["tokens_per_s"]), ".1f") + "x"]
        cells += [fmt(a["prefill_ms"], ".0f")] + [fmt(by[("generate", n, k)]["prefill_ms"], ".0f") for k in swaps]
        rows.append(cells)
    head = ["prompt", "SDPA generate tok/s"] + [h for k in swaps for h in (f"{label[k]} tok/s", "speed-up")]
    head += ["SDPA prompt ms"] + [f"{label[k]} prompt ms" for k in swaps]
    lines += ["", *markdown_table(head, rows)]
    env = r["env"]
    lines += ["", "swapped: `swap_attention(model, max_len=n)` (ungated, the default); swapped gated: "
              "`gated=True`. Speed: GPT-2 shaped, 2 layers, 256 wide, 4 heads, batch 1, untrained, "
              f"{next(iter(by.values())).get('new_tokens', c['new_tokens'])} new tokens after each prompt; "
              f"{env['cpu']} ({env['cpu_count']} cores), torch {env['torch']}, {env['threads']} threads."]
    return "\n".join(lines)


def _train_dtype() -> str | None:
    from specmix.app.tables import markdown_table
    runs = {}
    for dtype in ("float32", "bfloat16"):
        path = RESULTS / "train-dtype" / dtype / "metrics.jsonl"
        if not path.exists():
            return None
        runs[dtype] = [json.loads(line) for line in path.read_text().splitlines()]
    rows = []
    for a, b in zip(runs["float32"], runs["bfloat16"]):
        rows.append([a["step"], f"{a['train_loss']:.3f}", f"{b['train_loss']:.3f}", f"{a['val_loss']:.3f}",
                     f"{b['val_loss']:.3f}", f"{abs(a['val_loss'] - b['val_loss']):.3f}",
                     f"{a['tokens_per_s']:.0f}", f"{b['tokens_per_s']:.0f}", f"{b['tokens_per_s'] / a['tokens_per_s']:.2f}"])
    repeats = {d: RESULTS / "train-dtype" / f"{d}-2" / "metrics.jsonl" for d in runs}   # the ABBA repeat
    every = {d: runs[d] + ([json.loads(line) for line in repeats[d].read_text().splitlines()]
                           if repeats[d].exists() else []) for d in runs}
    speed = [sum(m["tokens_per_s"] for m in every[d]) / len(every[d]) for d in ("float32", "bfloat16")]
    n_runs = min(len(every[d]) // len(runs[d]) for d in runs)
    lines = markdown_table(["step", "fp32 train", "bf16 train", "fp32 val", "bf16 val", "val diff",
                            "fp32 tok/s", "bf16 tok/s", "bf16 / fp32"], rows)
    lines += ["", f"Mean over {n_runs} run(s) of each dtype (order float32, bfloat16"
              + (", bfloat16, float32" if n_runs > 1 else "") + f"): float32 {speed[0]:.0f} tokens/s, "
              f"bfloat16 {speed[1]:.0f} tokens/s ({speed[1] / speed[0]:.2f}x); the table shows the first run "
              "of each; largest val difference "
              f"{max(abs(a['val_loss'] - b['val_loss']) for a, b in zip(runs['float32'], runs['bfloat16'])):.3f}."]
    return "\n".join(lines)


def _recipe_detail(run: dict) -> str:
    """What else sets a recipe apart: the filter of spectral layers, attention's positions."""
    kinds = run["mixers"] if isinstance(run["mixers"], list) else [run["mixers"]]
    parts = []
    if any(k.startswith("spectral") for k in kinds) and run.get("filter"):
        parts.append(f"{run['filter']} filter")
    if any(k.startswith(("attention", "local")) for k in kinds) and run.get("pos_emb") not in (None, "auto"):
        parts.append(f"{run['pos_emb']} positions")
    if "shape" in run:                    # runs that recorded their shape and optimizer
        parts.append(f"{run['shape']}, {run['optimizer']} {run['schedule']} lr {run['lr']:g}")
    return f" ({', '.join(parts)})" if parts else ""


def _quality(folder: str, corpus: str | None):
    """The runs of ``folder/quality.json`` (those named ``corpus-*`` when a corpus is given)."""
    def render() -> str | None:
        from specmix.app.tables import fmt, markdown_table
        path = RESULTS / folder / "quality.json"
        if not path.exists():
            return None
        runs = [r for r in json.loads(path.read_text())["runs"] if corpus is None or r["run"].startswith(corpus + "-")]
        if not runs:
            return None
        minutes = list(runs[0]["best_val_by_minute"])
        head = ["recipe", "mixers", "params"] + [f"best val by {m} min" for m in minutes]
        head += ["best val (step, minute)", "final val", "final train", "tokens seen", "tokens/s"]
        rows = [[r["run"].split("-", 1)[1] if corpus else r["run"], f"`{_kinds({'mixers': r['mixers']})}`" + _recipe_detail(r), r["params"]]
                + [fmt(r["best_val_by_minute"][m], ".4f") for m in minutes]
                + [f"{r['best_val']:.4f} ({r['best_step']}, {r['best_minutes']:.1f})", f"{r['final_val']:.4f}",
                   f"{r['final_train']:.4f}", f"{r['tokens_seen'] / 1e6:.1f}M", f"{r['tokens_per_s']:.0f}"]
                for r in runs]
        return "\n".join(markdown_table(head, rows)) + f"\n\nEach run trained for {runs[0]['minutes']:.1f} minutes."
    return render


def _lm_eval() -> str | None:
    path = RESULTS / "lm-eval" / "lm_eval.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    sys.path.insert(0, str(ROOT / "examples"))
    from lm_eval_local import format_lm_eval
    return format_lm_eval(report)


def _peers_op(name: str, mode: str):
    """Every ``peers-op/NAME-MODE*/pairs.json`` (the long lengths run with fewer rounds), one
    table each; A is specmix's op, B the peer's: B / A above 1 means specmix is faster."""
    def render() -> str | None:
        from specmix.app.bench.pairs import format_pairs
        paths = sorted((RESULTS / "peers-op").glob(f"{name}-{mode}*/pairs.json"), key=lambda p: len(str(p)))
        if not paths:
            return None
        return "\n\n".join(f"`{p.relative_to(ROOT)}`:\n\n" + format_pairs(json.loads(p.read_text()))
                            for p in paths)
    return render


def _pairs_folder(folder: str):
    """Every ``FOLDER/*/pairs.json``, one table each, in name order."""
    def render() -> str | None:
        from specmix.app.bench.pairs import format_pairs
        paths = sorted((RESULTS / folder).glob("*/pairs.json"))
        if not paths:
            return None
        return "\n\n".join(f"`{p.relative_to(ROOT)}`:\n\n" + format_pairs(json.loads(p.read_text()))
                              for p in paths)
    return render


def _headline() -> str | None:
    from readme_headline import headline_rows

    from specmix.app.tables import markdown_table
    rows = headline_rows(RESULTS)
    if not rows:
        return None
    return "\n".join(markdown_table(["what", "result", "details, command, machine and date"], rows))


SECTIONS = {
    "headline": _headline,
    "bench-numpy": _bench("numpy"),
    "bench-torch-forward": _bench("torch-forward"),
    "bench-torch-train": _bench("torch-train"),
    "bench-torch-train-65536": _bench("torch-train-65536"),
    "bench-torch-forward-65536": _bench("torch-forward-65536"),
    "pairs-train": _json_section("pairs-train/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "pairs-forward-floor": _json_section("pairs-forward-floor/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "pairs-sdpa-forward": _json_section("pairs-sdpa/forward/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "pairs-sdpa-train": _json_section("pairs-sdpa/train/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "pairs-sdpa-forward-warm": _json_section("pairs-sdpa/forward-warm/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "pairs-sdpa-train-warm": _json_section("pairs-sdpa/train-warm/pairs.json",
                                           "specmix.app.bench.pairs.format_pairs"),
    "reference": _json_section("reference/reference.json", "specmix.app.reference_run.format_reference"),
    "swap": _swap,
    "compare": _json_section("compare/compare.json", "specmix.app.compare.format_compare"),
    "compare-ctx256": _json_section("compare-ctx256/compare.json", "specmix.app.compare.format_compare"),
    "lm-spectral": _lm("lm-spectral"),
    "recall": _json_section("recall/compare.json", "specmix.app.compare.format_compare"),
    "recall-head1": _json_section("recall-head1/compare.json", "specmix.app.compare.format_compare"),
    "lm-context": _bench("lm-context"),
    "lm-step-fp32": _bench("lm-step/fp32"),
    "lm-step-bf16": _bench("lm-step/bf16"),
    "lm-pairs-fp32": _json_section("lm-step/pairs-fp32/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "lm-pairs-bf16": _json_section("lm-step/pairs-bf16/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "lm-ceiling-fp32": _json_section("lm-step/ceiling-fp32/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "lm-ceiling-bf16": _json_section("lm-step/ceiling-bf16/pairs.json", "specmix.app.bench.pairs.format_pairs"),
    "lengths": _lengths,
    "lm-4096": _lm("lm-4096"),
    "decode": _decode("decode"),
    "decode-implicit": _decode("decode-implicit"),
    "hf-gpt2": _hf_gpt2,
    "lm-eval": _lm_eval,
    "train-dtype": _train_dtype,
    "quality": _quality("quality", "shakespeare"),
    "quality-stdlib": _quality("quality", "stdlib"),
    "quality-search": _quality("quality-search", None),
    "quality-round2": _quality("quality-round2", "shakespeare"),
    "quality-round2-stdlib": _quality("quality-round2", "stdlib"),
    "context-parallel": _json_section("context-parallel/context.json",
                                      "specmix.app.bench.context.format_context"),
    "compile": _json_section("compile/compile.json", "compile_export.format_compile"),
    "peers-long-conv-train": _peers_op("long-conv", "train"),
    "peers-long-conv-forward": _peers_op("long-conv", "forward"),
    "peers-implicit-train": _peers_op("implicit-long-conv", "train"),
    "peers-implicit-forward": _peers_op("implicit-long-conv", "forward"),
    "decode-batch": _decode("decode-batch"),
    "peers-lm": _pairs_folder("peers-lm"),
    "peers-decode": _decode("peers-decode"),
    "peers-bidir": _pairs_folder("peers-bidir"),
    "peers-mlm": _json_section("peers-mlm/mlm.json", "specmix.app.bench.encoders.format_mlm"),
    "mqar": _json_section("mqar/mqar.json", "specmix.app.bench.mqar.format_mqar"),
    "mqar-full": _json_section("mqar-full/mqar.json", "specmix.app.bench.mqar.format_mqar"),
}


MARKER = re.compile(r"(<!-- generated:([\w-]+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.S)


def pages() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render_page(text: str) -> tuple[str, list[str], list[str]]:
    """``(new text, stale section names, unknown section names)`` of one page."""
    stale, unknown = [], []

    def replace(match: re.Match) -> str:
        head, name, body, tail = match.groups()
        render = SECTIONS.get(name)
        if render is None:
            unknown.append(name)
            return match.group(0)
        new = render()
        if new is None:                               # its results are absent: left as it is
            return match.group(0)
        new += "\n"
        if new != body:
            stale.append(name)
        return head + new + tail
    return MARKER.sub(replace, text), stale, unknown


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    problems, placed = [], set()
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new, stale, unknown = render_page(text)
        placed |= {m.group(2) for m in MARKER.finditer(text)}
        rel = page.relative_to(ROOT)
        problems += [f"{rel}: section {n} is stale against its results" for n in stale]
        problems += [f"{rel}: section {n} has no generator in update_readme.py" for n in unknown]
        if not check and new != text:
            atomic_write_text(page, new)
    problems += [f"section {n} appears on no page" for n in SECTIONS if n not in placed]
    for p in problems:
        print(p, file=sys.stderr)
    bad = [p for p in problems if check or "no generator" in p]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
