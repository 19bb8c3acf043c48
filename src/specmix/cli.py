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
