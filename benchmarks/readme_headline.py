"""The rows of the README's generated headline table (section ``headline`` of
``benchmarks/update_readme.py``): one small function per figure, each reading its results file."""
from __future__ import annotations

import json
import pathlib

def _loader(results: pathlib.Path):
    """``load(rel)``: the JSON of ``results / rel``, or None when the run is absent."""
    def load(rel: str):
        path = results / rel
        return json.loads(path.read_text()) if path.exists() else None
    return load


def _sweep_ratio(report: dict, n: int, over: str = "sdpa", under: str = "spectral") -> float | None:
    ms = {r["op"]: r["ms"] for r in report["results"] if r["n"] == n}
    return ms[over] / ms[under] if over in ms and under in ms else None


def _row_scaling(load) -> list[str] | None:
    fwd, train = load("pairs-sdpa/forward-warm/pairs.json"), load("pairs-sdpa/train-warm/pairs.json")
    sweep = load("torch-train/bench.json")
    if not (fwd and train and sweep):
        return None
    big = _sweep_ratio(sweep, 65536)
    return ["one spectral op vs SDPA (d 256, fp32)",
            f"SDPA takes {fwd['rows'][0]['ratio']:.1f}x the time forward and {train['rows'][0]['ratio']:.1f}x "
            f"in training at 4K tokens (side by side)" + (f"; {big:.0f}x in training at 64K" if big else ""),
            "[benchmarks](docs/benchmarks.md#the-scaling-benchmark)"]


def _row_lm_step(load) -> list[str] | None:
    lm = load("lm-step/pairs-fp32/pairs.json")
    if not lm:
        return None
    ratios = " / ".join(f"{r['ratio']:.2f}x" for r in lm["rows"])
    lengths = " / ".join(str(r["base"]) for r in lm["rows"])
    return ["LM training step, gated vs attention (4 layers, d 128, fp32)",
            f"{ratios} attention's speed at {lengths} tokens",
            "[benchmarks](docs/benchmarks.md#whole-language-models-one-training-step)"]


def _row_quality(load) -> list[str] | None:
    quality = load("quality/quality.json")
    if not quality:
        return None
    best = {r["run"].split("-", 1)[1]: r for r in quality["runs"] if r["run"].startswith("shakespeare-")}
    return ["tiny Shakespeare, 30 CPU minutes (bf16)",
            ", ".join(f"{k} val {r['best_val']:.4f} ({r['params'] / 1e6:.1f}M params)" for k, r in best.items()),
            "[benchmarks](docs/benchmarks.md#quality-in-30-cpu-minutes)"]


def _row_quality_round2(load) -> list[str] | None:
    report = load("quality-round2/quality.json")
    if not report:
        return None
    runs = {r["run"].split("-", 1)[1]: r for r in report["runs"] if r["run"].startswith("shakespeare-")}
    missing = [k for k in ("spectral", "attention", "gpt2", "mamba") if k not in runs]
    ranked = sorted(runs.items(), key=lambda kv: kv[1]["best_val"])
    return ["tiny Shakespeare, 30 CPU minutes, ~1.2M parameters (bf16)",
            ", ".join(f"{k} best val {r['best_val']:.4f}" for k, r in ranked)
            + (f" ({', '.join(missing)} not run yet)" if missing else ""),
            "[benchmarks](docs/benchmarks.md#second-round-muon-warmup-stable-decay-deeper-and-thinner)"]


def _row_recall(load) -> list[str] | None:
    recall = load("recall/compare.json")
    if not recall:
        return None
    return ["associative recall, 1024 tokens, equal budget",
            "answer accuracy " + ", ".join(f"{v['mixers']} {v['final_answer_acc']:.2f}" for v in recall["variants"])
            + " (attention not converged in this budget)",
            "[long context](docs/long-context.md#associative-recall)"]


def _row_mqar(load) -> list[str] | None:
    mqar = load("mqar/mqar.json")
    if not mqar:
        return None
    cells = [c for c in mqar["cells"] if (c["seq_len"], c["kv_pairs"]) == (128, 8)
             and c["model"] in ("spectral-taylor hd4", "attention")]
    return ["MQAR (128 tokens, 8 pairs), CPU budget",
            ", ".join(f"{c['model']} {c['best']['acc']:.3f}" for c in cells) + " (attention not converged in this budget)",
            "[long context](docs/long-context.md#multi-query-associative-recall-mqar)"]


def _row_decode(load) -> list[str] | None:
    decode = load("decode/decode.json")
    if not decode:
        return None
    longest = max(decode["ratios"], key=int)
    return [f"cached decoding after a {int(longest) // 1024}K prompt",
            f"{decode['ratios'][longest]['attention']:.1f}x attention's tokens/s",
            "[long context](docs/long-context.md#decoding-after-long-prompts)"]


def _row_decode_batch(load) -> list[str] | None:
    report = load("decode-batch/decode.json")
    if not report:
        return None
    top = max(report["rows"], key=lambda r: (r["prompt"], r["batch"]))
    key = f"{top['prompt']}x{top['batch']}"
    kv = next(r for r in report["rows"] if r["mixers"] == "attention" and r["prompt"] == top["prompt"])
    return [f"batched decoding, {top['batch']} sequences after {top['prompt'] // 1024}K prompts",
            f"{report['ratios'][key]['attention']:.0f}x attention's total tokens/s; state "
            f"{top['state_mb_per_seq']:.0f} MB per sequence against a {kv['state_mb_per_seq']:.0f} MB KV cache",
            "[long context](docs/long-context.md#batched-decoding)"]


