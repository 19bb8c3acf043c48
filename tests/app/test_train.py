import pytest

from specmix.app.cli import main

def train_args(data, out, *extra):
    return ["train", "--data", data, "--mixers", "spectral,local:8", "--n-layers", "2",
            "--d-model", "32", "--n-heads", "2", "--context", "32", "--batch-size", "4",
            "--steps", "20", "--eval-every", "5", "--eval-batches", "2", "--warmup", "3",
            "--lr", "3e-3", "--device", "cpu", "--out", str(out), *extra]


def test_train_writes_checkpoint_and_resume_is_exact(data, tmp_path, capsys, read_metrics):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(train_args(data, full)) == 0
    for name in ("config.json", "metrics.jsonl", "loss.png", "checkpoints/best.json",
                 "checkpoints/step-00000020/model.safetensors", "checkpoints/step-00000020/manifest.json"):
        assert (full / name).exists(), name
    rows = read_metrics(full)
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert main(train_args(data, cut, "--stop-at", "10")) == 0
    assert [r["step"] for r in read_metrics(cut)] == [5, 10]
    assert main(train_args(data, cut, "--resume")) == 0
    resumed = read_metrics(cut)
    assert [r["step"] for r in resumed] == [5, 10, 15, 20]
    for a, b in zip(rows, resumed):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(full), "--prompt", "First", "--tokens", "30",
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("First") and len(text) >= 35


def test_bad_inputs_are_one_line_errors(data, tmp_path, capsys, one_line_error):
    out = tmp_path / "run"
    one_line_error(train_args(str(tmp_path / "nope.txt"), out), "no such file")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    one_line_error(train_args(str(empty), out), "is empty")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"ab\xff\xfe")
    one_line_error(train_args(str(binary), out), "not UTF-8")
    small = tmp_path / "small.txt"
    small.write_text("tiny corpus")
    one_line_error(train_args(str(small), out), "--context 32 is too large")
    one_line_error(train_args(data, tmp_path / "none", "--resume"), "no checkpoint in")
    assert main(train_args(data, out, "--stop-at", "5")) == 0
    capsys.readouterr()
    one_line_error(train_args(data, out, "--resume", "--d-model", "16"),
                   "from another config (d_model: 32 in the checkpoint vs 16 now)")
    one_line_error(["sample", "--checkpoint", str(out), "--prompt", "Z~", "--device", "cpu"],
                   "not in the vocabulary")
    one_line_error(train_args(data, out, "--mixers", "fourier"), "unknown kind")


def test_ctrl_c_saves_a_checkpoint_that_resumes(data, tmp_path, monkeypatch, read_metrics):
    import specmix.app.train as tr
    real_get_lr = tr.get_lr

    def interrupt_at_7(step, cfg, *args):
        if step == 7:
            raise KeyboardInterrupt
        return real_get_lr(step, cfg, *args)
    monkeypatch.setattr(tr, "get_lr", interrupt_at_7)
    out = tmp_path / "int"
    assert main(train_args(data, out)) == 0                  # exits cleanly
    from specmix.app.checkpoint import load_state
    assert load_state(str(out))["step"] == 7
    monkeypatch.setattr(tr, "get_lr", real_get_lr)
    assert main(train_args(data, out, "--resume")) == 0
    full = tmp_path / "full"
    assert main(train_args(data, full)) == 0
    for a, b in zip(read_metrics(full), read_metrics(out)):
        assert a["step"] == b["step"] and a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
