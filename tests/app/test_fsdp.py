"""``specmix train --fsdp``: two CPU processes under torchrun (gloo) with FSDP2-sharded
parameters follow the single-process loss curve, write the checkpoints an unsharded run
writes, resume exactly (sharded or not), and the run folder samples."""
import shutil

import pytest
import torch
from safetensors.torch import load_file

from helpers import launch
from specmix.app.checkpoint import find_checkpoint, load_state
from specmix.app.fsdp import check_fsdp
from specmix.validation import UsageError


def args(data, out, *extra):
    return ["-m", "specmix", "train", "--data", data, "--mixers", "spectral-gated,local:8", "--n-layers", "2",
            "--d-model", "32", "--n-heads", "2", "--context", "32", "--batch-size", "8",
            "--steps", "6", "--eval-every", "2", "--eval-batches", "2", "--warmup", "2",
            "--lr", "3e-3", "--device", "cpu", "--out", str(out), *extra]


def assert_same_curve(one, two, tol=1e-4):
    assert [r["step"] for r in one] == [r["step"] for r in two] == [2, 4, 6]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) < tol and abs(a["val_loss"] - b["val_loss"]) < tol


@pytest.mark.slow
def test_fsdp_follows_one_process_writes_its_checkpoints_and_resumes(tmp_path, data, read_metrics):
    """grad-accum 2: the gradient sync runs after the last micro-batch only."""
    extra = ("--grad-accum", "2")
    launch(args(data, tmp_path / "one", *extra))
    launch(args(data, tmp_path / "fsdp", "--fsdp", *extra), processes=2)
    one, sharded = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "fsdp")
    assert_same_curve(one, sharded)

    # the same files as an unsharded run: every tensor, full size, equal to the one-process values
    a, b = (find_checkpoint(str(tmp_path / name)).path for name in ("one", "fsdp"))
    w_one, w_fsdp = load_file(f"{a}/model.safetensors"), load_file(f"{b}/model.safetensors")
    assert w_one.keys() == w_fsdp.keys()
    for name in w_one:
        torch.testing.assert_close(w_fsdp[name], w_one[name], rtol=1e-4, atol=1e-5, msg=name)
    s_one, s_fsdp = load_state(str(tmp_path / "one")), load_state(str(tmp_path / "fsdp"))
    assert s_one["step"] == s_fsdp["step"] == 6
    assert s_one["optimizer"]["state"].keys() == s_fsdp["optimizer"]["state"].keys()
    for index, values in s_one["optimizer"]["state"].items():
        for key, value in values.items():
            torch.testing.assert_close(s_fsdp["optimizer"]["state"][index][key], value, rtol=1e-3, atol=1e-6)

    # stopped at step 4, resumed sharded: exactly the uninterrupted sharded run
    launch(args(data, tmp_path / "cut", "--fsdp", "--stop-at", "4", *extra), processes=2)
    shutil.copytree(tmp_path / "cut", tmp_path / "cut1", ignore=shutil.ignore_patterns(".lock"))
    launch(args(data, tmp_path / "cut", "--fsdp", "--resume", *extra), processes=2)
    for row, ref in zip(read_metrics(tmp_path / "cut"), sharded, strict=True):
        assert (row["step"], row["train_loss"], row["val_loss"]) == (ref["step"], ref["train_loss"], ref["val_loss"])

    # the same sharded checkpoint resumes in one process; the run folder samples
    launch(args(data, tmp_path / "cut1", "--resume", *extra))
    assert_same_curve(read_metrics(tmp_path / "cut1"), one)
    done = launch(["-m", "specmix", "sample", "--checkpoint", str(tmp_path / "fsdp"), "--prompt", "First",
                   "--tokens", "20", "--device", "cpu"])
    assert done.stdout.startswith("First") and len(done.stdout.strip()) >= len("First") + 10


@pytest.mark.slow
def test_fsdp_under_bf16_autocast_follows_one_process(tmp_path, data, read_metrics):
    launch(args(data, tmp_path / "one", "--dtype", "bfloat16"))
    launch(args(data, tmp_path / "fsdp", "--fsdp", "--dtype", "bfloat16"), processes=2)
    assert_same_curve(read_metrics(tmp_path / "one"), read_metrics(tmp_path / "fsdp"), tol=2e-3)


def test_fsdp_refusals_name_the_flags():
    with pytest.raises(UsageError, match="--fsdp shards parameters over torchrun processes"):
        check_fsdp(1, 1, "adamw")
    with pytest.raises(UsageError, match="--fsdp with --context-parallel"):
        check_fsdp(4, 2, "adamw")
    with pytest.raises(UsageError, match="--fsdp with --optimizer muon"):
        check_fsdp(2, 1, "muon")
    check_fsdp(2, 1, "adamw")


def test_fsdp_in_one_process_is_a_one_line_error(data, tmp_path, one_line_error):
    one_line_error(args(data, tmp_path / "run", "--fsdp")[2:], "--fsdp shards parameters over torchrun processes")
    assert not (tmp_path / "run").exists()