def _row_fla(load) -> list[str] | None:
    rows = [r for name in ("long-conv-train", "long-conv-train-256k") if (rep := load(f"peers-op/{name}/pairs.json"))
            for r in rep["rows"]]
    if not rows:
        return None
    ratios = ", ".join(f"{r['ratio']:.2f}x" for r in rows)
    lengths = " / ".join(f"{r['base'] // 1024}K" for r in rows)
    worst = min(r["neighbour_peak_mb"] / r["base_peak_mb"] for r in rows)
    return ["causal long convolution vs fla-core's LongConvolution (training, d 256)",
            f"fla's time / specmix's: {ratios} at {lengths}; fla's peak memory {worst:.1f}x specmix's or more",
            "[benchmarks](docs/benchmarks.md#against-flash-linear-attentions-long-convolutions)"]


def _row_peer_decode(load) -> list[str] | None:
    report = load("peers-decode/decode.json")
    if not report:
        return None
    longest = max(report["ratios"], key=int)
    ours = next(r for r in report["rows"] if r["prompt"] == int(longest) and not r["mixers"].startswith("hf-"))
    names = {"hf-gpt2": "GPT-2's", "hf-mamba": "Mamba's", "hf-rwkv": "RWKV's"}
    ratios = ", ".join(f"{ratio:.1f}x {names.get(kind, kind)}" for kind, ratio in report["ratios"][longest].items())
    return [f"cached decoding after a {int(longest) // 1024}K prompt vs transformers' GPT-2 / Mamba / RWKV "
            "(~1.2M parameters)",
            f"{ours['mixers']} {ours['tokens_per_s']:.0f} tokens/s: {ratios} tokens/s",
            "[benchmarks](docs/benchmarks.md#against-transformers-language-models-and-encoders)"]


ENCODER_NAMES = {"enc-spectral": "BERT with spectral mixing swapped in", "enc-fnet": "FNet", "enc-bert": "BERT"}


def _row_mlm(load) -> list[str] | None:
    report = load("peers-mlm/mlm.json")
    if not report:
        return None
    minutes = report["config"]["seconds"] / 60
    falling = [r["kind"] for r in report["runs"]
               if len(r["curve"]) > 1 and r["curve"][-1]["val_loss"] < r["curve"][-2]["val_loss"]]
    note = " (none converged: every loss still falling at the end)" if len(falling) == len(report["runs"]) else ""
    return [f"masked-character modelling, {minutes:.0f} minutes each, 4 x 128 encoders (val loss)",
            ", ".join(f"{ENCODER_NAMES.get(r['kind'], r['kind'])} {r['best_val']:.2f}"
                      for r in sorted(report["runs"], key=lambda r: r["best_val"]))
            + note,
            "[benchmarks](docs/benchmarks.md#against-transformers-language-models-and-encoders)"]


def _row_context_parallel(load) -> list[str] | None:
    cp = load("context-parallel/context.json")
    if not cp:
        return None
    top, most = max(r["seq_len"] for r in cp["rows"]), max(r["processes"] for r in cp["rows"])
    worst = max((r for r in cp["rows"] if r["seq_len"] == top and r["processes"] == most), key=lambda r: r["peak_mb"])
    size = f"{top // 2**20}M" if top >= 2**20 else f"{top // 1024}K"
    return [f"context parallelism, one sequence of {size} tokens",
            f"{worst['processes']} processes: step peak {worst['peak_vs_one']:.2f}x of one process's",
            "[long context](docs/long-context.md#context-parallelism-one-sequence-across-processes)"]


def _row_lm_eval(load) -> list[str] | None:
    report = load("lm-eval/lm_eval.json")
    if not report:
        return None
    worst = max(r["max_abs_diff"] for r in report["rows"])
    return ["lm-eval (hf backend, CLI) on saved native and swapped models",
            f"per-sample log-likelihoods equal the models' own forward within {worst:.0e}",
            "[Hugging Face](docs/huggingface.md#lm-evaluation-harness)"]


def _row_hf_gpt2(load) -> list[str] | None:
    hf = load("hf-gpt2/hf_gpt2.json")
    if not hf:
        return None
    return ["Hugging Face GPT-2 (4 layers, d 128), 600 steps",
            ", ".join(f"{q['model']} val {q['val_loss']:.3f}" for q in hf["quality"]),
            "[Hugging Face](docs/huggingface.md)"]


HEADLINE_ROWS = (_row_scaling, _row_fla, _row_lm_step, _row_quality, _row_quality_round2, _row_recall, _row_mqar,
                 _row_decode, _row_decode_batch, _row_peer_decode, _row_mlm, _row_context_parallel, _row_lm_eval,
                 _row_hf_gpt2)


def headline_rows(results: pathlib.Path) -> list[list[str]]:
    """One row per headline figure whose results file exists under ``results``: what, the
    figure, the page with its command, machine and date."""
    load = _loader(results)
    return [row for make in HEADLINE_ROWS if (row := make(load)) is not None]
