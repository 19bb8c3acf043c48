"""Training at full speed: gradient accumulation, autocast, compile, the time-based schedule,
and the best checkpoint."""
import dataclasses

import pytest
import torch

from specmix.app.checkpoint import load_model
from specmix.app.train import TrainConfig, get_lr, train
from specmix.model import LMConfig, SpecMixLM
from specmix.validation import UsageError

from helpers import assert_close

MODEL = LMConfig(mixers="spectral-gated,local:8", n_layers=2, d_model=32, n_heads=4, context=32)


def run_cfg(data, out, **kw):
    base = dict(data=data, steps=2, batch_size=8, eval_every=2, eval_batches=1, warmup=1, lr=3e-3,
                device="cpu", out=str(out), weight_decay=0.1)
    return TrainConfig(**(base | kw))


def test_accumulation_equals_one_large_batch(data, tmp_path):
    """4 micro-batches of 8 make the same update as one batch of 32 (same rows, same order)."""
    train(MODEL, run_cfg(data, tmp_path / "big", batch_size=32, steps=1, eval_every=1), progress=False)
    train(MODEL, run_cfg(data, tmp_path / "acc", batch_size=8, grad_accum=4, steps=1, eval_every=1), progress=False)
    big, _ = load_model(str(tmp_path / "big"))
    acc, _ = load_model(str(tmp_path / "acc"))
    for (name, a), b in zip(big.state_dict().items(), acc.state_dict().values()):
        assert_close(b, a, tol=1e-5, what=name)


def test_accumulation_weights_task_losses_by_scored_positions():
    """With ignore_index the micro-batch means are weighted (as _optimizer_step does), so the
    weighted sum is the global mean."""
    x = torch.randint(0, 11, (4, 9))
    y = torch.where(torch.rand(4, 9) > 0.6, x, torch.full_like(x, -1))
    model = SpecMixLM(dataclasses.replace(MODEL, vocab_size=11, context=9))
    whole = model(x, y)[1]
    parts = sum(model(xm, ym)[1] * ((ym != -1).sum() / (y != -1).sum()) for xm, ym in zip(x.chunk(2), y.chunk(2)))
    assert_close(parts, whole, tol=1e-6)


def test_bfloat16_training_runs_and_follows_float32(data, tmp_path):
    fp32 = train(MODEL, run_cfg(data, tmp_path / "fp32", steps=6, eval_every=3), progress=False)
    bf16 = train(MODEL, run_cfg(data, tmp_path / "bf16", steps=6, eval_every=3, dtype="bfloat16"), progress=False)
    for a, b in zip(fp32, bf16):
        assert abs(a["val_loss"] - b["val_loss"]) < 0.05


def test_float16_on_cpu_is_refused(data, tmp_path, one_line_error):
    one_line_error(["train", "--data", data, "--dtype", "float16", "--device", "cpu", "--steps", "1",
                    "--out", str(tmp_path / "x")], "--dtype float16: autocast in float16 needs CUDA")


def test_time_limit_sets_the_schedule_length():
    cfg = TrainConfig(steps=1000, warmup=0, lr=1.0, min_lr_ratio=0.0, time_limit=100.0)
    assert get_lr(10, cfg, elapsed_s=0.0) == pytest.approx(get_lr(10, dataclasses.replace(cfg, time_limit=None)))
    assert get_lr(10, cfg, elapsed_s=50.0) == pytest.approx(0.5)      # half the time: half way down
    assert get_lr(10, cfg, elapsed_s=100.0) == pytest.approx(0.0)


def test_best_checkpoint_is_written_and_loadable(data, tmp_path, capsys):
    out = tmp_path / "run"
    metrics = train(MODEL, run_cfg(data, out, steps=6, eval_every=2), progress=False)
    best_row = min(metrics, key=lambda m: m["val_loss"])
    best, _ = load_model(str(out), which="best")
    import json
    assert json.loads((out / "checkpoints" / "best.json").read_text())["step"] == best_row["step"]
    assert best.config == load_model(str(out))[0].config
    from specmix.app.cli import main
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(out), "--prompt", "First", "--tokens", "5", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("First")


@pytest.mark.slow
def test_bad_training_flags(data, tmp_path, one_line_error):
    base = ["train", "--data", data, "--device", "cpu", "--steps", "1", "--out", str(tmp_path / "x")]
    one_line_error(base + ["--grad-accum", "0"], "--grad-accum must be >= 1")
    one_line_error(base + ["--dtype", "int8"], "argument --dtype: invalid choice")
    with pytest.raises(UsageError):
        TrainConfig(grad_accum=0)
