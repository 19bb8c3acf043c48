"""torch.compile and export of a SpecMixLM at three lengths: what compiling costs and buys.

One compiled object (default ``torch.compile``: inductor, automatic dynamic shapes, a cold
compiler cache) trains at three lengths; for each length the first call's time (compiling
included) and the
median training step, eager and compiled alternating in rounds, side by side. Then the
same model exported once (``torch.export`` with a dynamic length, and ONNX run by
onnxruntime) against eager inference at the same lengths.

    python benchmarks/compile_export.py [--out benchmarks/results/compile] [--rounds 7]

Writes ``compile.json``; ``format_compile`` renders it (benchmarks/update_readme.py).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LENGTHS = (256, 512, 1024)
SHAPE = dict(d_model=128, n_layers=4, mixers=("spectral-gated",), filter="implicit", context=1024)
BATCH = 8
GRAPH_LENGTHS = (256, 512, 1024, 2048, 4096, 8192)


def _step(model, idx, targets):
    model.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    return loss


def _clock(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def train_rows(rounds: int) -> list[dict]:
    import torch
    from torch._dynamo.utils import counters

    from specmix import LMConfig, SpecMixLM
    torch.manual_seed(0)
    model = SpecMixLM(LMConfig(vocab_size=65, **SHAPE))
    compiled = torch.compile(model)
    rows = []
    for n in LENGTHS:
        idx, targets = torch.randint(0, 65, (BATCH, n)), torch.randint(0, 65, (BATCH, n))
        first = _clock(lambda: _step(compiled, idx, targets))
        _step(model, idx, targets)                                         # warm eager too
        eager, comp = [], []
        for _ in range(rounds):                                            # alternating, side by side
            eager.append(_clock(lambda: _step(model, idx, targets)))
            comp.append(_clock(lambda: _step(compiled, idx, targets)))
        ratios = [e / c for e, c in zip(eager, comp)]
        rows.append(dict(n=n, first_call_s=first / 1e3, eager_ms=statistics.median(eager),
                         compiled_ms=statistics.median(comp), speedup=statistics.median(ratios),
                         graphs=counters["stats"]["unique_graphs"]))
        print(rows[-1], flush=True)
    return rows


def graph_counts() -> list[dict]:
    """Graphs made so far by one compiled (one-layer, d 16) LM trained at doubling lengths."""
    import torch
    from torch._dynamo.utils import counters

    from specmix import LMConfig, SpecMixLM
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = SpecMixLM(LMConfig(vocab_size=65, d_model=16, n_layers=1, mixers=("spectral-gated",),
                               filter="implicit", context=GRAPH_LENGTHS[-1]))
    compiled, rows = torch.compile(model), []
    for n in GRAPH_LENGTHS:
        idx = torch.randint(0, 65, (2, n))
        _step(compiled, idx, idx)
        rows.append(dict(n=n, graphs=counters["stats"]["unique_graphs"]))
        print(rows[-1], flush=True)
    return rows


def autotune_check() -> dict:
    """``mode="max-autotune-no-cudagraphs"`` on the graph-count model at two lengths: the
    first call's seconds and the largest relative difference from eager in the loss."""
    import torch

    from specmix import LMConfig, SpecMixLM
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SpecMixLM(LMConfig(vocab_size=65, d_model=16, n_layers=1, mixers=("spectral-gated",),
                               filter="implicit", context=512))
    compiled, out = torch.compile(model, mode="max-autotune-no-cudagraphs", dynamic=True), {}
    for n in (100, 333):
        idx = torch.randint(0, 65, (2, n))
        t = time.perf_counter()
        loss = _step(compiled, idx, idx).item()
        out[str(n)] = dict(first_call_s=time.perf_counter() - t,
                           rel_diff=abs(loss - _step(model, idx, idx).item()) / abs(loss))
    print(out, flush=True)
    return out


