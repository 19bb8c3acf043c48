"""The output folder: one owner, no clobbering, refused commands write nothing, divergence
stops the run with finite weights on disk, and no file in the folder can run code."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from specmix.app.cli import main

from test_checkpoint_faults import cli_args


def snapshot(folder) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) -> SHA-256 of its bytes."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


@pytest.fixture
def finished(data, tmp_path):
    out = tmp_path / "run"
    assert main(cli_args(data, out, "--stop-at", "4")) == 0      # of 6 steps
    return out


HOLDER = textwrap.dedent("""
    import sys, time
    from specmix.app.run_lock import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_a_second_run_is_refused_while_the_owner_lives_and_free_once_it_dies(data, tmp_path, one_line_error):
    out = tmp_path / "owned"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line_error(cli_args(data, out), f"is in use by pid {holder.pid}")
        one_line_error(cli_args(data, out, "--overwrite"), "is in use by")
    finally:
        holder.kill()                                # SIGKILL: no cleanup runs in the owner
        holder.wait()
    for _ in range(50):                              # the kernel drops the lock with the process
        from specmix.app.run_lock import lock_holder
        if lock_holder(str(out)) is None:
            break
        time.sleep(0.1)
    assert main(cli_args(data, out, "--steps", "2")) == 0


def test_no_clobber_without_overwrite_and_refusals_leave_the_folder_byte_identical(data, finished, one_line_error):
    before = snapshot(finished)
    one_line_error(cli_args(data, finished), "already holds a training run; pass --resume")
    one_line_error(cli_args(data, finished, "--overwrite", "--dtype", "float16"), "--dtype float16")
    one_line_error(cli_args(data, finished, "--overwrite", "--context", "4096"), "--context 4096 is too large")
    one_line_error(cli_args(data, finished, "--resume", "--dtype", "float16"), "--dtype float16")
    one_line_error(cli_args(data, finished, "--resume", "--d-model", "8"), "from another config")
    one_line_error(cli_args(data, finished, "--resume", "--overwrite"), "exclude each other")
    one_line_error(cli_args(data, finished, "--lr", "nan"), "--lr must be a finite number")
    assert snapshot(finished) == before
    assert main(cli_args(data, finished, "--overwrite", "--steps", "2")) == 0
    assert json.loads((finished / "checkpoints" / "best.json").read_text())["step"] == 2
    assert json.loads((finished / "config.json").read_text())["train"]["steps"] == 2
    assert sorted(os.listdir(finished / "checkpoints")) == ["best.json", "step-00000002"]


@pytest.mark.parametrize("flag", ["--lr=nan", "--lr=inf", "--lr=-inf", "--weight-decay=nan"])
def test_non_finite_hyperparameters_are_refused_at_parse(data, tmp_path, one_line_error, flag):
    one_line_error(cli_args(data, tmp_path / "x", flag), f"{flag.split('=')[0]} must be a finite number")
    assert not (tmp_path / "x").exists()


def all_finite(path) -> bool:
    from safetensors.torch import load_file
    return all(torch.isfinite(t).all() for t in load_file(path).values())


def test_divergence_stops_with_a_non_zero_exit_and_no_false_best(data, tmp_path, capsys):
    out = tmp_path / "boom"
    capsys.readouterr()
    assert main(cli_args(data, out, "--lr", "1e4", "--warmup", "0", "--eval-every", "1")) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()[-1]
    assert "diverged" in err and "--lr 10000" in err and "at step" in err, err
    assert "best" not in captured.out
    assert not (out / "checkpoints" / "best.json").exists()
    for root, _, files in os.walk(out):
        for name in files:
            if name.endswith(".safetensors") and name.startswith("model"):
                assert all_finite(os.path.join(root, name))


def test_divergence_keeps_the_last_finite_checkpoint_which_still_samples(data, tmp_path, monkeypatch, capsys):
    import specmix.app.train as tr
    real = tr.get_lr
    monkeypatch.setattr(tr, "get_lr", lambda step, cfg, *a: real(step, cfg, *a) if step < 2 else 1e6)
    out = tmp_path / "late"
    assert main(cli_args(data, out)) == 1
    assert "the last checkpoint (step 2)" in capsys.readouterr().err
    assert sorted(os.listdir(out / "checkpoints")) == ["best.json", "step-00000002"]
    assert all_finite(out / "checkpoints" / "step-00000002" / "model.safetensors")
    monkeypatch.setattr(tr, "get_lr", real)
    assert main(["sample", "--checkpoint", str(out), "--prompt", "Fi", "--tokens", "5", "--device", "cpu"]) == 0


def legacy_folder(finished, folder):
    """The layout before checkpoints/: config.json and model.safetensors of step 4 in the folder
    (each test adds its own state.pt)."""
    folder.mkdir()
    step = finished / "checkpoints" / "step-00000004"
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((step / name).read_bytes())
    return folder


