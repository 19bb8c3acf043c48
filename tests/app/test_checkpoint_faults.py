"""Crashes at every file operation of the checkpoint writes: ``--resume`` either reproduces
the uninterrupted run or starts from the previous complete checkpoint and then reproduces it;
never a mixed state. One crash is a real SIGKILL of a child process."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import specmix.app.checkpoint_store as store
from specmix.app.checkpoint import find_checkpoint, load_state
from specmix.app.checkpoint_store import CheckpointError
from specmix.app.train import TrainConfig, train
from specmix.model import LMConfig

MODEL = LMConfig(mixers="spectral-gated", n_layers=1, d_model=16, context=16)
LOSSES = ("train_loss", "val_loss")


def cfg(data, out, **kw):
    base = dict(data=data, steps=6, batch_size=4, eval_every=2, eval_batches=1, warmup=1, lr=3e-3,
                device="cpu", out=str(out))
    return TrainConfig(**(base | kw))


def losses(rows):
    return [(r["step"], *(r[k] for k in LOSSES)) for r in rows]


class Crash(BaseException):
    """Stands for the process dying: nothing in specmix catches a BaseException of this kind."""


def record_ops(monkeypatch) -> list[str]:
    ops = []
    monkeypatch.setattr(store, "_fault_point", ops.append)
    return ops


def crash_at(monkeypatch, k: int) -> None:
    calls = iter(range(10_000))

    def point(op):
        if next(calls) == k:
            raise Crash(op)
    monkeypatch.setattr(store, "_fault_point", point)


def test_a_crash_at_every_checkpoint_operation_resumes_to_the_same_run(data, tmp_path, monkeypatch):
    ops = record_ops(monkeypatch)
    reference = losses(train(MODEL, cfg(data, tmp_path / "ref"), progress=False))
    assert len(ops) >= 20 and "commit" in ops and "write best.json" in ops, ops
    for k, op in enumerate(ops):
        out = tmp_path / f"crash{k}"
        crash_at(monkeypatch, k)
        with pytest.raises(Crash):
            train(MODEL, cfg(data, out), progress=False)
        monkeypatch.setattr(store, "_fault_point", lambda op: None)
        try:
            found = find_checkpoint(str(out))
        except CheckpointError:                     # killed before the first commit: start again
            found = None
        if found is not None:
            state = load_state(found.path)          # weights, config and state of one step
            assert state["step"] == found.step, op
            assert losses(state["metrics"]) == reference[:len(state["metrics"])], op
        rows = train(MODEL, cfg(data, out, resume=found is not None), progress=False)
        assert losses(rows) == reference, f"crash before {op!r} (operation {k})"
        assert not [n for n in os.listdir(out / "checkpoints") if n.startswith((".tmp", ".trash"))], op


CHILD = textwrap.dedent("""
    import os, signal, sys
    import specmix.app.checkpoint_store as store
    from specmix.app.cli import main
    calls = iter(range(10_000))
    target = int(os.environ["KILL_AT"])
    def point(op):
        if next(calls) == target:
            os.kill(os.getpid(), signal.SIGKILL)
    store._fault_point = point
    sys.exit(main(sys.argv[1:]))
""")


def cli_args(data, out, *extra):
    return ["train", "--data", data, "--mixers", "spectral-gated", "--n-layers", "1", "--d-model", "16",
            "--context", "16", "--batch-size", "4", "--steps", "6", "--eval-every", "2",
            "--eval-batches", "1", "--warmup", "1", "--lr", "3e-3", "--device", "cpu", "--out", str(out), *extra]


@pytest.mark.parametrize("op", ["commit", "write best.json", "delete step 2"])
def test_sigkill_mid_checkpoint_then_resume(data, tmp_path, monkeypatch, read_metrics, op):
    """A real SIGKILL of a child training process during its checkpoint writes; the kernel
    frees the lock and --resume reproduces the uninterrupted run."""
    from specmix.app.cli import main
    ops = record_ops(monkeypatch)
    assert main(cli_args(data, tmp_path / "ref")) == 0
    monkeypatch.setattr(store, "_fault_point", lambda op: None)
    k = ops.index(op) if op != "commit" else [i for i, o in enumerate(ops) if o == "commit"][1]
    out = tmp_path / "killed"
    child = subprocess.run([sys.executable, "-c", CHILD, *cli_args(data, out)], capture_output=True,
                           text=True, env=dict(os.environ, KILL_AT=str(k), OMP_NUM_THREADS="1"), timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert main(cli_args(data, out, "--resume")) == 0           # the lock died with its owner
    assert losses(read_metrics(out)) == losses(read_metrics(tmp_path / "ref"))