def export_rows(rounds: int) -> dict:
    import numpy as np
    import onnxruntime
    import torch

    from specmix import LMConfig, SpecMixLM
    from specmix.export import export_onnx, export_program
    torch.manual_seed(0)
    model = SpecMixLM(LMConfig(vocab_size=65, **SHAPE)).eval()
    t = time.perf_counter()
    program = export_program(model, max_len=SHAPE["context"]).module()
    export_s = time.perf_counter() - t
    path = os.path.join(tempfile.mkdtemp(), "lm.onnx")
    t = time.perf_counter()
    export_onnx(model, path, max_len=SHAPE["context"])
    onnx_s = time.perf_counter() - t
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    rows = []
    for n in LENGTHS:
        idx = torch.randint(0, 65, (BATCH, n))
        with torch.no_grad():
            expected = model(idx)[0]
            got = program(idx)
        ort_out = torch.from_numpy(session.run(None, {"input": idx.numpy()})[0])
        times = {"eager": [], "program": [], "onnxruntime": []}
        for _ in range(rounds):
            with torch.no_grad():
                times["eager"].append(_clock(lambda: model(idx)))
                times["program"].append(_clock(lambda: program(idx)))
            times["onnxruntime"].append(_clock(lambda: session.run(None, {"input": idx.numpy()})))
        scale = float(expected.abs().max())
        rows.append(dict(n=n, **{f"{k}_ms": statistics.median(v) for k, v in times.items()},
                         program_rel_diff=float((got - expected).abs().max()) / scale,
                         onnx_rel_diff=float((ort_out - expected).abs().max()) / scale))
        print(rows[-1], flush=True)
    return dict(export_s=export_s, onnx_export_s=onnx_s, onnx_mb=os.path.getsize(path) / 2**20,
                onnxruntime=onnxruntime.__version__, numpy=np.__version__, rows=rows)


def format_compile(report: dict) -> str:
    env = report["env"]
    from specmix.app.bench.harness import cpu_label
    head = (f"`benchmarks/results/compile/compile.json`: {cpu_label(env)} ({env['cpu_count']} cores), torch "
            f"{env['torch']} with {env['threads']} threads, run on {env['date']}; SpecMixLM "
            f"{report['shape']}, batch {report['batch']}, "
            f"median of {report['rounds']} alternating rounds.")
    lines = [head, "", "| N | first compiled call (s) | eager step (ms) | compiled step (ms) | eager / compiled | graphs so far |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['first_call_s']:.1f} | {r['eager_ms']:.1f} | {r['compiled_ms']:.1f} | "
              f"{r['speedup']:.2f}x | {r['graphs']} |" for r in report["train"]]
    ex = report["export"]
    lines += ["", f"Export of the same model, once for every length: `torch.export` {ex['export_s']:.1f} s, "
              f"ONNX {ex['onnx_export_s']:.1f} s ({ex['onnx_mb']:.1f} MB, onnxruntime {ex['onnxruntime']}). "
              "Inference (forward only):", "",
              "| N | eager (ms) | exported program (ms) | onnxruntime (ms) | program vs eager | onnxruntime vs eager |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['eager_ms']:.1f} | {r['program_ms']:.1f} | {r['onnxruntime_ms']:.1f} | "
              f"{r['program_rel_diff']:.0e} | {r['onnx_rel_diff']:.0e} |" for r in ex["rows"]]
    lines += ["", "The differences are max |difference| / max |eager output| of the logits."]
    if "graphs" in report:
        lines += ["", "Graphs made so far by one `torch.compile(model)` (one layer, d_model 16) trained at "
                  "each N in turn: " + ", ".join(f"N = {r['n']}: {r['graphs']}" for r in report["graphs"]) + "."]
    if "autotune" in report:
        lines += ["", "`mode=\"max-autotune-no-cudagraphs\", dynamic=True` on that model: " + ", ".join(
            f"N = {n}: first call {r['first_call_s']:.0f} s, loss {r['rel_diff']:.0e} from eager (relative)"
            for n, r in report["autotune"].items()) + "."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    # a cold compiler cache: the first call's time must include compiling, not a cache hit
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="specmix-inductor-")

    from specmix.app.bench.harness import environment
    env = environment("cpu")
    report = dict(env=env,
                  shape={k: list(v) if isinstance(v, tuple) else v for k, v in SHAPE.items()}, batch=BATCH,
                  rounds=args.rounds, train=train_rows(args.rounds), export=export_rows(args.rounds),
                  graphs=graph_counts(), autotune=autotune_check())
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "compile.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(format_compile(report))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
