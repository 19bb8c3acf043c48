import json


import specmix.app.compare as compare
from specmix.app.cli import main
from specmix.model import LMConfig


def test_compare_matches_params_and_writes_outputs(data, tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", data, "--mixers", "attention", "spectral-gated", "spectral",
               "spectral,local:8", "--n-layers", "2", "--d-model", "32", "--n-heads", "2",
               "--context", "32", "--batch-size", "4", "--steps", "6", "--eval-every", "3",
               "--eval-batches", "2", "--warmup", "2", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "compare.json").read_text())
    variants = report["variants"]
    assert [v["mixers"] for v in variants] == ["attention", "spectral-gated", "spectral", "spectral,local:8"]
    target = variants[0]["params"]
    for v in variants:
        assert abs(v["params"] - target) <= 0.05 * target
        for key in ("final_val_loss", "best_val_loss", "tokens_per_s", "wall_s", "curve"):
            assert key in v
        assert [m["step"] for m in v["curve"]] == [3, 6]
    assert (out / "compare_loss.png").stat().st_size > 1000
    assert "| `spectral-gated` |" in capsys.readouterr().out
    before = (out / "compare.json").read_bytes()
    argv = ["compare", "--data", data, "--mixers", "attention", "spectral-gated", "--n-layers", "2",
            "--d-model", "32", "--n-heads", "2", "--context", "32", "--batch-size", "4", "--steps", "3",
            "--eval-every", "3", "--eval-batches", "1", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 2                          # a rerun into the folder is refused up front
    assert "already holds a training run" in capsys.readouterr().err
    assert (out / "compare.json").read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0


def test_a_crashing_variant_is_reported_and_the_others_run(data, tmp_path, monkeypatch):
    real_train = compare.train

    def flaky(cfg, train_cfg, progress):
        if cfg.mixers == ("spectral",):
            raise RuntimeError("boom")
        return real_train(cfg, train_cfg, progress)
    monkeypatch.setattr(compare, "train", flaky)
    base = LMConfig(d_model=16, n_layers=1, n_heads=2, context=16)
    from specmix.app.train import TrainConfig
    cfg = TrainConfig(data=data, steps=2, batch_size=2, eval_every=2, eval_batches=1, warmup=1, device="cpu")
    report = compare.run_compare(["attention", "spectral", "spectral-gated"], base, cfg,
                                 str(tmp_path / "c"), progress=False)
    errors = [v.get("error") for v in report["variants"]]
    assert errors[0] is None and "boom" in errors[1] and errors[2] is None
    assert "failed: RuntimeError: boom" in compare.format_compare(report)
