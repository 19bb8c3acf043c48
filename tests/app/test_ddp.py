"""Two CPU processes under torchrun (gloo) follow the single-process loss curve."""
import pytest

from helpers import launch


def args(data, out):
    return ["train", "--data", data, "--mixers", "spectral-gated,local:8", "--n-layers", "2",
            "--d-model", "32", "--n-heads", "2", "--context", "32", "--batch-size", "8",
            "--steps", "6", "--eval-every", "2", "--eval-batches", "2", "--warmup", "2",
            "--lr", "3e-3", "--device", "cpu", "--out", str(out)]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path, data, read_metrics):
    launch(["-m", "specmix", *args(data, tmp_path / "one")])
    launch(["-m", "specmix", *args(data, tmp_path / "two")], processes=2)
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [2, 4, 6]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-4
    assert one[-1]["train_loss"] < one[0]["train_loss"] + 0.5
