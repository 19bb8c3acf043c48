"""Command line: ``specmix <command>``; flags are generated from the config dataclasses.

Each command is a thin call into the application. Only the chosen command's parser is
filled in, so a command imports only what it needs (``specmix reference`` never loads
torch). A :class:`UsageError` (a bad flag, file or checkpoint) ends with a one-line error on
stderr and exit status 2; a diverged training run (:class:`~specmix.validation.Diverged`)
one line and exit status 1; any other exception keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from ..validation import Diverged, UsageError
from .flags import Parser, add_config_args, config_from_args

__all__ = ["main", "build_parser"]


# ----------------------------------------------------------------------------- commands
def _demo_args(p):
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")


def _demo(ns) -> int:
    from .demo import run_demo
    run_demo(out=ns.out)
    return 0


def _bench_args(p):
    from .bench.sweep import BenchConfig
    add_config_args(p, BenchConfig)


def _bench(ns) -> int:
    from .bench.report import format_report, write_outputs
    from .bench.sweep import BenchConfig, run_sweep
    cfg = config_from_args(BenchConfig, ns)
    report = run_sweep(cfg)
    paths = write_outputs(report, cfg.out)
    print(format_report(report))
    print("wrote " + ", ".join(paths))
    return 0


def _reference_args(p):
    from .reference_run import RefTrainConfig
    add_config_args(p, RefTrainConfig)


def _reference(ns) -> int:
    from .reference_run import RefTrainConfig, format_reference, run_reference, write_reference
    cfg = config_from_args(RefTrainConfig, ns)
    result = run_reference(cfg)
    paths = write_reference(result, cfg.out)
    print(format_reference(result))
    print("wrote " + ", ".join(paths))
    return 0


def _train_args(p):
    from ..model import LMConfig
    from .train import TrainConfig
    add_config_args(p, LMConfig, skip=("vocab_size",))
    add_config_args(p, TrainConfig)


def _train(ns) -> int:
    from ..model import LMConfig
    from .train import TrainConfig
    return _run_training(config_from_args(LMConfig, ns), config_from_args(TrainConfig, ns))


def _train_peer_args(p):
    from .peer_lm import PeerConfig
    from .train import TrainConfig
    add_config_args(p, PeerConfig, skip=("vocab_size",))
    add_config_args(p, TrainConfig, skip=("context_parallel", "fsdp"), defaults={"out": "runs/peer"})


def _train_peer(ns) -> int:
    from .peer_lm import PeerConfig
    from .train import TrainConfig
    return _run_training(config_from_args(PeerConfig, ns), config_from_args(TrainConfig, ns))


def _run_training(model_cfg, train_cfg) -> int:
    from .train import train
    metrics = train(model_cfg, train_cfg)
    if metrics and os.environ.get("RANK", "0") == "0":            # under torchrun, rank 0 reports
        last = metrics[-1]
        acc = f"  val answer acc {last['val_answer_acc']:.3f}" if "val_answer_acc" in last else \
            (f"  val scored acc {last['val_scored_acc']:.3f}" if "val_scored_acc" in last else "")
        print(f"step {last['step']}: train {last['train_loss']:.4f}  val {last['val_loss']:.4f}{acc}  "
              f"(checkpoint in {train_cfg.out}){_best_line(train_cfg.out, hasattr(model_cfg, 'mixers'))}")
    return 0


def _best_line(out: str, sampled: bool = True) -> str:
    """The best checkpoint, only when best.json names one (``sampled``: `specmix sample` reads it)."""
    from .checkpoint_store import read_best
    best = read_best(out)
    hint = " (sample --weights best)" if sampled else ""
    return "" if best is None else f"; best val {best['val_loss']:.4f} at step {best['step']}{hint}"


def _sample_args(p):
    from .sample import SampleConfig
    add_config_args(p, SampleConfig)


def _sample(ns) -> int:
    from .sample import SampleConfig, sample
    print(sample(config_from_args(SampleConfig, ns)))
    return 0


def _compare_args(p):
    from ..model import LMConfig
    from .compare import CompareConfig
    from .train import TrainConfig
    add_config_args(p, CompareConfig)
    add_config_args(p, LMConfig, skip=("vocab_size", "mixers"))
    add_config_args(p, TrainConfig, skip=("resume", "stop_at"), defaults={"out": "runs/compare"})


def _compare(ns) -> int:
    from ..model import LMConfig
    from .compare import CompareConfig, format_compare, run_compare
    from .train import TrainConfig
    cmp_cfg = config_from_args(CompareConfig, ns)
    base = config_from_args(LMConfig, ns, mixers=cmp_cfg.variants[0])
    train_cfg = config_from_args(TrainConfig, ns)
    report = run_compare(cmp_cfg.variants, base, train_cfg, train_cfg.out, tolerance=cmp_cfg.tolerance)
    print(format_compare(report))
    print(f"wrote {train_cfg.out}/compare.json, {train_cfg.out}/compare_loss.png")
    return 0


def _eval_lengths_args(p):
    from .eval_lengths import LengthEvalConfig
    add_config_args(p, LengthEvalConfig)


def _eval_lengths(ns) -> int:
    from .eval_lengths import LengthEvalConfig, eval_lengths, format_lengths
    cfg = config_from_args(LengthEvalConfig, ns)
    print(format_lengths(eval_lengths(cfg)))
    if cfg.out:
        print(f"wrote {cfg.out}")
    return 0


def _export_args(p):
    from .export_run import ExportConfig
    add_config_args(p, ExportConfig)


def _export(ns) -> int:
    from .export_run import ExportConfig, export_run
    print(export_run(config_from_args(ExportConfig, ns)))
    return 0


@dataclass(frozen=True)
class Command:
    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _report_command(help: str, module: str, config: str, run: str, fmt: str, filename: str) -> Command:
    """A benchmark command: flags from ``config``, ``run(cfg)`` returns a report that ``fmt``
    prints as a table, written as ``filename`` under ``cfg.out``. Names are looked up in
    ``module`` (relative to this package) only when the command is chosen."""
    def load(name: str):
        return getattr(importlib.import_module(module, __package__), name)

    def add_args(p):
        add_config_args(p, load(config))

    def run_command(ns) -> int:
        cfg = config_from_args(load(config), ns)
        print(load(fmt)(load(run)(cfg)))
        print(f"wrote {os.path.join(cfg.out, filename)}")
        return 0
    return Command(help, add_args, run_command)


COMMANDS = {
    "demo": Command("the main job on the embedded defaults", _demo_args, _demo),
    "bench": Command("scaling benchmark: time and memory vs sequence length", _bench_args, _bench),
    "reference": Command("the NumPy-only char LM, its ablation and the bigram baseline (no torch)",
                         _reference_args, _reference),
    "train": Command("train a spectral / attention / hybrid LM", _train_args, _train),
    "train-peer": Command("train a transformers GPT-2 / Mamba / RWKV LM with the same loop", _train_peer_args,
                          _train_peer),
    "compare": Command("train several mixer stacks with the same budget", _compare_args, _compare),
    "sample": Command("generate text from a checkpoint", _sample_args, _sample),
    "export": Command("write the ONNX file of a trained run (dynamic batch and length)", _export_args, _export),
    "eval-lengths": Command("val loss of a checkpoint at longer contexts than trained",
                            _eval_lengths_args, _eval_lengths),
    "bench-decode": _report_command("cached generation speed after long prompts", ".bench.decode",
                                    "DecodeBenchConfig", "run_decode_bench", "format_decode", "decode.json"),
    "bench-mlm": _report_command("masked-character modelling: swapped BERT, BERT and FNet, equal time each",
                                 ".bench.encoders", "MLMBenchConfig", "run_mlm_bench", "format_mlm", "mlm.json"),
    "bench-pairs": _report_command("two lengths (4096 vs 4099) or two ops timed alternately in one process",
                                   ".bench.pairs", "PairBenchConfig", "run_pair_bench", "format_pairs",
                                   "pairs.json"),
}


def build_parser(only: str | None = None) -> Parser:
    """The parser; with ``only``, just that command's flags are filled in (the others are
    listed for ``--help``), so building it imports nothing the other commands need."""
    parser = Parser(prog="specmix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if only is None or only == name:
            cmd.add_args(p)
        p.set_defaults(func=cmd.run)
    return parser


def _chosen(argv: list[str]) -> str | None:
    """The command: the first word (``specmix`` has no options of its own besides --help)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = "specmix" + (f" {_chosen(argv)}" if _chosen(argv) else "")
    try:
        ns = build_parser(only=_chosen(argv)).parse_args(argv)
        return ns.func(ns)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Diverged as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
