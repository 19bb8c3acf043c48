"""lm-evaluation-harness on saved specmix models, on a small local task, against the models'
own log-likelihoods.

    pip install -e ".[hf,eval]"          # lm-eval is heavy: not part of `make test`
    python examples/lm_eval_local.py --out benchmarks/results/lm-eval

Saves two small models with the character tokenizer: a native ``SpecMixForCausalLM`` and a
GPT-2 after ``swap_attention`` (``save_swapped``). Writes a local loglikelihood task (JSON
lines, read by lm-eval through ``datasets``' json loader: no download), runs
``python -m lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True`` on each
folder in a fresh process, and compares every sample's log-likelihood with the one computed
here by the model's own forward. Writes ``lm_eval.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

CHARS = "\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DOCS = [("First Citizen:\nBefore we proceed any further, hear me ", "speak."),
        ("All:\nSpeak, ", "speak."), ("First Citizen:\nYou are all resolved rather to ", "die than to famish?"),
        ("All:\nResolved. ", "resolved."), ("First Citizen:\nFirst, you know Caius Marcius is chief ", "enemy to the people.")]
TASK = """task: specmix_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
"""


def build_models(folder: str) -> dict[str, str]:
    """Save the two models (and the tokenizer beside each); returns name -> folder."""
    import transformers

    from specmix import swap_attention
    from specmix.hf import SpecMixConfig, SpecMixForCausalLM, save_swapped
    from specmix.hf.run_dir import char_tokenizer
    tokenizer = char_tokenizer(CHARS)
    torch.manual_seed(0)
    native = SpecMixForCausalLM(SpecMixConfig(vocab_size=len(CHARS), d_model=64, n_layers=2, context=128,
                                              mixers="spectral-gated"))
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=len(CHARS), n_positions=128, bos_token_id=None,
        eos_token_id=None))
    swap_attention(gpt2, max_len=128, gated=True)
    paths = {"SpecMixForCausalLM": os.path.join(folder, "native"), "GPT-2 after swap_attention": os.path.join(folder, "gpt2")}
    native.save_pretrained(paths["SpecMixForCausalLM"])
    save_swapped(gpt2, paths["GPT-2 after swap_attention"])
    for path in paths.values():
        tokenizer.save_pretrained(path)
    return paths


def own_loglikelihoods(path: str) -> list[float]:
    """log p(continuation | context) by the model's forward, as loaded by the Auto class."""
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    out = []
    for context, continuation in DOCS:
        spaces = len(context) - len(context.rstrip())        # lm-eval scores a context's trailing
        if spaces:                                            # whitespace as part of the continuation
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        ctx, cont = tokenizer.encode(context), tokenizer.encode(continuation)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = F.log_softmax(model(ids).logits[0, :-1].double(), -1)         # (N-1, V)
        targets = ids[0, len(ctx):]
        out.append(float(logp[len(ctx) - 1:].gather(1, targets[:, None]).sum()))
    return out


def run_lm_eval(path: str, task_dir: str, out_dir: str) -> list[float]:
    """Per-sample log-likelihoods from lm-eval's CLI (hf backend), in document order."""
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
           f"pretrained={path},trust_remote_code=True,dtype=float32,prefix_token_id=0", "--tasks", "specmix_local",
           "--include_path", task_dir, "--device", "cpu", "--batch_size", "1", "--output_path", out_dir,
           "--log_samples"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"lm_eval failed on {path}:\n{done.stderr[-3000:]}")
    samples = [os.path.join(root, f) for root, _, files in os.walk(out_dir) for f in files if f.startswith("samples_")]
    rows = [json.loads(line) for line in open(samples[0], encoding="utf-8")]
    rows.sort(key=lambda r: r["doc_id"])
    return [float(r["resps"][0][0][0]) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/lm-eval", help="folder of lm_eval.json")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "docs.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"context": c, "continuation": t}) + "\n" for c, t in DOCS)
        task_dir = os.path.join(tmp, "tasks")
        os.makedirs(task_dir)
        with open(os.path.join(task_dir, "specmix_local.yaml"), "w", encoding="utf-8") as f:
            f.write(TASK.format(data=data))
        rows = []
        for name, path in build_models(os.path.join(tmp, "models")).items():
            harness = run_lm_eval(path, task_dir, os.path.join(tmp, "eval-" + os.path.basename(path)))
            own = own_loglikelihoods(path)
            rows.append({"model": name, "lm_eval": harness, "own": own,
                         "max_abs_diff": max(abs(a - b) for a, b in zip(harness, own))})
    import lm_eval
    import transformers
    from specmix.app.bench.harness import environment
    report = {"rows": rows, "docs": len(DOCS), "lm_eval": lm_eval.__version__,
              "transformers": transformers.__version__, "torch": torch.__version__, "env": environment("cpu")}
    with open(os.path.join(args.out, "lm_eval.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(report, indent=2) + "\n")
    print(format_lm_eval(report))
    return 0


def format_lm_eval(report: dict) -> str:
    """The table docs/huggingface.md shows (benchmarks/update_readme.py renders the same)."""
    lines = ["| model | sample | lm-eval log-likelihood | own forward | difference |", "|---|---|---|---|---|"]
    for row in report["rows"]:
        for i, (a, b) in enumerate(zip(row["lm_eval"], row["own"])):
            lines.append(f"| {row['model']} | {i} | {a:.6f} | {b:.6f} | {abs(a - b):.1e} |")
    env = report.get("env", {})
    lines += ["", f"lm-eval {report['lm_eval']}, transformers {report['transformers']}, torch {report['torch']}, "
              f"{env.get('cpu', '?')} {env.get('cpu_capability', '')}, run on {env.get('date', '?')}; untrained "
              "models (the comparison is of the numbers, not of quality). lm-eval scores a context's trailing "
              "space as part of the continuation; the own forward does the same."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
