"""The command line: one-line errors for usage mistakes only; real bugs keep their traceback."""
import dataclasses

import pytest

import specmix.app.train as train_module
from specmix.app.cli import build_parser, main
from specmix.app.train import TrainConfig, train
from specmix.model import LMConfig


def tiny_train(data, out, *extra):
    return ["train", "--data", data, "--mixers", "spectral-gated", "--n-layers", "1", "--d-model", "16",
            "--n-heads", "2", "--context", "16", "--batch-size", "2", "--steps", "2", "--eval-every", "2",
            "--eval-batches", "1", "--device", "cpu", "--out", str(out), *extra]


@pytest.mark.parametrize("error", [RuntimeError("deliberate bug"), ValueError("deliberate bug")])
def test_an_error_inside_a_training_step_keeps_its_traceback(data, tmp_path, monkeypatch, error):
    def broken_step(*args, **kwargs):
        raise error
    monkeypatch.setattr(train_module, "_optimizer_step", broken_step)
    with pytest.raises(type(error), match="deliberate bug") as info:
        main(tiny_train(data, tmp_path / "run"))
    assert any(entry.name == "broken_step" for entry in info.traceback)


@pytest.mark.parametrize("extra,words", [
    (["--mixers", "fourier"], "unknown kind 'fourier'"),
    (["--filter", "fourier"], "argument --filter: invalid choice: 'fourier'"),
    (["--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
    (["--context", "0"], "--context must be >= 1, got 0"),
    (["--n-heads", "3"], "--n-heads 3 must divide --d-model 16"),
    (["--typo-flag", "1"], "unrecognized arguments: --typo-flag 1"),
    (["--grad-clip", "-1"], "--grad-clip must be >= 0.0"),
])
def test_a_bad_flag_is_a_one_line_error(data, tmp_path, one_line_error, extra, words):
    one_line_error(tiny_train(data, tmp_path / "run", *extra), words)


def test_unknown_command_is_a_one_line_error(one_line_error):
    one_line_error(["fly"], "invalid choice: 'fly'")


def test_training_does_not_mutate_its_configs(data, tmp_path):
    model_cfg = LMConfig(mixers="spectral", n_layers=1, d_model=16, n_heads=2, context=16)
    cfg = TrainConfig(data=data, steps=2, batch_size=2, eval_every=2, eval_batches=1, device="cpu",
                      out=str(tmp_path / "run"))
    before = (dataclasses.asdict(model_cfg), dataclasses.asdict(cfg))
    train(model_cfg, cfg, progress=False)
    assert (dataclasses.asdict(model_cfg), dataclasses.asdict(cfg)) == before
    assert model_cfg.vocab_size is None                 # the resolved vocabulary went elsewhere


def test_every_command_has_a_help_page(capsys):
    for command in ("demo", "bench", "reference", "train", "train-peer", "compare", "sample", "eval-lengths",
                    "bench-decode", "bench-pairs", "bench-mlm", "export"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert command in capsys.readouterr().out


def test_same_flag_names_in_every_command():
    parser = build_parser()
    flags = {name: set(sub.choices[name]._option_string_actions)
             for sub in parser._subparsers._group_actions for name in sub.choices}
    for command in ("train", "compare"):
        assert {"--n-heads", "--batch-size", "--context", "--d-model", "--n-layers"} <= flags[command]
    assert {"--n-heads", "--batch-size", "--d-model", "--n-layers"} <= flags["bench"]
    assert {"--n-heads", "--d-model", "--n-layers"} <= flags["bench-decode"]
    assert {"--batch-size", "--context", "--d-model", "--n-layers"} <= flags["reference"]


def test_no_command_names_the_program_once(capsys):
    assert main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("specmix: error:") and "specmix specmix" not in err


def test_sample_zero_tokens_prints_the_prompt(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_train(data, out)) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(out), "--prompt", "First", "--tokens", "0", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "First\n"


def test_eval_lengths_out_must_be_a_file(data, tmp_path, one_line_error):
    one_line_error(["eval-lengths", "--checkpoint", str(tmp_path), "--out", str(tmp_path)],
                   f"--out {tmp_path} is a folder; give the JSON file to write")


def test_export_writes_an_onnx_file_that_runs_at_any_length(data, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    import numpy as np
    import torch

    from specmix.app.checkpoint import load_model
    out = tmp_path / "run"
    assert main(tiny_train(data, out)) == 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(out), "--weights", "last"]) == 0
    report = capsys.readouterr().out
    assert f"wrote {out}/model.onnx" in report and report.count("onnxruntime vs PyTorch at N=") == 3
    model = load_model(str(out), which="last")[0].eval()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for n in (3, 16):
        idx = torch.randint(0, model.config.vocab_size, (1, n))
        with torch.no_grad():
            expected = model(idx)[0].numpy()
        np.testing.assert_allclose(session.run(None, {"input": idx.numpy()})[0], expected, rtol=1e-4, atol=1e-5)
    assert not list(out.glob("*.partial"))
