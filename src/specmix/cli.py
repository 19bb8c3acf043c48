"""Command line: ``specmix <command>``; flags are generated from the config dataclasses.

Each command is a thin call into the library. Bad input ends with a one-line error on
stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

__all__ = ["main", "add_dataclass_args", "dataclass_from_args"]


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _flag_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _flag_type(inner[0])
    return {bool: _parse_bool, int: int, float: float, str: str}.get(tp, str)


def add_dataclass_args(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag-name`` per dataclass field; help text from the field's ``metadata['help']``."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        meta = field.metadata
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kwargs = dict(type=_flag_type(hints[field.name]), default=default, dest=field.name,
                      help=f"{meta.get('help', '')} (default: {default})")
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if kwargs["type"] is _parse_bool:     # `--flag` alone means true; `--flag false` works too
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        group.add_argument("--" + field.name.replace("_", "-"), **kwargs)


def dataclass_from_args(cls, ns: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(ns).items() if k in names})


def _cmd_demo(ns: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(out=ns.out)
    return 0


def _cmd_bench(ns: argparse.Namespace) -> int:
    from .bench import BenchConfig, format_report, run_sweep, write_outputs
    cfg = dataclass_from_args(BenchConfig, ns)
    try:
        report = run_sweep(cfg)
    except ValueError as err:
        raise UsageError(str(err)) from None
    paths = write_outputs(report, cfg.out)
    print(format_report(report))
    print("wrote " + ", ".join(paths))
    return 0


def _cmd_reference(ns: argparse.Namespace) -> int:
    import json
    import os

    from .corpus import CorpusError
    from .io import atomic_write_text
    from .reference.report import format_report, plot_reference
    from .reference.train import RefTrainConfig, run_reference
    cfg = dataclass_from_args(RefTrainConfig, ns)
    for name in ("steps", "context", "batch_size", "d_model", "n_layers", "eval_every", "eval_batches"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    try:
        result = run_reference(cfg)
    except CorpusError as err:
        raise UsageError(str(err)) from None
    os.makedirs(cfg.out, exist_ok=True)
    json_path = os.path.join(cfg.out, "reference.json")
    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    plot_reference(result, os.path.join(cfg.out, "reference_loss.png"))
    print(format_report(result))
    print(f"wrote {json_path}, {os.path.join(cfg.out, 'reference_loss.png')}")
    return 0


def _validate_model_config(model_cfg) -> None:
    from .layers import FILTERS, NORMS
    model_cfg.mixer_kinds()
    model_cfg.uses_positions()
    if model_cfg.filter not in FILTERS:
        raise ValueError(f"--filter: expected one of {FILTERS}, got {model_cfg.filter!r}")
    if model_cfg.norm not in NORMS:
        raise ValueError(f"--norm: expected one of {NORMS}, got {model_cfg.norm!r}")
    for name in ("d_model", "n_layers", "n_heads", "context", "head_dim"):
        if getattr(model_cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(model_cfg, name)}")
    if model_cfg.d_model % model_cfg.n_heads:
        raise ValueError(f"--n-heads {model_cfg.n_heads} must divide --d-model {model_cfg.d_model}")
    if model_cfg.d_model % model_cfg.head_dim:
        raise ValueError(f"--head-dim {model_cfg.head_dim} must divide --d-model {model_cfg.d_model}")


def _cmd_train(ns: argparse.Namespace) -> int:
    from .corpus import CorpusError
    from .model import LMConfig
    from .train import CheckpointError, TrainConfig, train
    model_cfg, train_cfg = dataclass_from_args(LMConfig, ns), dataclass_from_args(TrainConfig, ns)
    try:
        _validate_model_config(model_cfg)
        for name in ("steps", "batch_size", "eval_every", "eval_batches"):
            if getattr(train_cfg, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(train_cfg, name)}")
        metrics = train(model_cfg, train_cfg)
    except (CorpusError, CheckpointError, ValueError) as err:
        raise UsageError(str(err)) from None
    if metrics:
        last = metrics[-1]
        acc = f"  val answer acc {last['val_answer_acc']:.3f}" if "val_answer_acc" in last else ""
        print(f"step {last['step']}: train {last['train_loss']:.4f}  val {last['val_loss']:.4f}{acc}  "
              f"(checkpoint in {train_cfg.out})")
    return 0


def _cmd_sample(ns: argparse.Namespace) -> int:
    import torch

    from .corpus import CorpusError
    from .train import CheckpointError, load_model, resolve_device
    try:
        device = resolve_device(ns.device)
        model, tok = load_model(ns.checkpoint, device)
        if tok is None:
            raise ValueError(f"--checkpoint {ns.checkpoint} was trained on a synthetic task; "
                             "sampling text needs a language-model checkpoint")
        prompt = ns.prompt if ns.prompt is not None else ("\n" if "\n" in tok.chars else tok.chars[0])
        if not prompt:
            raise ValueError("--prompt must not be empty")
        if ns.tokens < 0 or ns.temperature <= 0 or (ns.top_k is not None and ns.top_k < 1):
            raise ValueError("need --tokens >= 0, --temperature > 0 and --top-k >= 1")
        ids = torch.from_numpy(tok.encode(prompt))[None, -model.config.context:].to(device)
    except (CorpusError, CheckpointError, ValueError) as err:
        raise UsageError(str(err)) from None
    model.eval()
    gen = torch.Generator(device=device).manual_seed(ns.seed)
    out = model.generate(ids, ns.tokens, temperature=ns.temperature, top_k=ns.top_k, generator=gen)
    print(prompt + tok.decode(out[0, ids.shape[1]:].tolist()))
    return 0


def _cmd_compare(ns: argparse.Namespace) -> int:
    from .compare import format_compare, run_compare
    from .corpus import CorpusError
    from .model import LMConfig
    from .train import TrainConfig
    ns.mixers = ns.variants[0]
    base, train_cfg = dataclass_from_args(LMConfig, ns), dataclass_from_args(TrainConfig, ns)
    try:
        for mixers in ns.variants:
            base.mixers = mixers
            _validate_model_config(base)
        report = run_compare(ns.variants, base, train_cfg, train_cfg.out, tolerance=ns.tolerance)
    except (CorpusError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(format_compare(report))
    print(f"wrote {train_cfg.out}/compare.json, {train_cfg.out}/compare_loss.png")
    return 0


def _cmd_eval_lengths(ns: argparse.Namespace) -> int:
    from .corpus import CorpusError
    from .lengths import LengthEvalConfig, eval_lengths, format_lengths
    from .train import CheckpointError
    cfg = dataclass_from_args(LengthEvalConfig, ns)
    try:
        report = eval_lengths(cfg)
    except (CorpusError, CheckpointError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(format_lengths(report))
    if cfg.out:
        print(f"wrote {cfg.out}")
    return 0


def _cmd_bench_decode(ns: argparse.Namespace) -> int:
    import os

    from .bench_decode import DecodeBenchConfig, format_decode, run_decode_bench
    cfg = dataclass_from_args(DecodeBenchConfig, ns)
    try:
        report = run_decode_bench(cfg)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(format_decode(report))
    print(f"wrote {os.path.join(cfg.out, 'decode.json')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specmix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job on the embedded defaults")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.set_defaults(func=_cmd_demo)
    from .bench import BenchConfig
    bench = sub.add_parser("bench", help="scaling benchmark: time and memory vs sequence length")
    add_dataclass_args(bench, BenchConfig)
    bench.set_defaults(func=_cmd_bench)
    from .reference.train import RefTrainConfig
    ref = sub.add_parser("reference", help="the NumPy-only char LM, its ablation and the bigram baseline")
    add_dataclass_args(ref, RefTrainConfig)
    ref.set_defaults(func=_cmd_reference)
    from .model import LMConfig
    from .train import TrainConfig
    tr = sub.add_parser("train", help="train a spectral / attention / hybrid LM")
    add_dataclass_args(tr, LMConfig, skip=("vocab_size",))
    add_dataclass_args(tr, TrainConfig)
    tr.set_defaults(func=_cmd_train)
    co = sub.add_parser("compare", help="train several mixer stacks with the same budget")
    co.add_argument("--mixers", dest="variants", nargs="+", required=True,
                    help="one pattern per variant, e.g. attention spectral-gated 'spectral,local:64'")
    co.add_argument("--tolerance", type=float, default=0.05, help="parameter match (default: 0.05)")
    add_dataclass_args(co, LMConfig, skip=("vocab_size", "mixers"))
    add_dataclass_args(co, TrainConfig, skip=("resume", "stop_at"))
    co.set_defaults(func=_cmd_compare, out="runs/compare")
    sa = sub.add_parser("sample", help="generate text from a checkpoint")
    sa.add_argument("--checkpoint", required=True, help="folder written by specmix train")
    sa.add_argument("--prompt", default=None, help="text to continue (default: a newline)")
    sa.add_argument("--tokens", type=int, default=200, help="new tokens (default: 200)")
    sa.add_argument("--temperature", type=float, default=0.8, help="(default: 0.8)")
    sa.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest (default: all)")
    sa.add_argument("--seed", type=int, default=0, help="(default: 0)")
    sa.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sa.set_defaults(func=_cmd_sample)
    from .lengths import LengthEvalConfig
    ev = sub.add_parser("eval-lengths", help="val loss of a checkpoint at longer contexts than trained")
    add_dataclass_args(ev, LengthEvalConfig)
    ev.set_defaults(func=_cmd_eval_lengths)
    from .bench_decode import DecodeBenchConfig
    de = sub.add_parser("bench-decode", help="cached generation speed after long prompts")
    add_dataclass_args(de, DecodeBenchConfig)
    de.set_defaults(func=_cmd_bench_decode)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return ns.func(ns)
    except UsageError as err:
        print(f"specmix {ns.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"specmix {ns.command}: interrupted", file=sys.stderr)
        return 130