class Payload:
    """Unpickling this runs a command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_in_the_folder_is_never_executed(data, finished, tmp_path, one_line_error):
    """A folder in the layout written before checkpoints/ (state.pt beside the weights) whose
    state.pt is a crafted pickle: --resume refuses it in one line without running it."""
    legacy = legacy_folder(finished, tmp_path / "legacy")
    marker = tmp_path / "pwned"
    torch.save({"step": 4, "evil": Payload(marker)}, legacy / "state.pt")
    one_line_error(cli_args(data, legacy, "--resume"), "cannot be loaded safely")
    assert not marker.exists()


def test_a_legacy_folder_resumes_and_is_converted(data, finished, tmp_path, read_metrics):
    """The layout before checkpoints/: weights and state.pt (plain tensors and numbers, read with
    weights_only=True) beside config.json; --resume continues it into checkpoints/."""
    from specmix.app.checkpoint import load_state
    legacy = legacy_folder(finished, tmp_path / "legacy")
    torch.save(load_state(str(finished)), legacy / "state.pt")
    assert main(cli_args(data, legacy, "--resume")) == 0
    assert not (legacy / "state.pt").exists() and (legacy / "checkpoints" / "step-00000006").is_dir()
    assert main(cli_args(data, finished, "--resume")) == 0
    assert [r["val_loss"] for r in read_metrics(legacy)] == [r["val_loss"] for r in read_metrics(finished)]


def test_legacy_weights_and_state_of_different_steps_are_refused(data, finished, tmp_path, one_line_error):
    from specmix.app.checkpoint import load_state
    legacy = legacy_folder(finished, tmp_path / "mixed")
    torch.save(dict(load_state(str(finished)), step=2), legacy / "state.pt")
    one_line_error(cli_args(data, legacy, "--resume"), "the weights are of step 4, the training state of step 2")


def damage(path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        raw[len(raw) - 3] ^= 0x10                  # one bit, inside the tensor data
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
@pytest.mark.parametrize("name", ["model.safetensors", "training.safetensors", "config.json"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(data, finished, capsys, how, name):
    from specmix.app.checkpoint import find_checkpoint
    damage(finished / "checkpoints" / "step-00000004" / name, how)
    capsys.readouterr()
    assert find_checkpoint(str(finished)).step == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and name in err and "using the previous complete checkpoint (step 2)" in err


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
def test_a_damaged_only_checkpoint_is_refused_in_one_line(data, tmp_path, one_line_error, how):
    out = tmp_path / "one"
    assert main(cli_args(data, out, "--steps", "2")) == 0
    damage(out / "checkpoints" / "step-00000002" / "model.safetensors", how)
    one_line_error(["sample", "--checkpoint", str(out), "--device", "cpu"], "is damaged")
    one_line_error(["sample", "--checkpoint", str(out), "--weights", "last", "--device", "cpu"],
                   "no complete checkpoint")
    one_line_error(cli_args(data, out, "--resume"), "no complete checkpoint")


def test_foreign_and_broken_folders_are_refused_in_one_line(data, tmp_path, one_line_error):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"hello": 1}))
    one_line_error(cli_args(data, foreign, "--resume"), "not a specmix run config")
    (foreign / "config.json").write_text("{not json")
    one_line_error(["sample", "--checkpoint", str(foreign), "--device", "cpu"], "not valid JSON")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(cli_args(data, empty, "--resume"), "no checkpoint in")
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(cli_args(data, afile), "is a file")
    assert afile.read_text() == "x"


def test_an_unwritable_out_is_a_one_line_error(data, tmp_path, monkeypatch, one_line_error):
    """A read-only filesystem (root ignores permission bits, so the check is simulated)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode == os.W_OK else real(path, mode, **kw))
    one_line_error(cli_args(data, tmp_path / "ro" / "run"), "cannot write there")
    assert not (tmp_path / "ro").exists()


def test_a_truncated_legacy_state_is_a_one_line_error(data, finished, tmp_path, one_line_error):
    from specmix.app.checkpoint import load_state
    legacy = legacy_folder(finished, tmp_path / "legacy")
    torch.save(load_state(str(finished)), legacy / "state.pt")
    damage(legacy / "state.pt", "truncate")
    one_line_error(cli_args(data, legacy, "--resume"), "cannot be loaded safely")
    damage(legacy / "model.safetensors", "truncate")
    one_line_error(["sample", "--checkpoint", str(legacy), "--device", "cpu"], "does not load")


def test_resuming_past_a_damaged_newest_checkpoint_writes_it_again(data, tmp_path, read_metrics, capsys):
    """Damaged step 4 (of a run stopped there): --resume starts from step 2, and step 4 is
    written again when the run gets there; the losses equal an uninterrupted run's."""
    from specmix.app.checkpoint import find_checkpoint
    out = tmp_path / "run"
    assert main(cli_args(data, out, "--stop-at", "4")) == 0
    damage(out / "checkpoints" / "step-00000004" / "model.safetensors", "bitflip")
    assert main(cli_args(data, out, "--resume")) == 0
    assert "using the previous complete checkpoint (step 2)" in capsys.readouterr().err
    assert find_checkpoint(str(out)).step == 6
    from specmix.app.checkpoint_store import verify
    assert verify(str(out / "checkpoints" / "step-00000004")).step == 4 or \
        not (out / "checkpoints" / "step-00000004").exists()
    assert main(cli_args(data, tmp_path / "full")) == 0
    assert [r["val_loss"] for r in read_metrics(out)] == [r["val_loss"] for r in read_metrics(tmp_path / "full")]
