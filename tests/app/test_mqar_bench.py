import json

from specmix.app.bench.mqar import MODELS, TIERS, format_mqar, run_tier


def test_every_tier_names_known_models_and_budgets():
    for tier in TIERS.values():
        for cell in tier():
            cfg = MODELS[cell.model].config(cell.seq_len, cell.d_model)   # validates the shape
            assert cfg.mlp_ratio == 0 and cell.examples > 0 and cell.lrs


def test_smoke_tier_writes_json_and_a_table(tmp_path):
    report = run_tier("smoke", "cpu", str(tmp_path))
    saved = json.loads((tmp_path / "mqar.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert [c["model"] for c in saved["cells"]] == ["attention", "spectral-taylor hd4"]
    for cell in saved["cells"]:
        best = cell["best"]
        assert 0.0 <= best["acc"] <= 1.0 and best["curve"][-1]["examples"] == best["examples_seen"]
    table = format_mqar(saved)
    assert "| attention | (16, 2) | 16 |" in table and "spectral-taylor hd4" in table
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_second_sweep_extends_the_first(tmp_path):
    run_tier("smoke", "cpu", str(tmp_path), only="attention")
    report = run_tier("smoke", "cpu", str(tmp_path), only="attention", lrs=(1e-2,))
    (cell,) = report["cells"]
    assert cell["lrs"] == [3e-3, 1e-2] and len(cell["runs"]) == 2
    assert cell["best"]["acc"] == max(r["acc"] for r in cell["runs"])
