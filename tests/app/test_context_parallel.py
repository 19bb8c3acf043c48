"""`specmix train --context-parallel 2` under torchrun follows the single-process loss curve;
what it cannot run is refused with the flag's name."""
import pytest
import torch

from helpers import launch

from specmix.app.context_parallel import check_context_parallel
from specmix.model import LMConfig
from specmix.validation import UsageError


def args(data, out, *extra):
    return ["train", "--data", data, "--mixers", "spectral-gated,spectral", "--n-layers", "2",
            "--d-model", "32", "--context", "32", "--batch-size", "4", "--filter", "implicit",
            "--steps", "4", "--eval-every", "2", "--eval-batches", "2", "--warmup", "2",
            "--lr", "3e-3", "--device", "cpu", "--out", str(out), *extra]


@pytest.mark.slow
def test_two_process_context_parallel_matches_single_process(tmp_path, data, read_metrics):
    launch(["-m", "specmix", *args(data, tmp_path / "one")])
    cp = launch(["-m", "specmix", *args(data, tmp_path / "two", "--context-parallel", "2")], processes=2)
    assert "context parallel: 2 processes per sequence of 32" in cp.stdout + cp.stderr
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [2, 4]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-4
    assert (tmp_path / "two" / "checkpoints" / "step-00000004" / "model.safetensors").exists()
    assert (tmp_path / "two" / "checkpoints" / "best.json").exists()


@pytest.mark.parametrize("change, message", [
    ({"context": 33}, "--context 33 must be divisible by --context-parallel 2"),
    ({"d_model": 33, "n_heads": 1}, "--d-model 33 must be divisible"),
    ({"mixers": ("spectral", "local:8")}, "ring attention"),
    ({"mixers": ("spectral", "spectral-taylor"), "head_dim": 4}, "not 'spectral-taylor'"),
])
def test_what_context_parallelism_cannot_run_is_named(change, message):
    cfg = LMConfig(**{"d_model": 32, "n_layers": 2, "context": 32, **change})
    with pytest.raises(UsageError, match=message):
        check_context_parallel(cfg, 2, compile_model=False)
    with pytest.raises(UsageError, match="--compile"):
        check_context_parallel(LMConfig(d_model=32, context=32), 2, compile_model=True)


def test_context_parallel_without_torchrun_is_a_usage_error(tmp_path, data, one_line_error):
    one_line_error(args(data, tmp_path / "x", "--context-parallel", "2"), "--context-parallel 2 must divide")


def test_attention_refuses_a_shard():
    from specmix.attention import Attention
    with pytest.raises(ValueError, match="ring attention"):
        Attention(8, 2)(torch.randn(1, 4, 8), shard=object())


@pytest.mark.slow
def test_context_parallel_resume_equals_an_uninterrupted_run(tmp_path, data, read_metrics):
    for out, extra in [("whole", ()), ("parts", ("--stop-at", "2")), ("parts", ("--resume",))]:
        launch(["-m", "specmix", *args(data, tmp_path / out, "--context-parallel", "2", *extra)], processes=2)
    whole, parts = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "parts")
    assert [r["step"] for r in parts] == [2, 4]
    for a, b in zip(whole, parts):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
